/* Benchmark (not a test): durable issuances per second through the group
 * committer with 1 and 8 threads, against the rate of single fsync'd 200-byte
 * appends measured in the same run on the same file system.
 *   bench/commit_rate [DIR] [SECONDS]     (DIR defaults to ".", on real disk) */
#include "config.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "commit.h"

static double seconds = 2.0;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The reference: one write(2) of 200 bytes and one fsync(2) per record. */
static double
append_rate(const char *dir)
{
	char path[512], line[200];
	double t0, t;
	long n = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/append.ref", dir);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_TRUNC, 0600)) < 0)
		return 0;
	memset(line, 'x', sizeof(line) - 1);
	line[sizeof(line) - 1] = '\n';
	t = t0 = now();
	while (t - t0 < seconds) {
		if (write(fd, line, sizeof(line)) != (ssize_t)sizeof(line) || fsync(fd) != 0)
			break;  /* a failing disk: the rate of what did succeed */
		n++;
		t = now();
	}
	close(fd);
	unlink(path);
	return n > 0 ? (double)n / (t - t0) : 0;
}

struct worker {
	struct est_committer *c;
	int id;
	double stop;
	long done, failed;
};

static void *
work(void *arg)
{
	struct worker *w = arg;
	char thing[64], serial[64];
	struct est_error e;

	while (now() < w->stop) {
		snprintf(thing, sizeof(thing), "bench-%d-%ld", w->id, w->done + w->failed);
		snprintf(serial, sizeof(serial), "%02x%08lx", w->id, w->done + w->failed);
		struct est_commit_rec r = {
			.mode = EST_COMMIT_NEW, .thing_name = thing,
			.profile_json = "{\"version\":1,\"thingName\":\"bench\",\"permissions\":[]}",
			.iot_policy_json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}",
			.cert = { .serial_hex = serial, .not_before = 1, .not_after = 2,
				  .key_sha256 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
				  .pem = "-----BEGIN CERTIFICATE-----\n(about 700 bytes in real life)\n" },
			.remote = "127.0.0.1", .label = "", .auth = "sealed",
		};
		if (est_commit_issue(w->c, &r, &e) == 0)
			w->done++;
		else
			w->failed++;
	}
	return NULL;
}

static double
commit_rate(const char *dir, int threads, double *per_batch)
{
	char db[512], log[512];
	struct worker w[64];
	pthread_t t[64];
	struct est_registry reg;
	struct est_audit audit;
	struct est_committer *c;
	struct est_error e;
	unsigned long long batches = 0, records = 0;
	double t0, t1;
	long total = 0;
	int i;

	snprintf(db, sizeof(db), "%s/bench-%d.db", dir, threads);
	snprintf(log, sizeof(log), "%s/bench-%d.log", dir, threads);
	if (est_reg_sqlite_open(db, 1, &reg, &e) < 0 || est_audit_open_file(log, 1, &audit, &e) < 0 ||
	    est_commit_start(&reg, &audit, &c, &e) < 0) {
		fprintf(stderr, "commit_rate: %s\n", e.msg);
		exit(1);
	}
	t0 = now();
	for (i = 0; i < threads; i++) {
		w[i] = (struct worker){ .c = c, .id = i, .stop = t0 + seconds };
		pthread_create(&t[i], NULL, work, &w[i]);
	}
	for (i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		total += w[i].done;
		if (w[i].failed)
			fprintf(stderr, "commit_rate: %ld failures\n", w[i].failed);
	}
	t1 = now();
	est_commit_stats(c, &batches, &records);
	est_commit_stop(c);
	est_audit_close(&audit);
	est_reg_close(&reg);
	*per_batch = batches ? (double)records / (double)batches : 0;
	unlink(db);
	unlink(log);
	snprintf(db, sizeof(db), "%s/bench-%d.db-wal", dir, threads);
	unlink(db);
	snprintf(db, sizeof(db), "%s/bench-%d.db-shm", dir, threads);
	unlink(db);
	return (double)total / (t1 - t0);
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : ".";
	static const int threads[] = { 1, 8 };
	double ref, rate, per;
	size_t i;

	if (argc > 2)
		seconds = atof(argv[2]);
	ref = append_rate(dir);
	printf("reference: fsync'd 200-byte appends: %.0f/s\n", ref);
	for (i = 0; i < sizeof(threads) / sizeof(threads[0]); i++) {
		rate = commit_rate(dir, threads[i], &per);
		printf("committer, %d thread%s: %.0f issues/s (%.1f per batch), %.2fx the reference\n",
		       threads[i], threads[i] > 1 ? "s" : "", rate, per, ref > 0 ? rate / ref : 0);
	}
	return 0;
}
