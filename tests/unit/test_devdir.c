/* Unit tests of lib/devdir: the due-time formula against values computed
 * independently (Python's hashlib, see the table), and est.json round trips.
 * The swap and its crash recovery are exercised on real files by rotate.bats. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devdir.h"
#include "tap.h"

#define D 86400LL
#define NB 1700000000LL

static void
test_due(void)
{
	static const struct {
		long long nb, na;
		double at;
		long long before;
		const char *serial;     /* hex */
		long long want;
		const char *what;
	} cases[] = {
		{ NB, NB + 365 * D, 2.0 / 3, -1, "01", 1723922927, "2/3 of a year, serial 01" },
		{ NB, NB + 365 * D, 2.0 / 3, -1, "5b9c96b016b079966d3611be7e65f38f", 1723980160,
		  "2/3 of a year, a 16-byte serial" },
		{ NB, NB + 365 * D, 0.5, -1, "5b9c96b016b079966d3611be7e65f38f", 1718724160,
		  "half a year" },
		{ NB, NB + 365 * D, 2.0 / 3, 30 * D, "5b9c96b016b079966d3611be7e65f38f", 1730014861,
		  "--before 30d: jitter at most 15 days" },
		{ NB, NB + D, 2.0 / 3, 3 * D, "42", 1699835555,
		  "--before longer than the lifetime: due before it began" },
		{ NB, NB + 30 * D, 0, -1, "42", 1700011417, "--at 0: within the first tenth" },
		{ NB, NB + 30 * D, 2.0 / 3, 0, "42", NB + 30 * D, "--before 0: at expiry, no jitter" },
		{ NB, NB, 2.0 / 3, -1, "42", NB, "no lifetime" },
		{ NB, NB + 5, 2.0 / 3, -1, "42", NB + 3, "a 5-second certificate: no jitter" },
	};
	unsigned char serial[64];
	size_t i, j, n;
	long long got;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		n = strlen(cases[i].serial) / 2;
		for (j = 0; j < n; j++)
			sscanf(cases[i].serial + 2 * j, "%2hhx", &serial[j]);
		got = (long long)est_devdir_due((time_t)cases[i].nb, (time_t)cases[i].na, cases[i].at,
						cases[i].before, serial, n);
		tap_ok(got == cases[i].want, "due: %s (want %lld, got %lld)", cases[i].what,
		       cases[i].want, got);
	}
}

/* Over many serials the jitter stays in [start, start + lifetime/10]. */
static void
test_due_spread(void)
{
	unsigned char serial[4];
	long long start = NB + 240 * D, lo = -1, hi = -1, t;
	unsigned i, outside = 0;

	for (i = 0; i < 2000; i++) {
		memcpy(serial, &i, sizeof(i));
		t = (long long)est_devdir_due((time_t)NB, (time_t)(NB + 360 * D), 2.0 / 3, -1,
					      serial, sizeof(serial));
		outside += t < start || t > start + 36 * D;
		lo = lo < 0 || t < lo ? t : lo;
		hi = t > hi ? t : hi;
	}
	tap_ok(outside == 0, "due: 2000 serials stay within the tenth of the lifetime after 2/3");
	tap_ok(hi - lo > 30 * D, "due: 2000 serials spread over most of it (%lld days)",
	       (hi - lo) / D);
}

static int
meta_text(const char *dir, const char *text)
{
	char *p = est_devdir_path(dir, EST_DEVDIR_META);
	FILE *f = p != NULL ? fopen(p, "w") : NULL;
	int rc = f != NULL && fputs(text, f) >= 0 ? 0 : -1;

	if (f != NULL && fclose(f) != 0)
		rc = -1;
	free(p);
	return rc;
}

static void
test_meta_round_trip(const char *dir)
{
	static char *res0[] = { "client/DevA" }, *res1[] = { "topic/DevA/a", "topic/DevA/b" };
	struct est_permission perms[] = {
		{ EST_ACT_CONNECT, EST_EFFECT_ALLOW, 1, res0 },
		{ EST_ACT_PUBLISH, EST_EFFECT_DENY, 2, res1 },
	};
	struct est_devdir_meta m = { .url = "https://est.example.com", .label = "iot",
				     .cacert = "server-ca.pem", .have_profile = true,
				     .profile = { 1, "DevA", 2, perms } }, r;
	struct est_error e = { 0 };
	int rc;

	rc = est_devdir_meta_write(dir, &m, &e);
	tap_ok(rc == 0, "meta: written (%s)", e.msg);
	rc = est_devdir_meta_read(dir, &r, &e);
	tap_ok(rc == 1 && strcmp(r.url, m.url) == 0 && strcmp(r.label, "iot") == 0 &&
	       strcmp(r.cacert, "server-ca.pem") == 0 && !r.system_store,
	       "meta: url, label, cacert read back (%s)", e.msg);
	tap_ok(rc == 1 && r.have_profile && strcmp(r.profile.thing_name, "DevA") == 0 &&
	       r.profile.npermissions == 2 && r.profile.permissions[1].effect == EST_EFFECT_DENY &&
	       r.profile.permissions[1].nresources == 2 &&
	       strcmp(r.profile.permissions[1].resources[1], "topic/DevA/b") == 0,
	       "meta: the profile reads back as IoTDetails");
	if (rc == 1)
		est_devdir_meta_free(&r);
	rc = est_devdir_meta_write(dir, &m, &e);
	tap_ok(rc == -EST_EEXIST, "meta: an existing est.json is not overwritten");
}

static void
test_meta_bad(const char *dir)
{
	static const struct {
		const char *text;
		const char *want;       /* in the message */
	} cases[] = {
		{ "[]", "expected an object" },
		{ "{\"label\": \"x\"}", "url is missing" },
		{ "{\"url\": 5}", "url: expected a non-empty string" },
		{ "{\"url\": \"https://a\", \"system_store\": \"yes\"}", "system_store" },
		{ "{\"url\": \"https://a\", \"IoTDetails\": {\"ThingName\": \"a/b\"}}", "ThingName" },
		{ "{\"url\": \"https://a\",}", "est.json" },
	};
	struct est_devdir_meta m;
	struct est_error e;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&e, 0, sizeof(e));
		rc = meta_text(dir, cases[i].text) == 0 ? est_devdir_meta_read(dir, &m, &e) : 99;
		tap_ok(rc == -EST_EDATA && strstr(e.msg, cases[i].want) != NULL,
		       "meta: refuses %s (%s)", cases[i].text, e.msg);
	}
}

int
main(void)
{
	char dir[] = "/tmp/test_devdir.XXXXXX", *p;
	struct est_devdir_meta m;
	struct est_error e;

	test_due();
	test_due_spread();
	if (mkdtemp(dir) == NULL) {
		tap_ok(0, "mkdtemp");
		return tap_done();
	}
	tap_ok(est_devdir_meta_read(dir, &m, &e) == 0 && m.url == NULL,
	       "meta: no est.json reads as none");
	test_meta_round_trip(dir);
	test_meta_bad(dir);
	if ((p = est_devdir_path(dir, EST_DEVDIR_META)) != NULL)
		unlink(p);
	free(p);
	rmdir(dir);
	return tap_done();
}
