/* The embedded registry backend: SQLite in WAL mode.
 *
 * Durability: synchronous=FULL. In WAL mode that fsyncs the WAL at every
 * COMMIT, so a committed batch survives a power cut before the committer
 * writes its audit lines (NORMAL would only fsync at checkpoints, and a
 * crash could then lose a batch whose certificates were already returned).
 * The committer batches many issuances per COMMIT, so the fsync is shared.
 * Checkpoints stay automatic (every 1000 WAL pages); they fsync the database
 * before the WAL is reused, which FULL does not weaken. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "reg.h"

#define SCHEMA_VERSION 1

const char *const est_dev_status_names[EST_DEV__MAX] = {
	"none", "active", "revoked", "reset",
};
const char *const est_cert_status_names[EST_CERT__MAX] = {
	"none", "active", "superseded", "revoked", "unreturned",
};
const char *const est_approval_names[EST_APPROVAL__MAX] = {
	"none", "pending", "approved",
};

static const char schema[] =
	"CREATE TABLE devices("
	" thing_name TEXT PRIMARY KEY,"
	" status TEXT NOT NULL CHECK (status IN ('active','revoked','reset')),"
	" profile_json TEXT NOT NULL,"
	" iot_policy_json TEXT NOT NULL,"
	" created INTEGER NOT NULL,"
	" updated INTEGER NOT NULL);"
	"CREATE TABLE certificates("
	" serial_hex TEXT PRIMARY KEY,"
	" thing_name TEXT NOT NULL REFERENCES devices(thing_name),"
	" not_before INTEGER NOT NULL,"
	" not_after INTEGER NOT NULL,"
	" key_sha256 TEXT NOT NULL,"
	" status TEXT NOT NULL CHECK (status IN ('active','superseded','revoked','unreturned')),"
	" issued_at INTEGER NOT NULL,"
	" supersedes TEXT,"
	" batch INTEGER NOT NULL DEFAULT 0,"
	" pem TEXT NOT NULL);"
	/* The invariant the takeover rule rests on: one current cert per thing. */
	"CREATE UNIQUE INDEX certificates_one_active ON certificates(thing_name)"
	" WHERE status = 'active';"
	"CREATE INDEX certificates_thing ON certificates(thing_name, issued_at);"
	"CREATE INDEX certificates_batch ON certificates(batch);"
	"CREATE INDEX certificates_expiry ON certificates(not_after) WHERE status = 'active';"
	"CREATE TABLE approvals("
	" thing_name TEXT PRIMARY KEY,"
	" requested_at INTEGER NOT NULL,"
	" approved_at INTEGER,"
	" approver TEXT);"
	"PRAGMA user_version = 1;";

#define DEV_COLS \
	"d.thing_name, d.status, d.created, d.updated, c.serial_hex, c.not_before, c.not_after," \
	" c.issued_at, c.key_sha256, c.status, c.supersedes"
#define DEV_JOIN \
	" FROM devices d LEFT JOIN certificates c" \
	" ON c.thing_name = d.thing_name AND c.status = 'active'"
#define CERT_COLS \
	"serial_hex, not_before, not_after, issued_at, key_sha256, status, supersedes, thing_name"

enum stmt {
	S_BEGIN, S_COMMIT, S_ROLLBACK, S_SAVEPOINT, S_RELEASE, S_ROLLBACK_TO,
	S_DEV_GET, S_DEV_DOCS, S_LIST_ALL, S_LIST_EXPIRING,
	S_CERT_GET, S_CERT_HISTORY,
	S_DEV_UPSERT, S_DEV_STATUS, S_CERT_INSERT, S_CERT_STATUS, S_CERTS_OF_THING_STATUS,
	S_APPR_GET, S_APPR_REQUEST, S_APPR_APPROVE, S_APPR_DELETE,
	S_BATCH_MAX, S_BATCH_AFTER, S_ACTIVE_COUNT, S_CERT_PEM,
	S__MAX
};

static const char *const sql[S__MAX] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SAVEPOINT] = "SAVEPOINT rec",
	[S_RELEASE] = "RELEASE rec",
	[S_ROLLBACK_TO] = "ROLLBACK TO rec",
	[S_DEV_GET] = "SELECT " DEV_COLS DEV_JOIN " WHERE d.thing_name = ?1",
	[S_DEV_DOCS] = "SELECT profile_json, iot_policy_json FROM devices WHERE thing_name = ?1",
	[S_LIST_ALL] = "SELECT " DEV_COLS DEV_JOIN " ORDER BY d.thing_name",
	[S_LIST_EXPIRING] = "SELECT " DEV_COLS DEV_JOIN
		" WHERE d.status = 'active' AND c.not_after < ?1 ORDER BY d.thing_name",
	[S_CERT_GET] = "SELECT " CERT_COLS " FROM certificates WHERE serial_hex = ?1",
	[S_CERT_HISTORY] = "SELECT " CERT_COLS " FROM certificates WHERE thing_name = ?1"
		" ORDER BY issued_at DESC, rowid DESC",
	[S_DEV_UPSERT] = "INSERT INTO devices(thing_name, status, profile_json, iot_policy_json,"
		" created, updated) VALUES (?1, 'active', ?2, ?3, ?4, ?4)"
		" ON CONFLICT(thing_name) DO UPDATE SET status = 'active',"
		" profile_json = excluded.profile_json,"
		" iot_policy_json = excluded.iot_policy_json, updated = excluded.updated",
	[S_DEV_STATUS] = "UPDATE devices SET status = ?2, updated = ?3 WHERE thing_name = ?1",
	[S_CERT_INSERT] = "INSERT INTO certificates(serial_hex, thing_name, not_before, not_after,"
		" key_sha256, status, issued_at, supersedes, batch, pem)"
		" VALUES (?1, ?2, ?3, ?4, ?5, 'active', ?6, ?7, ?8, ?9)",
	[S_CERT_STATUS] = "UPDATE certificates SET status = ?2 WHERE serial_hex = ?1",
	[S_CERTS_OF_THING_STATUS] = "UPDATE certificates SET status = ?2"
		" WHERE thing_name = ?1 AND status = 'active'",
	[S_APPR_GET] = "SELECT approved_at IS NOT NULL FROM approvals WHERE thing_name = ?1",
	[S_APPR_REQUEST] = "INSERT OR IGNORE INTO approvals(thing_name, requested_at) VALUES (?1, ?2)",
	[S_APPR_APPROVE] = "INSERT INTO approvals(thing_name, requested_at, approved_at, approver)"
		" VALUES (?1, ?2, ?2, ?3) ON CONFLICT(thing_name) DO UPDATE SET"
		" approved_at = ?2, approver = ?3",
	[S_APPR_DELETE] = "DELETE FROM approvals WHERE thing_name = ?1",
	[S_BATCH_MAX] = "SELECT coalesce(max(batch), 0) FROM certificates",
	[S_BATCH_AFTER] = "SELECT serial_hex FROM certificates WHERE batch > ?1"
		" AND status IN ('active', 'superseded') ORDER BY batch DESC, rowid DESC",
	[S_ACTIVE_COUNT] = "SELECT count(*) FROM certificates WHERE thing_name = ?1"
		" AND status = 'active'",
	[S_CERT_PEM] = "SELECT pem FROM certificates WHERE serial_hex = ?1",
};

struct reg {
	pthread_mutex_t mu;
	sqlite3 *db;
	char *path;
	sqlite3_stmt *st[S__MAX];
};

/* Which SQLite failures are the storage's (I/O, full disk, locked too long)
 * rather than a bug or bad data. */
static enum est_err
classify(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_IOERR: case SQLITE_FULL: case SQLITE_CANTOPEN: case SQLITE_READONLY:
		return EST_EIO;
	case SQLITE_BUSY: case SQLITE_LOCKED:
		return EST_ETEMPFAIL;
	case SQLITE_CORRUPT: case SQLITE_NOTADB:
		return EST_EDATA;
	default:
		return EST_EINTERNAL;
	}
}

static int
db_fail(struct reg *r, int rc, struct est_error *e)
{
	return est_fail(e, classify(rc), "%s: %s", r->path, sqlite3_errmsg(r->db));
}

static sqlite3_stmt *
stmt(struct reg *r, enum stmt s)
{
	sqlite3_reset(r->st[s]);
	sqlite3_clear_bindings(r->st[s]);
	return r->st[s];
}

static void
bind_text(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL || *v == '\0')
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

/* Run a statement that returns no rows (or whose rows are ignored). */
static int
exec_done(struct reg *r, sqlite3_stmt *s, struct est_error *e)
{
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE) {
		rc = db_fail(r, rc, e);
		sqlite3_reset(s);
		return rc;
	}
	sqlite3_reset(s);
	return 0;
}

static int
exec_simple(struct reg *r, enum stmt which, struct est_error *e)
{
	return exec_done(r, stmt(r, which), e);
}

static void
copy_col(sqlite3_stmt *s, int i, char *dst, size_t size)
{
	const unsigned char *v = sqlite3_column_text(s, i);
	size_t n = v == NULL ? 0 : strlen((const char *)v);

	if (n >= size)
		n = size - 1;
	if (n > 0)
		memcpy(dst, v, n);
	dst[n] = '\0';
}

static int
status_index(const unsigned char *v, const char *const *names, int max)
{
	int i;

	for (i = 0; v != NULL && i < max; i++)
		if (strcmp((const char *)v, names[i]) == 0)
			return i;
	return 0;
}

/* Columns OFF.. of a CERT_COLS row into C. */
static void
read_cert(sqlite3_stmt *s, int off, struct est_reg_cert *c)
{
	memset(c, 0, sizeof(*c));
	copy_col(s, off, c->serial_hex, sizeof(c->serial_hex));
	c->not_before = (time_t)sqlite3_column_int64(s, off + 1);
	c->not_after = (time_t)sqlite3_column_int64(s, off + 2);
	c->issued_at = (time_t)sqlite3_column_int64(s, off + 3);
	copy_col(s, off + 4, c->key_sha256, sizeof(c->key_sha256));
	c->status = status_index(sqlite3_column_text(s, off + 5), est_cert_status_names,
				 EST_CERT__MAX);
	copy_col(s, off + 6, c->supersedes, sizeof(c->supersedes));
}

/* A DEV_COLS row into D (profile and policy untouched). */
static void
read_device(sqlite3_stmt *s, struct est_reg_device *d)
{
	copy_col(s, 0, d->thing_name, sizeof(d->thing_name));
	d->status = status_index(sqlite3_column_text(s, 1), est_dev_status_names, EST_DEV__MAX);
	d->created = (time_t)sqlite3_column_int64(s, 2);
	d->updated = (time_t)sqlite3_column_int64(s, 3);
	read_cert(s, 4, &d->cert);
	if (d->cert.serial_hex[0] != '\0')
		memcpy(d->cert.thing_name, d->thing_name, sizeof(d->thing_name));
}

/* Device row of THING into D; D->status EST_DEV_NONE when unknown. No lock. */
static int
device_get_locked(struct reg *r, const char *thing, struct est_reg_device *d, struct est_error *e)
{
	sqlite3_stmt *s = stmt(r, S_DEV_GET);
	int rc;

	memset(d, 0, sizeof(*d));
	snprintf(d->thing_name, sizeof(d->thing_name), "%s", thing);
	bind_text(s, 1, thing);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		read_device(s, d);
	else if (rc != SQLITE_DONE)
		rc = db_fail(r, rc, e);
	sqlite3_reset(s);
	return rc < 0 ? rc : 0;
}

static int
reg_device_get(void *ctx, const char *thing, struct est_reg_device *dev, struct est_error *e)
{
	struct reg *r = ctx;
	int rc;

	pthread_mutex_lock(&r->mu);
	rc = device_get_locked(r, thing, dev, e);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

static int
cert_get_locked(struct reg *r, const char *serial, struct est_reg_cert *cert,
		struct est_error *e)
{
	sqlite3_stmt *s = stmt(r, S_CERT_GET);
	int rc;

	memset(cert, 0, sizeof(*cert));
	bind_text(s, 1, serial);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		read_cert(s, 0, cert);
		copy_col(s, 7, cert->thing_name, sizeof(cert->thing_name));
	} else if (rc != SQLITE_DONE) {
		rc = db_fail(r, rc, e);
	}
	sqlite3_reset(s);
	return rc < 0 ? rc : 0;
}

static int
reg_cert_get(void *ctx, const char *serial, struct est_reg_cert *cert, struct est_error *e)
{
	struct reg *r = ctx;
	int rc;

	pthread_mutex_lock(&r->mu);
	rc = cert_get_locked(r, serial, cert, e);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

/* Finish a walk: the callback's stop value, a step failure, or 0. */
static int
walk_end(struct reg *r, sqlite3_stmt *s, int step, int stop, struct est_error *e)
{
	int rc = 0;

	if (stop != 0)
		rc = stop;
	else if (step != SQLITE_DONE)
		rc = db_fail(r, step, e);
	sqlite3_reset(s);
	return rc;
}

static int
reg_list(void *ctx, time_t before, est_reg_device_cb cb, void *arg, struct est_error *e)
{
	struct reg *r = ctx;
	struct est_reg_device d;
	sqlite3_stmt *s;
	int step, stop = 0, rc;

	pthread_mutex_lock(&r->mu);
	s = stmt(r, before == 0 ? S_LIST_ALL : S_LIST_EXPIRING);
	if (before != 0)
		sqlite3_bind_int64(s, 1, (sqlite3_int64)before);
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		memset(&d, 0, sizeof(d));
		read_device(s, &d);
		if ((stop = cb(&d, arg)) != 0)
			break;
	}
	rc = walk_end(r, s, step, stop, e);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

static char *
col_dup(sqlite3_stmt *s, int i)
{
	const unsigned char *v = sqlite3_column_text(s, i);

	return v == NULL ? NULL : strdup((const char *)v);
}

static int
show_docs(struct reg *r, struct est_reg_device *d, struct est_error *e)
{
	sqlite3_stmt *s = stmt(r, S_DEV_DOCS);
	int rc;

	bind_text(s, 1, d->thing_name);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		d->profile_json = col_dup(s, 0);
		d->iot_policy_json = col_dup(s, 1);
		rc = d->profile_json == NULL || d->iot_policy_json == NULL ?
			est_fail(e, EST_EINTERNAL, "registry: out of memory") : 0;
	} else {
		rc = db_fail(r, rc, e);
	}
	sqlite3_reset(s);
	return rc;
}

static int
show_history(struct reg *r, const char *thing, est_reg_cert_cb cb, void *arg,
	     struct est_error *e)
{
	sqlite3_stmt *s = stmt(r, S_CERT_HISTORY);
	struct est_reg_cert c;
	int step, stop = 0;

	bind_text(s, 1, thing);
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		read_cert(s, 0, &c);
		copy_col(s, 7, c.thing_name, sizeof(c.thing_name));
		if ((stop = cb(&c, arg)) != 0)
			break;
	}
	return walk_end(r, s, step, stop, e);
}

static int
reg_show(void *ctx, const char *thing, struct est_reg_device *dev, est_reg_cert_cb cb,
	 void *arg, struct est_error *e)
{
	struct reg *r = ctx;
	int rc;

	pthread_mutex_lock(&r->mu);
	/* One read transaction, so the history matches the device row. */
	rc = exec_simple(r, S_SAVEPOINT, e);
	if (rc == 0)
		rc = device_get_locked(r, thing, dev, e);
	if (rc == 0 && dev->status == EST_DEV_NONE)
		rc = est_fail(e, EST_ENOINPUT, "thing '%s' is not registered", thing);
	if (rc == 0)
		rc = show_docs(r, dev, e);
	if (rc == 0 && cb != NULL)
		rc = show_history(r, thing, cb, arg, e);
	/* Never leave the read transaction open: it would pin this handle to
	 * the snapshot and hide every later commit of other connections. */
	if (exec_simple(r, S_RELEASE, NULL) < 0 && !sqlite3_get_autocommit(r->db))
		exec_simple(r, S_ROLLBACK, NULL);
	pthread_mutex_unlock(&r->mu);
	if (rc != 0)
		est_reg_device_clear(dev);
	return rc;
}

void
est_reg_device_clear(struct est_reg_device *dev)
{
	free(dev->profile_json);
	free(dev->iot_policy_json);
	memset(dev, 0, sizeof(*dev));
}

/* ---- writes ---- */

static int
set_dev_status(struct reg *r, const char *thing, const char *status, struct est_error *e)
{
	sqlite3_stmt *s = stmt(r, S_DEV_STATUS);

	bind_text(s, 1, thing);
	bind_text(s, 2, status);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)time(NULL));
	return exec_done(r, s, e);
}

static int
set_cert_status(struct reg *r, const char *serial, const char *status, struct est_error *e)
{
	sqlite3_stmt *s = stmt(r, S_CERT_STATUS);

	bind_text(s, 1, serial);
	bind_text(s, 2, status);
	return exec_done(r, s, e);
}

static int
set_active_certs(struct reg *r, const char *thing, const char *status, struct est_error *e)
{
	sqlite3_stmt *s = stmt(r, S_CERTS_OF_THING_STATUS);

	bind_text(s, 1, thing);
	bind_text(s, 2, status);
	return exec_done(r, s, e);
}

/* Run FN inside BEGIN IMMEDIATE .. COMMIT, rolled back on failure. */
static int
in_tx(struct reg *r, int (*fn)(struct reg *, const void *, struct est_error *),
      const void *arg, struct est_error *e)
{
	int rc;

	pthread_mutex_lock(&r->mu);
	if ((rc = exec_simple(r, S_BEGIN, e)) < 0)
		goto out;
	rc = fn(r, arg, e);
	if (rc == 0)
		rc = exec_simple(r, S_COMMIT, e);
	if (rc < 0 && !sqlite3_get_autocommit(r->db))
		exec_simple(r, S_ROLLBACK, NULL);
out:
	pthread_mutex_unlock(&r->mu);
	return rc;
}

static int
revoke_tx(struct reg *r, const void *arg, struct est_error *e)
{
	const char *thing = arg;
	struct est_reg_device d;
	int rc;

	if ((rc = device_get_locked(r, thing, &d, e)) < 0)
		return rc;
	if (d.status == EST_DEV_NONE)
		return est_fail(e, EST_ENOINPUT, "thing '%s' is not registered", thing);
	if (d.status == EST_DEV_REVOKED)
		return 0;
	if ((rc = set_dev_status(r, thing, "revoked", e)) < 0)
		return rc;
	return set_active_certs(r, thing, "revoked", e);
}

static int
reg_revoke(void *ctx, const char *thing, struct est_error *e)
{
	return in_tx(ctx, revoke_tx, thing, e);
}

static int
reset_tx(struct reg *r, const void *arg, struct est_error *e)
{
	const char *thing = arg;
	struct est_reg_device d;
	sqlite3_stmt *s;
	int rc;

	if ((rc = device_get_locked(r, thing, &d, e)) < 0)
		return rc;
	if (d.status == EST_DEV_NONE)
		return est_fail(e, EST_ENOINPUT, "thing '%s' is not registered", thing);
	if ((rc = set_dev_status(r, thing, "reset", e)) < 0 ||
	    (rc = set_active_certs(r, thing, "revoked", e)) < 0)
		return rc;
	s = stmt(r, S_APPR_DELETE);
	bind_text(s, 1, thing);
	return exec_done(r, s, e);
}

static int
reg_reset(void *ctx, const char *thing, struct est_error *e)
{
	return in_tx(ctx, reset_tx, thing, e);
}

static int
approval_locked(struct reg *r, const char *thing, enum est_approval *state, struct est_error *e)
{
	sqlite3_stmt *s = stmt(r, S_APPR_GET);
	int rc;

	bind_text(s, 1, thing);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*state = sqlite3_column_int(s, 0) ? EST_APPROVAL_APPROVED : EST_APPROVAL_PENDING;
	else if (rc == SQLITE_DONE)
		*state = EST_APPROVAL_NONE;
	else
		rc = db_fail(r, rc, e);
	sqlite3_reset(s);
	return rc < 0 ? rc : 0;
}

static int
reg_approval_state(void *ctx, const char *thing, enum est_approval *state, struct est_error *e)
{
	struct reg *r = ctx;
	int rc;

	pthread_mutex_lock(&r->mu);
	rc = approval_locked(r, thing, state, e);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

struct appr_arg {
	const char *thing, *approver;
	enum est_approval *state;
};

static int
request_tx(struct reg *r, const void *arg, struct est_error *e)
{
	const struct appr_arg *a = arg;
	sqlite3_stmt *s = stmt(r, S_APPR_REQUEST);
	int rc;

	bind_text(s, 1, a->thing);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)time(NULL));
	if ((rc = exec_done(r, s, e)) < 0)
		return rc;
	return approval_locked(r, a->thing, a->state, e);
}

static int
reg_approval_request(void *ctx, const char *thing, enum est_approval *state, struct est_error *e)
{
	struct appr_arg a = { thing, NULL, state };

	return in_tx(ctx, request_tx, &a, e);
}

static int
approve_tx(struct reg *r, const void *arg, struct est_error *e)
{
	const struct appr_arg *a = arg;
	sqlite3_stmt *s = stmt(r, S_APPR_APPROVE);

	bind_text(s, 1, a->thing);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)time(NULL));
	bind_text(s, 3, a->approver);
	return exec_done(r, s, e);
}

static int
reg_approve(void *ctx, const char *thing, const char *approver, struct est_error *e)
{
	struct appr_arg a = { thing, approver, NULL };

	return in_tx(ctx, approve_tx, &a, e);
}

/* ---- the committer's batch ---- */

/* Whether REC may be applied to the device as it is now; the refusal
 * reasons are shown to clients, so they name only the thing and serial. */
static int
check_mode(const struct est_commit_rec *rec, const struct est_reg_device *d,
	   struct est_error *e)
{
	const char *cur = rec->current_serial;

	if (d->status == EST_DEV_REVOKED)
		return est_fail(e, EST_EREFUSED, "thing '%s' is revoked", rec->thing_name);
	switch (rec->mode) {
	case EST_COMMIT_NEW:
		if (d->status == EST_DEV_ACTIVE)
			return est_fail(e, EST_EREFUSED, "thing '%s' is already registered",
					rec->thing_name);
		return 0;
	case EST_COMMIT_REENROLL:
		if (d->status != EST_DEV_ACTIVE)
			return est_fail(e, EST_EREFUSED, "thing '%s' is not registered",
					rec->thing_name);
		if (cur == NULL || strcasecmp(cur, d->cert.serial_hex) != 0)
			return est_fail(e, EST_EREFUSED,
					"thing '%s': certificate %s is not its current certificate",
					rec->thing_name, cur == NULL ? "(none)" : cur);
		return 0;
	case EST_COMMIT_OPERATOR:
		return 0;
	case EST_COMMIT_RETURN:
		/* "already registered" for any other key, so that a refused retry
		 * reads like the takeover refusal it is. */
		if (d->status != EST_DEV_ACTIVE)
			return est_fail(e, EST_EREFUSED, "thing '%s' is not registered",
					rec->thing_name);
		if (cur == NULL || strcasecmp(cur, d->cert.serial_hex) != 0 || rec->cert.key_sha256 == NULL ||
		    strcasecmp(rec->cert.key_sha256, d->cert.key_sha256) != 0)
			return est_fail(e, EST_EREFUSED, "thing '%s' is already registered",
					rec->thing_name);
		return 0;
	default:
		return est_fail(e, EST_EINTERNAL, "registry: unknown commit mode %d", (int)rec->mode);
	}
}

/* The approval a manual-approval label needs: refused (through REFUSE)
 * unless approved; consumed by this enrollment. */
static int
take_approval(struct reg *r, const char *thing, struct est_error *refuse, struct est_error *e)
{
	enum est_approval state;
	sqlite3_stmt *s;
	int rc;

	if ((rc = approval_locked(r, thing, &state, e)) < 0)
		return rc;
	if (state != EST_APPROVAL_APPROVED)
		return est_fail(refuse, EST_EREFUSED, "thing '%s' is not approved", thing);
	s = stmt(r, S_APPR_DELETE);
	bind_text(s, 1, thing);
	return exec_done(r, s, e);
}

/* EST_COMMIT_RETURN: the retry asks for exactly the registered profile, or
 * it is refused like any other enrollment of a registered thing. */
static int
same_profile(struct reg *r, const struct est_commit_rec *rec, struct est_reg_outcome *out,
	     struct est_error *e)
{
	sqlite3_stmt *s = stmt(r, S_DEV_DOCS);
	const unsigned char *v;
	int rc;

	bind_text(s, 1, rec->thing_name);
	if ((rc = sqlite3_step(s)) != SQLITE_ROW) {
		rc = db_fail(r, rc, e);
		sqlite3_reset(s);
		return rc;
	}
	v = sqlite3_column_text(s, 0);
	if (v == NULL || rec->profile_json == NULL || strcmp((const char *)v, rec->profile_json) != 0)
		out->rc = est_fail(&out->err, EST_EREFUSED, "thing '%s' is already registered",
				   rec->thing_name);
	sqlite3_reset(s);
	return out->rc < 0 ? 1 : 0;
}

static int
insert_cert(struct reg *r, const struct est_commit_rec *rec, const char *supersedes,
	    long long batch, struct est_error *e)
{
	sqlite3_stmt *s = stmt(r, S_CERT_INSERT);

	bind_text(s, 1, rec->cert.serial_hex);
	bind_text(s, 2, rec->thing_name);
	sqlite3_bind_int64(s, 3, (sqlite3_int64)rec->cert.not_before);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)rec->cert.not_after);
	bind_text(s, 5, rec->cert.key_sha256);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)time(NULL));
	bind_text(s, 7, supersedes);
	sqlite3_bind_int64(s, 8, batch);
	bind_text(s, 9, rec->cert.pem);
	return exec_done(r, s, e);
}

/* Check and write one record (inside its savepoint). A refusal is recorded
 * in OUT and returns 1; so does a constraint failure (a duplicate serial):
 * both concern this record only. Other failures return negative. */
static int
apply_rec(struct reg *r, const struct est_commit_rec *rec, long long batch,
	  struct est_reg_outcome *out, struct est_error *e)
{
	struct est_reg_device d;
	sqlite3_stmt *s;
	int rc;

	if ((rc = device_get_locked(r, rec->thing_name, &d, e)) < 0)
		return rc;
	if ((out->rc = check_mode(rec, &d, &out->err)) < 0)
		return 1;
	if (rec->mode == EST_COMMIT_RETURN)
		return same_profile(r, rec, out, e);
	if (rec->consume_approval && (rc = take_approval(r, rec->thing_name, &out->err, e)) < 0) {
		if (out->err.code != EST_EREFUSED)
			return rc;
		out->rc = rc;
		return 1;
	}
	s = stmt(r, S_DEV_UPSERT);
	bind_text(s, 1, rec->thing_name);
	bind_text(s, 2, rec->profile_json);
	bind_text(s, 3, rec->iot_policy_json);
	sqlite3_bind_int64(s, 4, (sqlite3_int64)time(NULL));
	rc = exec_done(r, s, e);
	/* The old cert leaves 'active' before the new one enters it: the
	 * one-active-cert index would refuse the opposite order. */
	if (rc == 0 && d.cert.serial_hex[0] != '\0')
		rc = set_cert_status(r, d.cert.serial_hex, "superseded", e);
	if (rc == 0)
		rc = insert_cert(r, rec, d.cert.serial_hex, batch, e);
	if (rc < 0 && (sqlite3_extended_errcode(r->db) & 0xff) == SQLITE_CONSTRAINT) {
		out->rc = rc;
		out->err = *e;
		return 1;
	}
	if (rc < 0)
		return rc;
	out->registered = d.status != EST_DEV_ACTIVE;
	memcpy(out->superseded, d.cert.serial_hex, sizeof(out->superseded));
	return 0;
}

/* One record in its own savepoint, rolled back alone when it fails; a
 * negative return is a storage failure that fails the batch. */
static int
batch_rec(struct reg *r, const struct est_commit_rec *rec, long long batch,
	  struct est_reg_outcome *out, struct est_error *e)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = exec_simple(r, S_SAVEPOINT, e)) < 0)
		return rc;
	if ((rc = apply_rec(r, rec, batch, out, e)) < 0)
		return rc;
	if (rc == 1 && (rc = exec_simple(r, S_ROLLBACK_TO, e)) < 0)
		return rc;
	return exec_simple(r, S_RELEASE, e);
}

static int
reg_commit_batch(void *ctx, const struct est_commit_rec *const *recs, size_t n, long long batch,
		 struct est_reg_outcome *out, struct est_error *e)
{
	struct reg *r = ctx;
	size_t i;
	int rc;

	pthread_mutex_lock(&r->mu);
	if ((rc = exec_simple(r, S_BEGIN, e)) < 0)
		goto out;
	for (i = 0; i < n && rc == 0; i++)
		rc = batch_rec(r, recs[i], batch, &out[i], e);
	if (rc == 0)
		rc = exec_simple(r, S_COMMIT, e);
	if (rc < 0 && !sqlite3_get_autocommit(r->db))
		exec_simple(r, S_ROLLBACK, NULL);
out:
	pthread_mutex_unlock(&r->mu);
	return rc;
}

static int
reg_cert_pem(void *ctx, const char *serial, char **pem, struct est_error *e)
{
	struct reg *r = ctx;
	sqlite3_stmt *s;
	int rc;

	*pem = NULL;
	pthread_mutex_lock(&r->mu);
	s = stmt(r, S_CERT_PEM);
	bind_text(s, 1, serial);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		rc = (*pem = col_dup(s, 0)) == NULL ? est_fail(e, EST_EINTERNAL,
							     "registry: out of memory") : 0;
	else if (rc == SQLITE_DONE)
		rc = est_fail(e, EST_ENOINPUT, "certificate %s is not in the registry", serial);
	else
		rc = db_fail(r, rc, e);
	sqlite3_reset(s);
	pthread_mutex_unlock(&r->mu);
	return rc;
}

/* ---- undoing issuances the audit log never recorded ---- */

static int
active_count(struct reg *r, const char *thing, long long *n, struct est_error *e)
{
	sqlite3_stmt *s = stmt(r, S_ACTIVE_COUNT);
	int rc;

	bind_text(s, 1, thing);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		*n = sqlite3_column_int64(s, 0);
	else
		rc = db_fail(r, rc, e);
	sqlite3_reset(s);
	return rc < 0 ? rc : 0;
}

static int
unreturn_one(struct reg *r, const char *serial, struct est_error *e)
{
	struct est_reg_cert c, old;
	struct est_reg_device d;
	long long active = 0;
	int rc;

	if ((rc = cert_get_locked(r, serial, &c, e)) < 0)
		return rc;
	if (c.status != EST_CERT_ACTIVE && c.status != EST_CERT_SUPERSEDED)
		return 0;
	if ((rc = set_cert_status(r, serial, "unreturned", e)) < 0)
		return rc;
	/* The certificate it replaced is still the one the device holds. */
	if (c.status == EST_CERT_ACTIVE && c.supersedes[0] != '\0') {
		if ((rc = cert_get_locked(r, c.supersedes, &old, e)) < 0)
			return rc;
		if (old.status == EST_CERT_SUPERSEDED &&
		    (rc = set_cert_status(r, c.supersedes, "active", e)) < 0)
			return rc;
	}
	if ((rc = active_count(r, c.thing_name, &active, e)) < 0 ||
	    (rc = device_get_locked(r, c.thing_name, &d, e)) < 0)
		return rc;
	/* Left with no certificate it holds, the device must be free to enroll. */
	if (active == 0 && d.status == EST_DEV_ACTIVE)
		return set_dev_status(r, c.thing_name, "reset", e);
	return 0;
}

struct unreturn_arg {
	const char *const *serials;
	size_t n;
};

static int
unreturn_tx(struct reg *r, const void *arg, struct est_error *e)
{
	const struct unreturn_arg *a = arg;
	size_t i;
	int rc = 0;

	/* Newest first, so a chain of re-enrollments unwinds to its start. */
	for (i = a->n; i > 0 && rc == 0; i--)
		rc = unreturn_one(r, a->serials[i - 1], e);
	return rc;
}

static int
reg_unreturn(void *ctx, const char *const *serials, size_t n, struct est_error *e)
{
	struct unreturn_arg a = { serials, n };

	return in_tx(ctx, unreturn_tx, &a, e);
}

static int
collect_after(struct reg *r, long long after, char ***out, size_t *n, struct est_error *e)
{
	sqlite3_stmt *s = stmt(r, S_BATCH_AFTER);
	char **v = NULL, **nv, *str;
	size_t len = 0;
	int step, rc = 0;

	sqlite3_bind_int64(s, 1, after);
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		nv = realloc(v, (len + 1) * sizeof(*v));
		str = col_dup(s, 0);
		if (nv != NULL)
			v = nv;
		if (nv == NULL || str == NULL) {
			free(str);
			rc = est_fail(e, EST_EINTERNAL, "registry: out of memory");
			break;
		}
		v[len++] = str;
	}
	if (rc == 0 && step != SQLITE_DONE)
		rc = db_fail(r, step, e);
	sqlite3_reset(s);
	if (rc < 0) {
		while (len > 0)
			free(v[--len]);
		free(v);
		return rc;
	}
	/* Oldest first, as unreturn expects (it walks them newest first). */
	for (size_t i = 0; i < len / 2; i++) {
		str = v[i];
		v[i] = v[len - 1 - i];
		v[len - 1 - i] = str;
	}
	*out = v;
	*n = len;
	return 0;
}

static int
reg_batches_after(void *ctx, long long after, long long *max_batch, char ***serials,
		  size_t *n, struct est_error *e)
{
	struct reg *r = ctx;
	sqlite3_stmt *s;
	int rc;

	*serials = NULL;
	*n = 0;
	pthread_mutex_lock(&r->mu);
	s = stmt(r, S_BATCH_MAX);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		*max_batch = sqlite3_column_int64(s, 0);
	else
		rc = db_fail(r, rc, e);
	sqlite3_reset(s);
	if (rc >= 0)
		rc = collect_after(r, after, serials, n, e);
	pthread_mutex_unlock(&r->mu);
	return rc < 0 ? rc : 0;
}

/* ---- opening ---- */

static void
reg_close(void *ctx)
{
	struct reg *r = ctx;
	int i;

	if (r == NULL)
		return;
	for (i = 0; i < S__MAX; i++)
		sqlite3_finalize(r->st[i]);
	sqlite3_close(r->db);
	pthread_mutex_destroy(&r->mu);
	free(r->path);
	free(r);
}

static const struct est_registry_ops sqlite_ops = {
	.name = "sqlite",
	.device_get = reg_device_get,
	.cert_get = reg_cert_get,
	.list = reg_list,
	.show = reg_show,
	.revoke = reg_revoke,
	.reset = reg_reset,
	.approval_request = reg_approval_request,
	.approval_state = reg_approval_state,
	.approve = reg_approve,
	.commit_batch = reg_commit_batch,
	.unreturn = reg_unreturn,
	.batches_after = reg_batches_after,
	.close = reg_close,
	.cert_pem = reg_cert_pem,
};

static int
pragma_int(struct reg *r, const char *q, long long *v, struct est_error *e)
{
	sqlite3_stmt *s;
	int rc;

	if ((rc = sqlite3_prepare_v2(r->db, q, -1, &s, NULL)) != SQLITE_OK)
		return db_fail(r, rc, e);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		*v = sqlite3_column_int64(s, 0);
	else
		rc = db_fail(r, rc, e);
	sqlite3_finalize(s);
	return rc < 0 ? rc : 0;
}

/* Create the schema in an empty database, or check the version of an
 * existing one. BEGIN IMMEDIATE: two processes creating it at once do not
 * both run the CREATEs. */
static int
schema_check(struct reg *r, int create, struct est_error *e)
{
	long long version = 0, tables = 0;
	int rc;

	if ((rc = sqlite3_exec(r->db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK)
		return db_fail(r, rc, e);
	rc = pragma_int(r, "PRAGMA user_version", &version, e);
	if (rc == 0)
		rc = pragma_int(r, "SELECT count(*) FROM sqlite_master", &tables, e);
	if (rc == 0 && version > SCHEMA_VERSION)
		rc = est_fail(e, EST_ECONFIG, "%s: registry schema version %lld is newer than this "
			      "estctl supports (%d)", r->path, version, SCHEMA_VERSION);
	else if (rc == 0 && version == 0 && (tables != 0 || !create))
		rc = est_fail(e, EST_ECONFIG, "%s: not an estctl registry", r->path);
	else if (rc == 0 && version == 0 &&
		 (rc = sqlite3_exec(r->db, schema, NULL, NULL, NULL)) != SQLITE_OK)
		rc = db_fail(r, rc, e);
	if (rc == 0 && (rc = sqlite3_exec(r->db, "COMMIT", NULL, NULL, NULL)) != SQLITE_OK)
		rc = db_fail(r, rc, e);
	if (rc < 0)
		sqlite3_exec(r->db, "ROLLBACK", NULL, NULL, NULL);
	return rc;
}

static int
configure(struct reg *r, int create, struct est_error *e)
{
	char *mode = NULL;
	sqlite3_stmt *s;
	int rc, i;

	sqlite3_busy_timeout(r->db, 5000);
	sqlite3_extended_result_codes(r->db, 1);
	if ((rc = sqlite3_prepare_v2(r->db, "PRAGMA journal_mode = WAL", -1, &s, NULL)) != SQLITE_OK)
		return db_fail(r, rc, e);
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		mode = col_dup(s, 0);
	sqlite3_finalize(s);
	if (mode == NULL || strcmp(mode, "wal") != 0) {
		rc = rc == SQLITE_ROW ? est_fail(e, EST_EIO, "%s: cannot switch to WAL mode (%s)",
						 r->path, mode ? mode : "?") : db_fail(r, rc, e);
		free(mode);
		return rc;
	}
	free(mode);
	/* A bounded page cache (1 MiB a connection rather than SQLite's 2 MiB),
	 * full after a few hundred enrollments, so the server's memory stays flat
	 * while the registry grows; in WAL mode a reader's cache is dropped at
	 * every commit of another connection anyway. */
	rc = sqlite3_exec(r->db, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
			  " PRAGMA cache_size = -1024", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return db_fail(r, rc, e);
	if ((rc = schema_check(r, create, e)) < 0)
		return rc;
	for (i = 0; i < S__MAX; i++) {
		rc = sqlite3_prepare_v3(r->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &r->st[i], NULL);
		if (rc != SQLITE_OK)
			return db_fail(r, rc, e);
	}
	return 0;
}

/* Create PATH 0600 when CREATE and missing; otherwise check it is there.
 * SQLite would create the file with 0644; the WAL and shm files copy the
 * database's mode, so creating it 0600 here covers all three. An EXISTING
 * registry is never opened and closed here: close() drops every POSIX lock
 * this process holds on the file, those of its open connections included
 * (sqlite.org/howtocorrupt.html 2.2). The server opens two; with their
 * shared lock gone, an `estctl server reset` took itself for the last user
 * on close and deleted the WAL and shm under the server, which then read a
 * stale snapshot and wrote its commits to a deleted WAL. A new file (O_EXCL)
 * has no locks to lose. */
static int
prepare_file(const char *path, int create, struct est_error *e)
{
	int fd;

	if (create) {
		if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0) {
			close(fd);
			return 0;
		}
		if (errno != EEXIST)
			return est_fail(e, EST_EIO, "%s: %s", path, strerror(errno));
	}
	if (access(path, R_OK | W_OK) != 0)
		return est_fail(e, errno == ENOENT ? EST_ENOINPUT : EST_EIO, "%s: %s", path,
				strerror(errno));
	return 0;
}

int
est_reg_sqlite_open(const char *path, int create, struct est_registry *out, struct est_error *e)
{
	struct reg *r = calloc(1, sizeof(*r));
	int rc;

	out->ops = NULL;
	out->ctx = NULL;
	if (r == NULL || (r->path = strdup(path)) == NULL) {
		free(r);
		return est_fail(e, EST_EINTERNAL, "registry: out of memory");
	}
	pthread_mutex_init(&r->mu, NULL);
	if ((rc = prepare_file(path, create, e)) < 0)
		goto out;
	rc = sqlite3_open_v2(path, &r->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		rc = r->db ? db_fail(r, rc, e) : est_fail(e, EST_EINTERNAL, "registry: out of memory");
		goto out;
	}
	rc = configure(r, create, e);
out:
	if (rc < 0) {
		reg_close(r);
		return rc;
	}
	out->ops = &sqlite_ops;
	out->ctx = r;
	return 0;
}

void
est_reg_close(struct est_registry *reg)
{
	if (reg == NULL || reg->ops == NULL)
		return;
	reg->ops->close(reg->ctx);
	reg->ops = NULL;
	reg->ctx = NULL;
}
