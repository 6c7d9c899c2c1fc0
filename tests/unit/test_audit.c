/* Unit tests of the audit log: line format, the hash chain (checked against
 * openssl dgst), tampering reported at the right line, torn lines, failed
 * appends, several processes appending to one log. */
#include "config.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit.h"
#include "tap.h"

static char dir[] = "/tmp/test_audit.XXXXXX";

static void
path_in(char *buf, size_t size, const char *name)
{
	snprintf(buf, size, "%s/%s", dir, name);
}

/* Append N events (batch numbers from BATCH0) in groups of up to 3. */
static int
fill(const char *path, int n, long long batch0)
{
	struct est_audit_event ev[3];
	struct est_audit a;
	struct est_error e;
	int i = 0, k, rc;

	if ((rc = est_audit_open_file(path, 1, &a, &e)) < 0)
		return rc;
	while (i < n && rc == 0) {
		for (k = 0; k < 3 && i < n; k++, i++)
			ev[k] = (struct est_audit_event){ .kind = EST_AUDIT_CERT_ISSUED,
				.thing = "DeviceAlpha", .serial = "0a1b", .remote = "127.0.0.1",
				.batch = batch0 + i };
		rc = est_audit_append(&a, ev, (size_t)k, &e);
	}
	est_audit_close(&a);
	return rc;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	*len = fread(buf, 1, (size_t)n, f);
	buf[*len] = '\0';
	fclose(f);
	return buf;
}

static void
spit(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	fwrite(data, 1, len, f);
	fclose(f);
}

static void
test_format(void)
{
	static const char zeros[] =
		"0000000000000000000000000000000000000000000000000000000000000000";
	struct est_audit_event ev = { .kind = EST_AUDIT_REQUEST_REFUSED, .thing = "A",
		.remote = "::1", .label = "fleet", .reason = "thing 'A' is revoked", .batch = 3 };
	char buf[EST_AUDIT_LINE_MAX + 1], big[5000];
	struct est_error e;
	int n;

	n = est_audit_format(&ev, 1234, zeros, buf, sizeof(buf), &e);
	tap_ok(n > 0 && strcmp(buf, "{\"ts\":\"1970-01-01T00:00:01.234Z\",\"event\":\"request_refused\","
			       "\"thing\":\"A\",\"remote\":\"::1\",\"label\":\"fleet\","
			       "\"reason\":\"thing 'A' is revoked\",\"batch\":3,\"prev\":\"" "0000000000"
			       "000000000000000000000000000000000000000000000000000000\"}") == 0 &&
	       (size_t)n == strlen(buf), "an event is one compact JSON line in a fixed key order");
	ev.thing = "\xff\xfe";
	n = est_audit_format(&ev, 0, zeros, buf, sizeof(buf), &e);
	tap_ok(n == -EST_EINTERNAL && strstr(e.msg, "not UTF-8") != NULL,
	       "an event with a field that is not UTF-8 is refused");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ev.thing = "A";
	ev.reason = big;
	n = est_audit_format(&ev, 0, zeros, buf, sizeof(buf), &e);
	tap_ok(n == -EST_EINTERNAL && strstr(e.msg, "longer than") != NULL,
	       "an event longer than a line is refused");
}

/* openssl, not our code, hashes line 1 and must agree with line 2's prev. */
static void
test_chain_openssl(void)
{
	char path[256], cmd[600], got[128] = "", *buf, *nl2, *prev;
	unsigned long lines = 0;
	struct est_error e;
	size_t len;
	FILE *p;

	path_in(path, sizeof(path), "good.log");
	tap_ok(fill(path, 10, 1) == 0 && est_audit_verify(path, &lines, &e) == 0 && lines == 10,
	       "ten appended events verify as a chain of ten lines");
	snprintf(cmd, sizeof(cmd), "head -n 1 '%s' | tr -d '\\n' | openssl dgst -sha256 -r", path);
	if ((p = popen(cmd, "r")) != NULL) {
		if (fgets(got, sizeof(got), p) == NULL)
			got[0] = '\0';
		pclose(p);
	}
	buf = slurp(path, &len);
	nl2 = buf ? strchr(buf, '\n') : NULL;
	prev = nl2 ? strstr(nl2, "\"prev\":\"") : NULL;
	tap_ok(prev != NULL && strlen(got) >= 64 && strncmp(prev + 8, got, 64) == 0,
	       "line 2's prev is openssl's SHA-256 of line 1");
	tap_ok(buf != NULL && strstr(buf, "\"prev\":\"0000000000000000000000000000000000000000"
				       "000000000000000000000000\"}\n") != NULL,
	       "line 1's prev is 64 zeros");
	free(buf);
}

/* Rewrite the good log with line LINE (1-based) edited by OP, into NAME. */
static void
tamper(const char *good, const char *name, int op, int line, char *out, size_t size)
{
	size_t len, i, start = 0, end;
	char *buf = slurp(good, &len);
	int n = 1;
	FILE *f;

	path_in(out, size, name);
	f = fopen(out, "wb");
	for (i = 0; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		end = i + 1;
		if (n != line)
			fwrite(buf + start, 1, end - start, f);
		else if (op == 'e') {           /* edit the timestamp, keep it JSON */
			buf[start + 20] = buf[start + 20] == '9' ? '8' : '9';
			fwrite(buf + start, 1, end - start, f);
		}
		else if (op == 'j')             /* not JSON any more */
			fputs("{\"ts\":\n", f);
		else if (op == 'f')             /* a field removed */
			fprintf(f, "{\"event\":\"x\",\"prev\":\"00\"}\n");
		/* 'd': deleted */
		start = end;
		n++;
	}
	if (op == 't')                          /* torn last line */
		fputs("{\"ts\":\"2025", f);
	fclose(f);
	free(buf);
}

static void
test_tampering(void)
{
	static const struct {
		const char *name;
		int op, line;
		unsigned long bad;
		const char *msg;
	} cases[] = {
		{ "edit.log", 'e', 4, 4, "line 4: changed" },
		{ "editlast2.log", 'e', 9, 9, "line 9: changed" },
		{ "delete.log", 'd', 5, 4, "line 4: changed, or a line after it removed" },
		{ "delete1.log", 'd', 1, 1, "line 1: prev is not zeros" },
		{ "notjson.log", 'j', 6, 6, "line 6: not JSON" },
		{ "field.log", 'f', 3, 3, "line 3: missing ts, event or prev" },
		{ "torn.log", 't', 0, 11, "line 11: incomplete" },
	};
	char good[256], path[256];
	unsigned long bad;
	struct est_error e;
	size_t i;
	int rc;

	path_in(good, sizeof(good), "good.log");
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		tamper(good, cases[i].name, cases[i].op, cases[i].line, path, sizeof(path));
		bad = 0;
		rc = est_audit_verify(path, &bad, &e);
		tap_ok(rc == -EST_ENEGATIVE && bad == cases[i].bad &&
		       strncmp(e.msg, cases[i].msg, strlen(cases[i].msg)) == 0,
		       "verify names line %lu for %s (%s)", cases[i].bad, cases[i].name,
		       rc < 0 ? e.msg : "passed");
	}
	path_in(path, sizeof(path), "missing.log");
	tap_ok(est_audit_verify(path, &bad, &e) == -EST_ENOINPUT, "verify of a missing log is no input");
	path_in(path, sizeof(path), "empty.log");
	spit(path, "", 0);
	tap_ok(est_audit_verify(path, &bad, &e) == 0 && bad == 0, "an empty log verifies with 0 lines");
}

static void
test_torn_repair(void)
{
	char path[256], *buf;
	unsigned long lines = 0;
	struct est_audit a;
	struct est_error e;
	size_t len;
	int ok;

	path_in(path, sizeof(path), "torn.log");   /* made by test_tampering */
	ok = est_audit_open_file(path, 0, &a, &e) == 0;
	est_audit_close(&a);
	tap_ok(ok && est_audit_verify(path, &lines, &e) == 0 && lines == 11,
	       "opening a log with a torn last line cuts it off and the chain verifies");
	buf = slurp(path, &len);
	tap_ok(buf != NULL && strstr(buf, "\"event\":\"audit_log_repaired\"") != NULL &&
	       strstr(buf, "incomplete last line of 11 bytes") != NULL && buf[len - 1] == '\n',
	       "the repair is logged with the length cut off");
	free(buf);
	path_in(path, sizeof(path), "nope.log");
	tap_ok(est_audit_open_file(path, 0, &a, &e) == -EST_ENOINPUT,
	       "opening a missing log without create is no input");
}

static void
test_failed_append(void)
{
	struct est_audit_event ev = { .kind = EST_AUDIT_SERVER_STARTED };
	char path[256], big[3000];
	unsigned long lines = 0;
	struct est_audit a;
	struct est_error e;
	struct stat st;
	off_t before;
	pid_t pid;
	int status = -1, rc;

	rc = est_audit_open_file("/dev/full", 0, &a, &e) == 0 ? est_audit_append(&a, &ev, 1, &e) : 1;
	est_audit_close(&a);
	tap_ok(rc == -EST_EIO, "an append to a full disk fails as I/O");

	path_in(path, sizeof(path), "good.log");
	stat(path, &st);
	before = st.st_size;
	memset(big, 'r', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ev.reason = big;
	/* A file size limit makes the write stop part-way, like a full disk.
	 * The child must not print the TAP lines still buffered: _exit skips
	 * stdio, but valgrind's libc cleanup at exit flushes it. */
	fflush(stdout);
	if ((pid = fork()) == 0) {
		struct rlimit rl = { (rlim_t)before + 100, (rlim_t)before + 100 };

		signal(SIGXFSZ, SIG_IGN);
		setrlimit(RLIMIT_FSIZE, &rl);
		if (est_audit_open_file(path, 0, &a, &e) < 0)
			_exit(2);
		_exit(est_audit_append(&a, &ev, 1, &e) == -EST_EIO ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	stat(path, &st);
	tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0 && st.st_size == before &&
	       est_audit_verify(path, &lines, &e) == 0 && lines == 10,
	       "a write cut short is undone: the log keeps its length and its chain");
}

/* Two processes append at once; flock and the tail re-read keep one chain. */
static void
test_two_processes(void)
{
	char path[256];
	unsigned long lines = 0;
	struct est_audit a;
	struct est_error e;
	long long batch = 0;
	pid_t pid;
	int status = -1, rc, ok;

	path_in(path, sizeof(path), "shared.log");
	fflush(stdout);
	if ((pid = fork()) == 0)
		_exit(fill(path, 60, 1000) == 0 ? 0 : 1);
	rc = fill(path, 60, 1);
	waitpid(pid, &status, 0);
	ok = rc == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	tap_ok(ok && est_audit_verify(path, &lines, &e) == 0 && lines == 120,
	       "two processes appending 60 events each leave one chain of 120 lines");
	ok = est_audit_open_file(path, 0, &a, &e) == 0 &&
	     a.ops->last_batch(a.ctx, &batch, &e) == 0;
	est_audit_close(&a);
	tap_ok(ok && (batch == 60 || batch == 1059), "last batch is read from the last line (%lld)",
	       batch);
}

static void
test_last_batch_scan(void)
{
	struct est_audit_event ev = { .kind = EST_AUDIT_DEVICE_REVOKED, .thing = "B" };
	char path[256];
	long long batch = -1;
	struct est_audit a;
	struct est_error e;
	int i, ok;

	path_in(path, sizeof(path), "scan.log");
	ok = fill(path, 4, 41) == 0 && est_audit_open_file(path, 0, &a, &e) == 0;
	/* Enough lines without a batch to push the last batched one out of the tail. */
	for (i = 0; ok && i < 400; i++)
		ok = est_audit_append(&a, &ev, 1, &e) == 0;
	ok = ok && a.ops->last_batch(a.ctx, &batch, &e) == 0;
	est_audit_close(&a);
	tap_ok(ok && batch == 44, "last batch is found beyond the tail (%lld)", batch);
	path_in(path, sizeof(path), "fresh.log");
	ok = est_audit_open_file(path, 1, &a, &e) == 0 && a.ops->last_batch(a.ctx, &batch, &e) == 0;
	est_audit_close(&a);
	tap_ok(ok && batch == 0, "a new log's last batch is 0");
}

int
main(void)
{
	char cmd[300];

	if (mkdtemp(dir) == NULL)
		return 99;
	test_format();
	test_chain_openssl();
	test_tampering();
	test_torn_repair();
	test_failed_append();
	test_two_processes();
	test_last_batch_scan();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", dir);
	return tap_done();
}
