#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <nettle/sha2.h>

#include "audit.h"
#include "file.h"

const char *const est_audit_kind_names[EST_AUDIT__MAX] = {
	[EST_AUDIT_REQUEST_REFUSED] = "request_refused",
	[EST_AUDIT_CERT_ISSUED] = "certificate_issued",
	[EST_AUDIT_DEVICE_REGISTERED] = "device_registered",
	[EST_AUDIT_DEVICE_REVOKED] = "device_revoked",
	[EST_AUDIT_DEVICE_RESET] = "device_reset",
	[EST_AUDIT_APPROVAL_REQUESTED] = "approval_requested",
	[EST_AUDIT_APPROVED] = "approved",
	[EST_AUDIT_SERVER_STARTED] = "server_started",
	[EST_AUDIT_SERVER_STOPPED] = "server_stopped",
	[EST_AUDIT_LOG_REPAIRED] = "audit_log_repaired",
	[EST_AUDIT_CERT_UNRETURNED] = "certificate_unreturned",
	[EST_AUDIT_CERT_RETURNED_AGAIN] = "certificate_returned_again",
};

#define HASH_HEX (SHA256_DIGEST_SIZE * 2)
/* The tail read on open: enough for the last full line and a torn one. */
#define TAIL_MAX (4 * EST_AUDIT_LINE_MAX)

static const char zeros[HASH_HEX + 1] =
	"0000000000000000000000000000000000000000000000000000000000000000";

struct file_sink {
	pthread_mutex_t mu;
	int fd;
	char *path;
	off_t size;                 /* the file's length after our last append */
	char prev[HASH_HEX + 1];    /* hash of the last line */
};

static void
hash_hex(const void *data, size_t len, char out[HASH_HEX + 1])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char d[SHA256_DIGEST_SIZE];
	struct sha256_ctx ctx;
	size_t i;

	sha256_init(&ctx);
	sha256_update(&ctx, len, data);
	sha256_digest(&ctx, sizeof(d), d);
	for (i = 0; i < sizeof(d); i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[HASH_HEX] = '\0';
}

static int
set_str(json_t *o, const char *key, const char *val)
{
	if (val == NULL)
		return 0;
	return json_object_set_new(o, key, json_string(val));
}

static void
format_ts(long long ts_ms, char buf[32])
{
	time_t t = (time_t)(ts_ms / 1000);
	struct tm tm;
	size_t n;

	gmtime_r(&t, &tm);
	n = strftime(buf, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, 32 - n, ".%03dZ", (int)(ts_ms % 1000));
}

int
est_audit_format(const struct est_audit_event *ev, long long ts_ms, const char *prev,
		 char *buf, size_t bufsize, struct est_error *e)
{
	char ts[32];
	json_t *o;
	size_t n = 0;
	int rc = 0;

	if ((int)ev->kind < 0 || ev->kind >= EST_AUDIT__MAX)
		return est_fail(e, EST_EINTERNAL, "audit: unknown event kind %d", (int)ev->kind);
	format_ts(ts_ms, ts);
	if ((o = json_object()) == NULL)
		return est_fail(e, EST_EINTERNAL, "audit: out of memory");
	rc |= set_str(o, "ts", ts);
	rc |= set_str(o, "event", est_audit_kind_names[ev->kind]);
	rc |= set_str(o, "thing", ev->thing);
	rc |= set_str(o, "serial", ev->serial);
	rc |= set_str(o, "supersedes", ev->supersedes);
	rc |= set_str(o, "remote", ev->remote);
	rc |= set_str(o, "label", ev->label);
	rc |= set_str(o, "auth", ev->auth);
	rc |= set_str(o, "approver", ev->approver);
	rc |= set_str(o, "reason", ev->reason);
	if (ev->batch != 0)
		rc |= json_object_set_new(o, "batch", json_integer(ev->batch));
	rc |= set_str(o, "prev", prev);
	/* A field that is not UTF-8 makes json_string() fail: refuse the event
	 * rather than log a line a reader could not parse. */
	if (rc == 0)
		n = json_dumpb(o, buf, bufsize, JSON_COMPACT);
	json_decref(o);
	if (rc != 0)
		return est_fail(e, EST_EINTERNAL, "audit: event %s has a field that is not UTF-8",
				est_audit_kind_names[ev->kind]);
	if (n == 0 || n >= bufsize)
		return est_fail(e, EST_EINTERNAL, "audit: event %s is longer than %d bytes",
				est_audit_kind_names[ev->kind], EST_AUDIT_LINE_MAX);
	buf[n] = '\0';
	return (int)n;
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
pread_all(int fd, void *buf, size_t len, off_t off)
{
	size_t got = 0;
	ssize_t r;

	while (got < len) {
		r = pread(fd, (char *)buf + got, len - got, off + (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		got += (size_t)r;
	}
	return 0;
}

/* Find the last complete line of the file's tail: its hash goes to PREV,
 * and *TORN is the length of an incomplete line after it (a torn write). */
static int
read_tail(struct file_sink *s, off_t size, char prev[HASH_HEX + 1], size_t *torn,
	  struct est_error *e)
{
	size_t len = size < TAIL_MAX ? (size_t)size : TAIL_MAX, end, start;
	char *buf;
	int rc = 0;

	*torn = 0;
	memcpy(prev, zeros, sizeof(zeros));
	if (len == 0)
		return 0;
	if ((buf = malloc(len)) == NULL)
		return est_fail(e, EST_EINTERNAL, "audit: out of memory");
	if ((rc = pread_all(s->fd, buf, len, size - (off_t)len)) < 0) {
		rc = est_fail(e, EST_EIO, "%s: %s", s->path, strerror(-rc));
		goto out;
	}
	for (end = len; end > 0 && buf[end - 1] != '\n'; end--)
		;
	*torn = len - end;
	if (end == 0) {
		/* No newline in the tail: the whole file is one torn line, unless
		 * the tail does not reach the start (a line far too long). */
		if ((off_t)len < size)
			rc = est_fail(e, EST_EDATA, "%s: last line is longer than %d bytes",
				      s->path, TAIL_MAX);
		goto out;
	}
	for (start = end - 1; start > 0 && buf[start - 1] != '\n'; start--)
		;
	if (start == 0 && (off_t)len < size) {
		rc = est_fail(e, EST_EDATA, "%s: last line is longer than %d bytes", s->path, TAIL_MAX);
		goto out;
	}
	hash_hex(buf + start, end - 1 - start, prev);
out:
	free(buf);
	return rc;
}

/* Format EVS chained from S->prev into one buffer; *NEXT gets the new last hash. */
static int
format_all(struct file_sink *s, const struct est_audit_event *evs, size_t n, char **out,
	   size_t *outlen, char next[HASH_HEX + 1], struct est_error *e)
{
	char *buf = malloc(n * (EST_AUDIT_LINE_MAX + 1) + 1);
	long long ts = now_ms();
	size_t len = 0, i;
	int rc;

	if (buf == NULL)
		return est_fail(e, EST_EINTERNAL, "audit: out of memory");
	memcpy(next, s->prev, HASH_HEX + 1);
	for (i = 0; i < n; i++) {
		rc = est_audit_format(&evs[i], ts, next, buf + len, EST_AUDIT_LINE_MAX + 1, e);
		if (rc < 0) {
			free(buf);
			return rc;
		}
		hash_hex(buf + len, (size_t)rc, next);
		len += (size_t)rc;
		buf[len++] = '\n';
	}
	*out = buf;
	*outlen = len;
	return 0;
}

/* Write EVS with one write and one fsync; on failure cut the file back so
 * the chain never holds lines that did not count. Holds s->mu and the flock. */
static int
write_durable(struct file_sink *s, const struct est_audit_event *evs, size_t n,
	      struct est_error *e)
{
	char next[HASH_HEX + 1], *buf = NULL;
	size_t len = 0;
	int rc;

	if ((rc = format_all(s, evs, n, &buf, &len, next, e)) < 0)
		return rc;
	rc = est_write_all(s->fd, buf, len);
	if (rc == 0 && fsync(s->fd) != 0)
		rc = -errno;
	free(buf);
	if (rc < 0) {
		/* Best effort: if even the truncate fails, the next append's
		 * fstat sees the odd length and re-reads the tail. */
		if (ftruncate(s->fd, s->size) != 0)
			s->size = -1;
		return est_fail(e, EST_EIO, "%s: %s", s->path, strerror(-rc));
	}
	s->size += (off_t)len;
	memcpy(s->prev, next, sizeof(next));
	return 0;
}

/* Catch up with the file as it is now (another process may have appended,
 * or a crash left a torn line): reload the last hash and cut a torn line
 * off; *TORN says how many bytes were cut. */
static int
sync_tail(struct file_sink *s, size_t *torn, struct est_error *e)
{
	struct stat st;
	int rc;

	*torn = 0;
	if (fstat(s->fd, &st) != 0)
		return est_fail(e, EST_EIO, "%s: %s", s->path, strerror(errno));
	if (st.st_size == s->size)
		return 0;
	if ((rc = read_tail(s, st.st_size, s->prev, torn, e)) < 0)
		return rc;
	s->size = st.st_size - (off_t)*torn;
	if (*torn > 0 && (ftruncate(s->fd, s->size) != 0 || fsync(s->fd) != 0))
		return est_fail(e, EST_EIO, "%s: cutting off an incomplete last line: %s",
				s->path, strerror(errno));
	return 0;
}

static int
append_locked(struct file_sink *s, const struct est_audit_event *evs, size_t n,
	      struct est_error *e)
{
	struct est_audit_event repair = { .kind = EST_AUDIT_LOG_REPAIRED };
	char reason[96];
	size_t torn;
	int rc;

	if ((rc = sync_tail(s, &torn, e)) < 0)
		return rc;
	if (torn > 0) {
		snprintf(reason, sizeof(reason), "cut off an incomplete last line of %zu bytes", torn);
		repair.reason = reason;
		if ((rc = write_durable(s, &repair, 1, e)) < 0)
			return rc;
	}
	return n == 0 ? 0 : write_durable(s, evs, n, e);
}

static int
file_append(void *ctx, const struct est_audit_event *evs, size_t n, struct est_error *e)
{
	struct file_sink *s = ctx;
	int rc;

	pthread_mutex_lock(&s->mu);
	/* flock excludes other processes; the mutex, other threads (they share
	 * this open file description, which flock does not tell apart). */
	if (flock(s->fd, LOCK_EX) != 0) {
		rc = est_fail(e, EST_EIO, "%s: lock: %s", s->path, strerror(errno));
	} else {
		rc = append_locked(s, evs, n, e);
		flock(s->fd, LOCK_UN);
	}
	pthread_mutex_unlock(&s->mu);
	return rc;
}

/* 1 and *BATCH when LINE is a JSON object with an integer "batch". */
static int
line_batch(const char *line, size_t len, long long *batch)
{
	json_t *o = json_loadb(line, len, 0, NULL), *b;
	int found = 0;

	if ((b = json_object_get(o, "batch")) != NULL && json_is_integer(b)) {
		*batch = json_integer_value(b);
		found = 1;
	}
	json_decref(o);
	return found;
}

/* The slow path: every line from the start (no batch in the tail). */
static int
scan_batch(struct file_sink *s, long long *batch, struct est_error *e)
{
	FILE *f = fopen(s->path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long long b;

	if (f == NULL)
		return est_fail(e, EST_EIO, "%s: %s", s->path, strerror(errno));
	while ((n = getline(&line, &cap, f)) > 0)
		if (line[n - 1] == '\n' && line_batch(line, (size_t)n - 1, &b))
			*batch = b;
	free(line);
	fclose(f);
	return 0;
}

static int
file_last_batch(void *ctx, long long *batch, struct est_error *e)
{
	struct file_sink *s = ctx;
	struct stat st;
	size_t len = 0, end, start;
	char *buf = NULL;
	int rc = 0;

	*batch = 0;
	pthread_mutex_lock(&s->mu);
	if (fstat(s->fd, &st) != 0) {
		rc = est_fail(e, EST_EIO, "%s: %s", s->path, strerror(errno));
		goto out;
	}
	len = st.st_size < TAIL_MAX ? (size_t)st.st_size : TAIL_MAX;
	if ((buf = malloc(len + 1)) == NULL) {
		rc = est_fail(e, EST_EINTERNAL, "audit: out of memory");
		goto out;
	}
	if ((rc = pread_all(s->fd, buf, len, st.st_size - (off_t)len)) < 0) {
		rc = est_fail(e, EST_EIO, "%s: %s", s->path, strerror(-rc));
		goto out;
	}
	/* Walk complete lines backwards; the first one of the tail may be cut. */
	for (end = len; end > 0 && buf[end - 1] != '\n'; end--)
		;
	while (end > 0) {
		for (start = end - 1; start > 0 && buf[start - 1] != '\n'; start--)
			;
		if ((start > 0 || (off_t)len == st.st_size) &&
		    line_batch(buf + start, end - 1 - start, batch))
			goto out;
		end = start;
	}
	if ((off_t)len < st.st_size)
		rc = scan_batch(s, batch, e);
out:
	pthread_mutex_unlock(&s->mu);
	free(buf);
	return rc;
}

static void
file_close(void *ctx)
{
	struct file_sink *s = ctx;

	if (s == NULL)
		return;
	if (s->fd >= 0)
		close(s->fd);
	pthread_mutex_destroy(&s->mu);
	free(s->path);
	free(s);
}

static const struct est_audit_sink_ops file_ops = {
	.name = "file",
	.append = file_append,
	.last_batch = file_last_batch,
	.close = file_close,
};

int
est_audit_open_file(const char *path, int create, struct est_audit *out, struct est_error *e)
{
	struct file_sink *s = calloc(1, sizeof(*s));
	int rc;

	out->ops = NULL;
	out->ctx = NULL;
	if (s == NULL || (s->path = strdup(path)) == NULL) {
		free(s);
		return est_fail(e, EST_EINTERNAL, "audit: out of memory");
	}
	pthread_mutex_init(&s->mu, NULL);
	s->size = -1;   /* unknown: the first append reads the tail */
	s->fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC | (create ? O_CREAT : 0), 0600);
	if (s->fd < 0) {
		rc = est_fail(e, errno == ENOENT ? EST_ENOINPUT : EST_EIO, "%s: %s", path,
			      strerror(errno));
		goto out;
	}
	/* An empty append: repairs a torn last line now, not at the first event. */
	rc = file_append(s, NULL, 0, e);
out:
	if (rc < 0) {
		file_close(s);
		return rc;
	}
	out->ops = &file_ops;
	out->ctx = s;
	return 0;
}

int
est_audit_append(struct est_audit *a, const struct est_audit_event *evs, size_t n,
		 struct est_error *e)
{
	return a->ops->append(a->ctx, evs, n, e);
}

void
est_audit_close(struct est_audit *a)
{
	if (a == NULL || a->ops == NULL)
		return;
	a->ops->close(a->ctx);
	a->ops = NULL;
	a->ctx = NULL;
}

/* Check one complete line (without its newline) number N against PREV. */
static int
verify_line(const char *line, size_t len, unsigned long n, const char *prev,
	    unsigned long *bad, struct est_error *e)
{
	json_t *o = json_loadb(line, len, JSON_REJECT_DUPLICATES, NULL), *p;
	int rc = 0;

	*bad = n;
	if (!json_is_object(o)) {
		rc = est_fail(e, EST_ENEGATIVE, "line %lu: not JSON", n);
		goto out;
	}
	p = json_object_get(o, "prev");
	if (!json_is_string(json_object_get(o, "ts")) ||
	    !json_is_string(json_object_get(o, "event")) || !json_is_string(p)) {
		rc = est_fail(e, EST_ENEGATIVE, "line %lu: missing ts, event or prev", n);
		goto out;
	}
	if (strcmp(json_string_value(p), prev) == 0)
		goto out;
	if (n == 1) {
		rc = est_fail(e, EST_ENEGATIVE, "line 1: prev is not zeros (lines before it removed)");
		goto out;
	}
	/* The link from line N-1 to line N is broken: most often line N-1 was
	 * edited (or lines after it removed), so that is the line named. */
	*bad = n - 1;
	rc = est_fail(e, EST_ENEGATIVE,
		      "line %lu: changed, or a line after it removed (line %lu's prev does not match)",
		      n - 1, n);
out:
	json_decref(o);
	return rc;
}

int
est_audit_verify(const char *path, unsigned long *lines, struct est_error *e)
{
	char prev[HASH_HEX + 1], *line = NULL;
	unsigned long n = 0;
	size_t cap = 0;
	ssize_t len;
	FILE *f;
	int rc = 0;

	*lines = 0;
	if ((f = fopen(path, "re")) == NULL)
		return est_fail(e, errno == ENOENT ? EST_ENOINPUT : EST_EIO, "%s: %s", path,
				strerror(errno));
	memcpy(prev, zeros, sizeof(zeros));
	errno = 0;
	while ((len = getline(&line, &cap, f)) > 0) {
		n++;
		if (line[len - 1] != '\n') {
			*lines = n;
			rc = est_fail(e, EST_ENEGATIVE, "line %lu: incomplete (no newline at the end)", n);
			goto out;
		}
		if ((rc = verify_line(line, (size_t)len - 1, n, prev, lines, e)) < 0)
			goto out;
		hash_hex(line, (size_t)len - 1, prev);
	}
	if (ferror(f)) {
		rc = est_fail(e, EST_EIO, "%s: %s", path, strerror(errno));
		goto out;
	}
	*lines = n;
out:
	free(line);
	fclose(f);
	return rc;
}
