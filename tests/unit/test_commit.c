/* Unit tests of the group committer: many threads issuing at once (all in
 * the registry, the audit chain exact), races for one ThingName, re-enrollment,
 * an audit log that fails after the registry commit, crash recovery. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "commit.h"
#include "tap.h"

#define THREADS 8
#define PER_THREAD 200

static char dir[] = "/tmp/test_commit.XXXXXX";

struct env {
	char db[300], log[300];
	struct est_registry reg, rd;
	struct est_audit audit;
	struct est_committer *c;
};

static int
env_open(struct env *v, const char *name, struct est_error *e)
{
	int rc;

	snprintf(v->db, sizeof(v->db), "%s/%s.db", dir, name);
	snprintf(v->log, sizeof(v->log), "%s/%s.log", dir, name);
	if ((rc = est_reg_sqlite_open(v->db, 1, &v->reg, e)) < 0 ||
	    (rc = est_reg_sqlite_open(v->db, 0, &v->rd, e)) < 0 ||
	    (rc = est_audit_open_file(v->log, 1, &v->audit, e)) < 0)
		return rc;
	return est_commit_start(&v->reg, &v->audit, &v->c, e);
}

static void
env_close(struct env *v)
{
	est_commit_stop(v->c);
	v->c = NULL;
	est_audit_close(&v->audit);
	est_reg_close(&v->rd);
	est_reg_close(&v->reg);
}

static struct est_commit_rec
rec(enum est_commit_mode mode, const char *thing, const char *serial, const char *cur)
{
	return (struct est_commit_rec){
		.mode = mode, .thing_name = thing, .profile_json = "{}", .iot_policy_json = "{}",
		.cert = { .serial_hex = serial, .not_before = 1, .not_after = 2, .key_sha256 = "00",
			  .pem = "pem" },
		.current_serial = cur, .remote = "127.0.0.1", .label = "", .auth = "sealed",
	};
}

static long long
count(const char *db, const char *query)
{
	long long n = -1;
	sqlite3_stmt *s;
	sqlite3 *h;

	if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(h, query, -1, &s, NULL) == SQLITE_OK) {
		if (sqlite3_step(s) == SQLITE_ROW)
			n = sqlite3_column_int64(s, 0);
		sqlite3_finalize(s);
	}
	sqlite3_close(h);
	return n;
}

static long
grep_count(const char *path, const char *needle)
{
	char line[EST_AUDIT_LINE_MAX + 2];
	long n = 0;
	FILE *f = fopen(path, "r");

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, needle) != NULL;
	if (f != NULL)
		fclose(f);
	return n;
}

struct worker {
	struct env *v;
	int id, ok, refused, other;
	const char *shared;       /* race mode: every worker claims these names */
};

static void *
issue_many(void *arg)
{
	struct worker *w = arg;
	char thing[64], serial[64];
	struct est_commit_rec r;
	struct est_error e;
	int i, rc;

	for (i = 0; i < PER_THREAD; i++) {
		if (w->shared != NULL)
			snprintf(thing, sizeof(thing), "%s-%d", w->shared, i % 25);
		else
			snprintf(thing, sizeof(thing), "dev-%d-%d", w->id, i);
		snprintf(serial, sizeof(serial), "%s%02x%04x", w->shared ? "ee" : "", w->id, i);
		r = rec(EST_COMMIT_NEW, thing, serial, NULL);
		rc = est_commit_issue(w->v->c, &r, &e);
		if (rc == 0)
			w->ok++;
		else if (rc == -EST_EREFUSED && strstr(e.msg, "is already registered") != NULL)
			w->refused++;
		else
			w->other++;
	}
	return NULL;
}

static void
run_workers(struct env *v, const char *shared, struct worker *w)
{
	pthread_t t[THREADS];
	int i;

	for (i = 0; i < THREADS; i++) {
		w[i] = (struct worker){ .v = v, .id = i, .shared = shared };
		pthread_create(&t[i], NULL, issue_many, &w[i]);
	}
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
}

static void
test_many_threads(void)
{
	struct worker w[THREADS];
	unsigned long long batches = 0, records = 0;
	unsigned long lines = 0;
	struct est_error e;
	struct env v = { 0 };
	int i, ok = 0, other = 0;

	if (env_open(&v, "many", &e) < 0) {
		tap_ok(0, "open: %s", e.msg);
		return;
	}
	run_workers(&v, NULL, w);
	est_commit_stats(v.c, &batches, &records);
	env_close(&v);
	for (i = 0; i < THREADS; i++) {
		ok += w[i].ok;
		other += w[i].other + w[i].refused;
	}
	tap_ok(ok == THREADS * PER_THREAD && other == 0, "%d threads x %d issues all succeed (%d)",
	       THREADS, PER_THREAD, ok);
	tap_ok(count(v.db, "SELECT count(*) FROM certificates WHERE status='active'") ==
	       THREADS * PER_THREAD && count(v.db, "SELECT count(*) FROM devices") ==
	       THREADS * PER_THREAD, "every certificate and device is in the registry");
	ok = est_audit_verify(v.log, &lines, &e) == 0;
	tap_ok(ok && lines == 2 * THREADS * PER_THREAD,
	       "the audit chain verifies with exactly one registered + one issued line each (%lu)",
	       lines);
	tap_ok(grep_count(v.log, "\"event\":\"certificate_issued\"") == THREADS * PER_THREAD,
	       "one certificate_issued line per issue");
	tap_ok(records == THREADS * PER_THREAD && batches >= 1 && batches <= records,
	       "the committer counted every record");
	tap_diag("%llu records in %llu batches (%.1f per batch)", records, batches,
		 batches ? (double)records / (double)batches : 0.0);
}

/* Eight threads claim the same 25 names: exactly one wins each name, even
 * when the rivals land in one batch (the check runs inside the transaction). */
static void
test_race(void)
{
	struct worker w[THREADS];
	unsigned long lines = 0;
	struct est_error e;
	struct env v = { 0 };
	int i, ok = 0, refused = 0, other = 0;

	if (env_open(&v, "race", &e) < 0) {
		tap_ok(0, "open: %s", e.msg);
		return;
	}
	run_workers(&v, "dup", w);
	env_close(&v);
	for (i = 0; i < THREADS; i++) {
		ok += w[i].ok;
		refused += w[i].refused;
		other += w[i].other;
	}
	tap_ok(ok == 25 && refused == THREADS * PER_THREAD - 25 && other == 0,
	       "racing claims of 25 names: 25 issued, %d refused as already registered", refused);
	tap_ok(count(v.db, "SELECT count(*) FROM certificates") == 25,
	       "the registry holds exactly the 25 winners");
	ok = est_audit_verify(v.log, &lines, &e) == 0;
	tap_ok(ok && lines == (unsigned long)(50 + refused) &&
	       grep_count(v.log, "\"event\":\"request_refused\"") == refused,
	       "every refusal is audited (%lu lines)", lines);
}

static void
test_reenroll_and_events(void)
{
	struct est_audit_event ev = { .kind = EST_AUDIT_SERVER_STARTED, .remote = "cli" };
	struct est_commit_rec r;
	struct est_reg_cert c;
	unsigned long lines = 0;
	struct est_error e;
	struct env v = { 0 };
	int rc1, rc2, rc3;

	if (env_open(&v, "reenroll", &e) < 0) {
		tap_ok(0, "open: %s", e.msg);
		return;
	}
	r = rec(EST_COMMIT_NEW, "Beta", "b0", NULL);
	rc1 = est_commit_issue(v.c, &r, &e);
	r = rec(EST_COMMIT_REENROLL, "Beta", "b1", "b0");
	rc2 = est_commit_issue(v.c, &r, &e);
	r = rec(EST_COMMIT_REENROLL, "Beta", "b2", "b0");
	rc3 = est_commit_issue(v.c, &r, &e);
	v.rd.ops->cert_get(v.rd.ctx, "b0", &c, &e);
	tap_ok(rc1 == 0 && rc2 == 0 && rc3 == -EST_EREFUSED && c.status == EST_CERT_SUPERSEDED,
	       "re-enrollment supersedes the current certificate, which cannot be used again");
	tap_ok(est_commit_event(v.c, &ev, &e) == 0, "an audit-only event is committed");
	env_close(&v);
	tap_ok(est_audit_verify(v.log, &lines, &e) == 0 && lines == 5 &&
	       grep_count(v.log, "\"supersedes\":\"b0\"") == 1 &&
	       grep_count(v.log, "\"event\":\"server_started\"") == 1,
	       "the log holds registered, issued, issued-superseding, refused, started");
}

/* The registry commits, then the audit write fails: the caller gets an I/O
 * error and the certificate is marked unreturned, the device free again. */
static void
test_audit_failure(void)
{
	struct est_reg_device d;
	struct est_reg_cert c;
	struct est_commit_rec r;
	struct est_error e;
	struct env v = { 0 };
	int rc;

	snprintf(v.db, sizeof(v.db), "%s/full.db", dir);
	if (est_reg_sqlite_open(v.db, 1, &v.reg, &e) < 0 ||
	    est_reg_sqlite_open(v.db, 0, &v.rd, &e) < 0 ||
	    est_audit_open_file("/dev/full", 0, &v.audit, &e) < 0 ||
	    est_commit_start(&v.reg, &v.audit, &v.c, &e) < 0) {
		tap_ok(0, "open: %s", e.msg);
		return;
	}
	r = rec(EST_COMMIT_NEW, "Gamma", "c0", NULL);
	rc = est_commit_issue(v.c, &r, &e);
	v.rd.ops->cert_get(v.rd.ctx, "c0", &c, &e);
	v.rd.ops->device_get(v.rd.ctx, "Gamma", &d, &e);
	tap_ok(rc == -EST_EIO, "an issue whose audit write fails is an I/O error");
	tap_ok(c.status == EST_CERT_UNRETURNED && d.status == EST_DEV_RESET,
	       "its certificate is unreturned and the thing free to enroll (%s, %s)",
	       est_cert_status_names[c.status], est_dev_status_names[d.status]);
	env_close(&v);
}

/* A crash between the registry commit and the audit fsync: the registry has
 * a batch the log does not. The next start unreturns it and logs that. */
static void
test_recovery(void)
{
	struct est_commit_rec r1 = rec(EST_COMMIT_NEW, "Delta", "d0", NULL);
	const struct est_commit_rec *p = &r1;
	struct est_reg_outcome out;
	struct est_reg_device d;
	unsigned long lines = 0;
	struct est_error e;
	struct env v = { 0 };
	int ok;

	ok = env_open(&v, "crash", &e) == 0;
	r1 = rec(EST_COMMIT_NEW, "Epsilon", "e0", NULL);
	ok = ok && est_commit_issue(v.c, &r1, &e) == 0;
	env_close(&v);
	r1 = rec(EST_COMMIT_NEW, "Delta", "d0", NULL);
	/* What the committer's thread did before the "crash": commit, no audit. */
	ok = ok && est_reg_sqlite_open(v.db, 0, &v.reg, &e) == 0 &&
	     v.reg.ops->commit_batch(v.reg.ctx, &p, 1, 2, &out, &e) == 0 && out.rc == 0;
	est_reg_close(&v.reg);
	ok = ok && env_open(&v, "crash", &e) == 0;
	v.rd.ops->device_get(v.rd.ctx, "Delta", &d, &e);
	tap_ok(ok && d.status == EST_DEV_RESET && d.cert.serial_hex[0] == '\0',
	       "a start after a crash unreturns the batch the audit log never got");
	v.rd.ops->device_get(v.rd.ctx, "Epsilon", &d, &e);
	tap_ok(d.status == EST_DEV_ACTIVE, "and leaves the audited batches alone");
	r1 = rec(EST_COMMIT_NEW, "Zeta", "f0", NULL);
	ok = est_commit_issue(v.c, &r1, &e) == 0;
	env_close(&v);
	tap_ok(ok && est_audit_verify(v.log, &lines, &e) == 0 && lines == 5 &&
	       grep_count(v.log, "\"event\":\"certificate_unreturned\",\"thing\":\"Delta\","
			  "\"serial\":\"d0\"") == 1 && grep_count(v.log, "\"batch\":3") == 2,
	       "the repair is audited and later batches are numbered after the crashed one");
	ok = env_open(&v, "crash", &e) == 0;
	env_close(&v);
	tap_ok(ok && est_audit_verify(v.log, &lines, &e) == 0 && lines == 5,
	       "a second start finds nothing left to repair");
}

/* A retry answered with the current certificate: audited as returned
 * again; when that audit write fails, the certificate stays the device's
 * (it was issued and audited before). */
static void
test_returned_again(void)
{
	struct est_commit_rec r = rec(EST_COMMIT_NEW, "Eta", "70", NULL);
	const struct est_commit_rec *p = &r;
	struct est_reg_outcome out;
	struct est_reg_cert c;
	struct est_error e;
	struct env v = { 0 };
	int ok, rc;

	ok = env_open(&v, "again", &e) == 0 && est_commit_issue(v.c, &r, &e) == 0;
	r = rec(EST_COMMIT_RETURN, "Eta", "70", "70");
	ok = ok && est_commit_issue(v.c, &r, &e) == 0;
	env_close(&v);
	tap_ok(ok && grep_count(v.log, "\"event\":\"certificate_returned_again\",\"thing\":\"Eta\","
				 "\"serial\":\"70\",\"remote\":\"127.0.0.1\"") == 1 &&
	       grep_count(v.log, "\"event\":\"certificate_issued\"") == 1,
	       "a certificate returned again is audited as such, not as issued");
	/* Theta registered in batch 0, which crash recovery leaves alone even
	 * under an audit log (/dev/full) that holds no batch. */
	snprintf(v.db, sizeof(v.db), "%s/again-full.db", dir);
	r = rec(EST_COMMIT_NEW, "Theta", "71", NULL);
	if (est_reg_sqlite_open(v.db, 1, &v.reg, &e) < 0 ||
	    v.reg.ops->commit_batch(v.reg.ctx, &p, 1, 0, &out, &e) < 0 || out.rc < 0 ||
	    est_reg_sqlite_open(v.db, 0, &v.rd, &e) < 0 ||
	    est_audit_open_file("/dev/full", 0, &v.audit, &e) < 0 ||
	    est_commit_start(&v.reg, &v.audit, &v.c, &e) < 0) {
		tap_ok(0, "open: %s", e.msg);
		return;
	}
	r = rec(EST_COMMIT_RETURN, "Theta", "71", "71");
	rc = est_commit_issue(v.c, &r, &e);
	v.rd.ops->cert_get(v.rd.ctx, "71", &c, &e);
	tap_ok(rc == -EST_EIO && c.status == EST_CERT_ACTIVE,
	       "a failed audit of a return fails it and leaves the certificate active (%s)",
	       est_cert_status_names[c.status]);
	env_close(&v);
}

int
main(void)
{
	char cmd[300];

	if (mkdtemp(dir) == NULL)
		return 99;
	test_many_threads();
	test_race();
	test_reenroll_and_events();
	test_audit_failure();
	test_recovery();
	test_returned_again();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", dir);
	return tap_done();
}
