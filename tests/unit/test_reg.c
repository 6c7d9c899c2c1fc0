/* Unit tests of the SQLite registry: schema and version, the commit rules
 * (takeover, revoked, re-enrollment), savepoints per record, revoke, reset,
 * approvals, unreturn; cross-checked with the sqlite3 command-line tool. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "reg.h"
#include "tap.h"

static char dir[] = "/tmp/test_reg.XXXXXX";
static char db[300];

static struct est_commit_rec
rec(enum est_commit_mode mode, const char *thing, const char *serial, const char *cur)
{
	return (struct est_commit_rec){
		.mode = mode, .thing_name = thing, .profile_json = "{\"thingName\":\"x\"}",
		.iot_policy_json = "{\"Version\":\"2012-10-17\"}",
		.cert = { .serial_hex = serial, .not_before = 1000, .not_after = 5000,
			  .key_sha256 = "ab", .pem = "-----BEGIN CERTIFICATE-----\n" },
		.current_serial = cur,
	};
}

/* Commit one record alone; its outcome's rc (or the batch failure). */
static int
commit1(struct est_registry *r, struct est_commit_rec rc1, long long batch, struct est_error *e)
{
	const struct est_commit_rec *p = &rc1;
	struct est_reg_outcome out;
	int rc;

	if ((rc = r->ops->commit_batch(r->ctx, &p, 1, batch, &out, e)) < 0)
		return rc;
	if (out.rc < 0)
		*e = out.err;
	return out.rc;
}

/* The sqlite3 tool's one-line answer to QUERY on the registry at PATH. */
static void
cli_at(const char *path, const char *query, char *out, size_t size)
{
	char cmd[600];
	FILE *p;

	out[0] = '\0';
	snprintf(cmd, sizeof(cmd), "sqlite3 '%s' \"%s\"", path, query);
	if ((p = popen(cmd, "r")) == NULL)
		return;
	if (fgets(out, (int)size, p) != NULL)
		out[strcspn(out, "\n")] = '\0';
	pclose(p);
}

static void
cli(const char *query, char *out, size_t size)
{
	cli_at(db, query, out, size);
}

static void
test_open(void)
{
	char path[300], got[64];
	struct est_registry r;
	struct est_error e;
	struct stat st;
	sqlite3 *h;
	int rc;

	snprintf(path, sizeof(path), "%s/missing.db", dir);
	tap_ok(est_reg_sqlite_open(path, 0, &r, &e) == -EST_ENOINPUT, "a missing registry is no input");
	rc = est_reg_sqlite_open(db, 1, &r, &e);
	est_reg_close(&r);
	tap_ok(rc == 0 && stat(db, &st) == 0 && (st.st_mode & 0777) == 0600,
	       "a new registry is created with mode 0600");
	cli("PRAGMA journal_mode", got, sizeof(got));
	tap_ok(strcmp(got, "wal") == 0, "the registry is in WAL mode (sqlite3 says %s)", got);
	cli("PRAGMA user_version", got, sizeof(got));
	tap_ok(strcmp(got, "1") == 0, "the schema is version 1");
	tap_ok(est_reg_sqlite_open(db, 0, &r, &e) == 0, "an existing registry opens without create");
	est_reg_close(&r);

	snprintf(path, sizeof(path), "%s/newer.db", dir);
	sqlite3_open(path, &h);
	sqlite3_exec(h, "PRAGMA user_version = 7", NULL, NULL, NULL);
	sqlite3_close(h);
	rc = est_reg_sqlite_open(path, 1, &r, &e);
	tap_ok(rc == -EST_ECONFIG && strstr(e.msg, "schema version 7 is newer") != NULL,
	       "a newer schema is refused as configuration (%s)", e.msg);
	snprintf(path, sizeof(path), "%s/other.db", dir);
	sqlite3_open(path, &h);
	sqlite3_exec(h, "CREATE TABLE t(x)", NULL, NULL, NULL);
	sqlite3_close(h);
	rc = est_reg_sqlite_open(path, 1, &r, &e);
	tap_ok(rc == -EST_ECONFIG && strstr(e.msg, "not an estctl registry") != NULL,
	       "another application's database is refused");
}

/* The rules of one thing's life, one step at a time. */
static void
test_rules(struct est_registry *r)
{
	static const struct {
		enum est_commit_mode mode;
		const char *serial, *cur;
		int rc;
		const char *msg;
		enum est_dev_status after;
	} steps[] = {
		{ EST_COMMIT_REENROLL, "01", "00", -EST_EREFUSED, "thing 'Alpha' is not registered", EST_DEV_NONE },
		{ EST_COMMIT_NEW, "a1", NULL, 0, NULL, EST_DEV_ACTIVE },
		{ EST_COMMIT_NEW, "a2", NULL, -EST_EREFUSED, "thing 'Alpha' is already registered", EST_DEV_ACTIVE },
		{ EST_COMMIT_REENROLL, "a3", "ff", -EST_EREFUSED, "thing 'Alpha': certificate ff is not its current certificate", EST_DEV_ACTIVE },
		{ EST_COMMIT_REENROLL, "a4", "A1", 0, NULL, EST_DEV_ACTIVE },
		{ EST_COMMIT_REENROLL, "a5", "a1", -EST_EREFUSED, "thing 'Alpha': certificate a1 is not its current certificate", EST_DEV_ACTIVE },
		{ EST_COMMIT_OPERATOR, "a6", NULL, 0, NULL, EST_DEV_ACTIVE },
		{ EST_COMMIT_NEW, "a6", NULL, -EST_EREFUSED, "thing 'Alpha' is already registered", EST_DEV_ACTIVE },
	};
	struct est_reg_device d;
	struct est_error e;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		memset(&e, 0, sizeof(e));
		rc = commit1(r, rec(steps[i].mode, "Alpha", steps[i].serial, steps[i].cur), 1, &e);
		r->ops->device_get(r->ctx, "Alpha", &d, &e);
		tap_ok(rc == steps[i].rc && (steps[i].msg == NULL || strcmp(e.msg, steps[i].msg) == 0) &&
		       d.status == steps[i].after, "step %zu: %s %s -> %s", i + 1,
		       steps[i].mode == EST_COMMIT_NEW ? "new" : steps[i].mode == EST_COMMIT_REENROLL ?
		       "reenroll" : "operator", steps[i].serial, rc == 0 ? "issued" : e.msg);
	}
	r->ops->device_get(r->ctx, "Alpha", &d, &e);
	tap_ok(strcmp(d.cert.serial_hex, "a6") == 0 && d.cert.not_after == 5000,
	       "the device's current certificate is the last one issued");
}

static void
test_cert_states(struct est_registry *r)
{
	static const struct {
		const char *serial;
		enum est_cert_status status;
		const char *supersedes;
	} want[] = {
		{ "a1", EST_CERT_SUPERSEDED, "" }, { "a4", EST_CERT_SUPERSEDED, "a1" },
		{ "a6", EST_CERT_ACTIVE, "a4" }, { "a2", EST_CERT_NONE, "" }, { "a3", EST_CERT_NONE, "" },
	};
	struct est_reg_cert c;
	struct est_error e;
	char got[64];
	size_t i;

	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		r->ops->cert_get(r->ctx, want[i].serial, &c, &e);
		tap_ok(c.status == want[i].status && strcmp(c.supersedes, want[i].supersedes) == 0,
		       "certificate %s is %s", want[i].serial, est_cert_status_names[want[i].status]);
	}
	cli("SELECT count(*) FROM certificates WHERE status='active' AND thing_name='Alpha'",
	    got, sizeof(got));
	tap_ok(strcmp(got, "1") == 0, "sqlite3 sees exactly one active certificate for the thing");
}

/* A refused record and a duplicate serial in the middle of a batch fail
 * alone; their neighbours are committed. */
static void
test_batch_savepoints(struct est_registry *r)
{
	struct est_commit_rec recs[] = {
		rec(EST_COMMIT_NEW, "B1", "b1", NULL),
		rec(EST_COMMIT_NEW, "Alpha", "b2", NULL),      /* takeover: refused */
		rec(EST_COMMIT_NEW, "B3", "b1", NULL),         /* duplicate serial */
		rec(EST_COMMIT_NEW, "B4", "b4", NULL),
	};
	const struct est_commit_rec *p[4] = { &recs[0], &recs[1], &recs[2], &recs[3] };
	struct est_reg_outcome out[4];
	struct est_reg_device d;
	struct est_error e;
	char got[64];
	int rc;

	rc = r->ops->commit_batch(r->ctx, p, 4, 2, out, &e);
	tap_ok(rc == 0 && out[0].rc == 0 && out[0].registered && out[1].rc == -EST_EREFUSED &&
	       out[2].rc < 0 && out[2].rc != -EST_EREFUSED && out[3].rc == 0,
	       "a batch commits its good records around a refused one and a duplicate serial");
	r->ops->device_get(r->ctx, "B3", &d, &e);
	tap_ok(d.status == EST_DEV_NONE, "the failed record left no device behind");
	cli("SELECT group_concat(thing_name) FROM (SELECT thing_name FROM certificates WHERE batch=2"
	    " ORDER BY thing_name)", got, sizeof(got));
	tap_ok(strcmp(got, "B1,B4") == 0, "sqlite3 sees the batch's two certificates (%s)", got);
	cli("PRAGMA foreign_key_check", got, sizeof(got));
	tap_ok(got[0] == '\0', "no foreign key is broken");
}

static int
count_dev(const struct est_reg_device *d, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static int
count_cert(const struct est_reg_cert *c, void *arg)
{
	(*(int *)arg)++;
	return 0;
}

static void
test_operator(struct est_registry *r)
{
	struct est_reg_device d;
	struct est_error e;
	int n = 0, rc;

	tap_ok(r->ops->revoke(r->ctx, "Nobody", &e) == -EST_ENOINPUT, "revoking an unknown thing is no input");
	rc = r->ops->revoke(r->ctx, "Alpha", &e);
	r->ops->device_get(r->ctx, "Alpha", &d, &e);
	tap_ok(rc == 0 && d.status == EST_DEV_REVOKED && d.cert.serial_hex[0] == '\0',
	       "revoke leaves the device revoked with no active certificate");
	tap_ok(commit1(r, rec(EST_COMMIT_REENROLL, "Alpha", "c1", "a6"), 3, &e) == -EST_EREFUSED &&
	       strcmp(e.msg, "thing 'Alpha' is revoked") == 0, "a revoked thing cannot re-enroll");
	tap_ok(commit1(r, rec(EST_COMMIT_OPERATOR, "Alpha", "c2", NULL), 3, &e) == -EST_EREFUSED,
	       "an operator issuance does not undo a revocation");
	tap_ok(r->ops->revoke(r->ctx, "Alpha", &e) == 0, "revoking twice is harmless");
	rc = r->ops->reset(r->ctx, "Alpha", &e);
	r->ops->device_get(r->ctx, "Alpha", &d, &e);
	tap_ok(rc == 0 && d.status == EST_DEV_RESET, "reset moves a revoked device to reset");
	tap_ok(commit1(r, rec(EST_COMMIT_NEW, "Alpha", "c3", NULL), 3, &e) == 0,
	       "after a reset a new key enrolls");
	rc = r->ops->show(r->ctx, "Alpha", &d, count_cert, &n, &e);
	tap_ok(rc == 0 && n == 4 && d.profile_json != NULL && strstr(d.iot_policy_json, "2012") != NULL,
	       "show gives the profile, the policy and the whole history (%d certificates)", n);
	est_reg_device_clear(&d);
	tap_ok(r->ops->show(r->ctx, "Nobody", &d, count_cert, &n, &e) == -EST_ENOINPUT &&
	       strcmp(e.msg, "thing 'Nobody' is not registered") == 0, "show of an unknown thing");
	n = 0;
	tap_ok(r->ops->list(r->ctx, 0, count_dev, &n, &e) == 0 && n == 3, "list gives every device");
	n = 0;
	commit1(r, (struct est_commit_rec){ .mode = EST_COMMIT_NEW, .thing_name = "Late",
		.profile_json = "{}", .iot_policy_json = "{}", .cert = { .serial_hex = "d1",
		.not_before = 1, .not_after = 99999, .key_sha256 = "cd", .pem = "x" } }, 3, &e);
	tap_ok(r->ops->list(r->ctx, 6000, count_dev, &n, &e) == 0 && n == 3,
	       "list --expiring leaves out a certificate valid beyond the limit");
}

static void
test_approvals(struct est_registry *r)
{
	struct est_commit_rec a = rec(EST_COMMIT_NEW, "Gated", "e1", NULL);
	enum est_approval st = EST_APPROVAL__MAX;
	struct est_error e;

	a.consume_approval = 1;
	r->ops->approval_state(r->ctx, "Gated", &st, &e);
	tap_ok(st == EST_APPROVAL_NONE, "no approval before a request");
	r->ops->approval_request(r->ctx, "Gated", &st, &e);
	tap_ok(st == EST_APPROVAL_PENDING, "a request is pending");
	tap_ok(commit1(r, a, 4, &e) == -EST_EREFUSED && strcmp(e.msg, "thing 'Gated' is not approved") == 0,
	       "an enrollment needing approval is refused while pending");
	r->ops->approve(r->ctx, "Gated", "ops", &e);
	r->ops->approval_request(r->ctx, "Gated", &st, &e);
	tap_ok(st == EST_APPROVAL_APPROVED, "approve approves, and a repeated request keeps it");
	tap_ok(commit1(r, a, 4, &e) == 0, "the approved enrollment is issued");
	r->ops->approval_state(r->ctx, "Gated", &st, &e);
	tap_ok(st == EST_APPROVAL_NONE, "the enrollment consumed the approval");
}

static void
test_unreturn(struct est_registry *r)
{
	const char *s2[] = { "f2" }, *s1[] = { "f1" };
	struct est_reg_cert c;
	struct est_reg_device d;
	struct est_error e;
	long long max = 0;
	char **serials = NULL;
	size_t n = 0, i;
	int rc;

	commit1(r, rec(EST_COMMIT_NEW, "Undo", "f1", NULL), 10, &e);
	commit1(r, rec(EST_COMMIT_REENROLL, "Undo", "f2", "f1"), 11, &e);
	rc = r->ops->batches_after(r->ctx, 9, &max, &serials, &n, &e);
	tap_ok(rc == 0 && max == 11 && n == 2 && strcmp(serials[0], "f1") == 0 &&
	       strcmp(serials[1], "f2") == 0, "batches_after lists the certificates of later batches");
	for (i = 0; i < n; i++)
		free(serials[i]);
	free(serials);
	rc = r->ops->unreturn(r->ctx, s2, 1, &e);
	r->ops->device_get(r->ctx, "Undo", &d, &e);
	r->ops->cert_get(r->ctx, "f2", &c, &e);
	tap_ok(rc == 0 && c.status == EST_CERT_UNRETURNED && d.status == EST_DEV_ACTIVE &&
	       strcmp(d.cert.serial_hex, "f1") == 0,
	       "unreturning a re-enrollment gives the device back its previous certificate");
	rc = r->ops->unreturn(r->ctx, s1, 1, &e);
	r->ops->device_get(r->ctx, "Undo", &d, &e);
	tap_ok(rc == 0 && d.status == EST_DEV_RESET && d.cert.serial_hex[0] == '\0',
	       "unreturning a first enrollment frees the thing");
	tap_ok(commit1(r, rec(EST_COMMIT_NEW, "Undo", "f3", NULL), 12, &e) == 0,
	       "and a new key may enroll it");
}

/* What another process (`estctl server revoke|reset|approve`) does while
 * this one holds the registry open: a fresh process (this program run again,
 * see main; a bare fork would inherit SQLite's record of this process's
 * locks), its own handle, one change, close. */
static const char *self;

static int
other_process_main(const char *path, const char *op, const char *thing)
{
	struct est_registry r;
	struct est_error e;
	int rc;

	if (est_reg_sqlite_open(path, 0, &r, &e) < 0)
		return 2;
	rc = strcmp(op, "reset") == 0 ? r.ops->reset(r.ctx, thing, &e) :
		strcmp(op, "revoke") == 0 ? r.ops->revoke(r.ctx, thing, &e) :
		r.ops->approve(r.ctx, thing, "ops", &e);
	est_reg_close(&r);
	return rc < 0 ? 1 : 0;
}

static int
in_other_process(const char *path, const char *op, const char *thing)
{
	int status;
	pid_t pid;

	fflush(stdout);
	if ((pid = fork()) < 0)
		return -1;
	if (pid == 0) {
		execl(self, self, "--other-process", path, op, thing, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* The server's layout: two handles on one file in one process (reads, and
 * the committer's), and operators changing it from other processes. Every
 * change must be seen at once, however many times, and nothing the server
 * wrote may be lost: opening the second handle once dropped the process's
 * POSIX locks on the file, so the operator's process took itself for the
 * last user and deleted the WAL and shm under the server. */
static void
test_other_process(void)
{
	struct est_registry rd = { 0 }, wr = { 0 };
	char path[300], wal[310], got[96];
	const char *serials[] = { "c1", "c2", "c3" };
	struct est_reg_device d;
	enum est_approval st = EST_APPROVAL_NONE;
	struct est_error e;
	struct stat sb;
	int i, ok;

	snprintf(path, sizeof(path), "%s/shared.db", dir);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	if (est_reg_sqlite_open(path, 1, &rd, &e) < 0 || est_reg_sqlite_open(path, 0, &wr, &e) < 0) {
		tap_ok(0, "open two handles: %s", e.msg);
		goto out;
	}
	for (i = 0; i < 3; i++) {
		ok = commit1(&wr, rec(EST_COMMIT_NEW, "Shared", serials[i], NULL), i + 1, &e) == 0 &&
			rd.ops->device_get(rd.ctx, "Shared", &d, &e) == 0 &&
			d.status == EST_DEV_ACTIVE && strcmp(d.cert.serial_hex, serials[i]) == 0 &&
			in_other_process(path, "reset", "Shared") == 0 &&
			rd.ops->device_get(rd.ctx, "Shared", &d, &e) == 0 && d.status == EST_DEV_RESET &&
			stat(wal, &sb) == 0;
		tap_ok(ok, "reset %d by another process is seen at once, the WAL left in place", i + 1);
	}
	tap_ok(commit1(&wr, rec(EST_COMMIT_NEW, "Shared", "c4", NULL), 4, &e) == 0 &&
	       in_other_process(path, "revoke", "Shared") == 0 &&
	       rd.ops->device_get(rd.ctx, "Shared", &d, &e) == 0 && d.status == EST_DEV_REVOKED &&
	       commit1(&wr, rec(EST_COMMIT_NEW, "Shared", "c5", NULL), 5, &e) == -EST_EREFUSED &&
	       strcmp(e.msg, "thing 'Shared' is revoked") == 0,
	       "a revoke by another process is seen by both handles");
	tap_ok(in_other_process(path, "approve", "Gate") == 0 &&
	       rd.ops->approval_state(rd.ctx, "Gate", &st, &e) == 0 && st == EST_APPROVAL_APPROVED,
	       "an approval by another process is seen at once");
	est_reg_close(&rd);
	est_reg_close(&wr);
	cli_at(path, "SELECT group_concat(c) FROM (SELECT serial_hex || ':' || status AS c"
	       " FROM certificates WHERE thing_name = 'Shared' ORDER BY rowid)", got, sizeof(got));
	tap_ok(strcmp(got, "c1:revoked,c2:revoked,c3:revoked,c4:revoked") == 0,
	       "every certificate the two handles wrote is on disk (sqlite3 says %s)", got);
out:
	est_reg_close(&rd);
	est_reg_close(&wr);
}

/* A retry of a NEW enrollment by the current key's holder (EST_COMMIT_RETURN):
 * answered only for the current certificate, its key and the registered
 * profile; it writes nothing. */
static void
test_return(struct est_registry *r)
{
	static const struct {
		const char *thing, *cur, *key, *profile;
		int rc;
		const char *msg;
	} cases[] = {
		{ "Ret", "r1", "ab", NULL, 0, NULL },
		{ "Ret", "R1", "AB", NULL, 0, NULL },
		{ "Ret", "r1", "cd", NULL, -EST_EREFUSED, "thing 'Ret' is already registered" },
		{ "Ret", "r1", "ab", "{\"thingName\":\"y\"}", -EST_EREFUSED, "thing 'Ret' is already registered" },
		{ "Ret", "ff", "ab", NULL, -EST_EREFUSED, "thing 'Ret' is already registered" },
		{ "Ret", NULL, "ab", NULL, -EST_EREFUSED, "thing 'Ret' is already registered" },
		{ "Nobody", "r1", "ab", NULL, -EST_EREFUSED, "thing 'Nobody' is not registered" },
	};
	struct est_commit_rec q;
	struct est_reg_device d;
	struct est_error e;
	char got[64], *pem = NULL;
	size_t i;
	int rc;

	commit1(r, rec(EST_COMMIT_NEW, "Ret", "r1", NULL), 20, &e);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&e, 0, sizeof(e));
		q = rec(EST_COMMIT_RETURN, cases[i].thing, cases[i].cur, cases[i].cur);
		q.cert.key_sha256 = cases[i].key;
		q.cert.pem = NULL;
		if (cases[i].profile != NULL)
			q.profile_json = cases[i].profile;
		rc = commit1(r, q, 21, &e);
		tap_ok(rc == cases[i].rc && (cases[i].msg == NULL || strcmp(e.msg, cases[i].msg) == 0),
		       "return again %s %s key %s%s: %s", cases[i].thing, cases[i].cur ? cases[i].cur : "-",
		       cases[i].key, cases[i].profile ? " (other profile)" : "", rc == 0 ? "yes" : e.msg);
	}
	cli("SELECT count(*) || ' ' || group_concat(status) FROM certificates WHERE thing_name='Ret'",
	    got, sizeof(got));
	r->ops->device_get(r->ctx, "Ret", &d, &e);
	tap_ok(strcmp(got, "1 active") == 0 && d.status == EST_DEV_ACTIVE &&
	       strcmp(d.cert.serial_hex, "r1") == 0, "returning again writes nothing (sqlite3: %s)", got);
	rc = r->ops->cert_pem(r->ctx, "r1", &pem, &e);
	tap_ok(rc == 0 && pem != NULL && strcmp(pem, "-----BEGIN CERTIFICATE-----\n") == 0,
	       "cert_pem gives the stored PEM");
	free(pem);
	tap_ok(r->ops->cert_pem(r->ctx, "zz", &pem, &e) == -EST_ENOINPUT && pem == NULL,
	       "cert_pem of an unknown serial is no input");
	commit1(r, rec(EST_COMMIT_REENROLL, "Ret", "r2", "r1"), 22, &e);
	tap_ok(commit1(r, rec(EST_COMMIT_RETURN, "Ret", "r1", "r1"), 23, &e) == -EST_EREFUSED,
	       "a superseded certificate is not returned again");
	tap_ok(commit1(r, rec(EST_COMMIT_RETURN, "Ret", "r2", "r2"), 23, &e) == 0,
	       "its successor is");
	r->ops->revoke(r->ctx, "Ret", &e);
	tap_ok(commit1(r, rec(EST_COMMIT_RETURN, "Ret", "r2", "r2"), 24, &e) == -EST_EREFUSED &&
	       strcmp(e.msg, "thing 'Ret' is revoked") == 0, "a revoked thing gets nothing again");
}

int
main(int argc, char **argv)
{
	struct est_registry r;
	struct est_error e;
	char cmd[300];

	if (argc == 5 && strcmp(argv[1], "--other-process") == 0)
		return other_process_main(argv[2], argv[3], argv[4]);
	self = argv[0];
	if (mkdtemp(dir) == NULL)
		return 99;
	snprintf(db, sizeof(db), "%s/registry.db", dir);
	test_open();
	if (est_reg_sqlite_open(db, 0, &r, &e) < 0) {
		tap_ok(0, "open: %s", e.msg);
		return tap_done();
	}
	test_rules(&r);
	test_cert_states(&r);
	test_batch_savepoints(&r);
	test_operator(&r);
	test_approvals(&r);
	test_unreturn(&r);
	test_return(&r);
	est_reg_close(&r);
	test_other_process();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", dir);
	return tap_done();
}
