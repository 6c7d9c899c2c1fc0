/* Unit tests of lib/cert: RFC 3339 times, bundle parsing, and the validity
 * window's exact edges (the bats suite covers chains made by openssl). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "cert.h"
#include "key.h"
#include "tap.h"

static void
test_time_parse(void)
{
	static const struct {
		const char *in;
		long long want;         /* -1: must be refused */
	} cases[] = {
		{ "1970-01-01T00:00:00Z", 0 },
		{ "2026-01-02T03:04:05Z", 1767323045 },
		{ "2026-01-02t03:04:05z", 1767323045 },
		{ "2026-01-02 03:04:05Z", 1767323045 },
		{ "2026-01-02T05:04:05+02:00", 1767323045 },
		{ "2026-01-01T22:04:05-05:00", 1767323045 },
		{ "2026-01-02T03:04:05.999Z", 1767323045 },
		{ "2024-02-29T00:00:00Z", 1709164800 },
		{ "2016-12-31T23:59:60Z", 1483228799 },   /* a leap second, held at :59 */
		{ "2025-02-29T00:00:00Z", -1 },           /* not a leap year */
		{ "2026-13-01T00:00:00Z", -1 },
		{ "2026-00-01T00:00:00Z", -1 },
		{ "2026-04-31T00:00:00Z", -1 },
		{ "2026-01-02T24:00:00Z", -1 },
		{ "2026-01-02T03:60:00Z", -1 },
		{ "2026-01-02T03:04:05", -1 },            /* no zone */
		{ "2026-01-02T03:04:05+0200", -1 },
		{ "2026-01-02T03:04:05Z ", -1 },
		{ "2026-01-02", -1 },
		{ "26-01-02T03:04:05Z", -1 },
		{ "2026-1-02T03:04:05Z", -1 },
		{ "", -1 },
	};
	size_t i;
	time_t t;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		t = 12345;
		rc = est_cert_time_parse(cases[i].in, &t);
		if (cases[i].want < 0)
			tap_ok(rc == -1 && t == 12345, "time refuses '%s'", cases[i].in);
		else
			tap_ok(rc == 0 && (long long)t == cases[i].want, "time reads '%s' (got %lld)",
			       cases[i].in, (long long)t);
	}
}

static void
test_time_format(void)
{
	char buf[EST_CERT_TIME_LEN];
	time_t t;

	est_cert_time_format(1767323045, buf);
	tap_ok(strcmp(buf, "2026-01-02T03:04:05Z") == 0, "time formats as RFC 3339 (%s)", buf);
	tap_ok(est_cert_time_parse(buf, &t) == 0 && t == 1767323045, "time round-trips");
}

static void
test_bundle_refuses(void)
{
	static const char *const cases[] = {
		"", "garbage", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
		"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "\x30\x03\x02\x01\x01",
	};
	struct est_cert_list l;
	struct est_error e;
	gnutls_datum_t d;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		d.data = (unsigned char *)cases[i];
		d.size = (unsigned)strlen(cases[i]);
		rc = est_cert_parse_bundle(&d, "x.pem", &l, &e);
		tap_ok(rc == -EST_EDATA && l.n == 0 && strncmp(e.msg, "x.pem: ", 7) == 0,
		       "bundle refuses case %zu (%s)", i, e.msg);
	}
}

/* A self-signed CA valid over [NB, NA], signed with KEY. */
static gnutls_x509_crt_t
self_signed(gnutls_x509_privkey_t key, time_t nb, time_t na)
{
	gnutls_x509_crt_t crt = NULL;
	unsigned char serial[] = { 1 };

	if (gnutls_x509_crt_init(&crt) < 0 || gnutls_x509_crt_set_key(crt, key) < 0 ||
	    gnutls_x509_crt_set_version(crt, 3) < 0 ||
	    gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)) < 0 ||
	    gnutls_x509_crt_set_dn(crt, "CN=unit root", NULL) < 0 ||
	    gnutls_x509_crt_set_activation_time(crt, nb) < 0 ||
	    gnutls_x509_crt_set_expiration_time(crt, na) < 0 ||
	    gnutls_x509_crt_set_basic_constraints(crt, 1, -1) < 0 ||
	    gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN) < 0 ||
	    gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0) < 0) {
		gnutls_x509_crt_deinit(crt);
		return NULL;
	}
	return crt;
}

static void
test_validity_edges(void)
{
	const time_t nb = 1767323045, na = nb + 86400;
	static const struct {
		long long offset;       /* from nb */
		int want;               /* 0 or -EST_ENEGATIVE */
		const char *msg;
	} cases[] = {
		{ -1, -EST_ENEGATIVE, "r.pem: not yet valid until 2026-01-02T03:04:05Z" },
		{ 0, 0, "" },
		{ 86400, 0, "" },
		{ 86401, -EST_ENEGATIVE, "r.pem: expired on 2026-01-03T03:04:05Z" },
	};
	gnutls_x509_privkey_t key = NULL;
	struct est_cert_list bundle = { NULL, 0 };
	struct est_error e;
	gnutls_privkey_t pk = NULL;
	bool match = false;
	size_t i;
	int rc;

	if (est_key_generate(EST_KEY_EC_P256, &key, &e) < 0 ||
	    (bundle.crts = gnutls_malloc(sizeof(*bundle.crts))) == NULL ||
	    (bundle.crts[0] = self_signed(key, nb, na)) == NULL) {
		tap_ok(0, "making a self-signed certificate");
		goto out;
	}
	bundle.n = 1;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&e, 0, sizeof(e));
		rc = est_cert_verify(bundle.crts[0], NULL, &bundle, nb + cases[i].offset, "r.pem",
				     "b.pem", &e);
		tap_ok(rc == cases[i].want && strcmp(e.msg, cases[i].msg) == 0,
		       "validity at notBefore%+lld: %d '%s'", cases[i].offset, rc, e.msg);
	}
	rc = gnutls_privkey_init(&pk);
	if (rc == 0)
		rc = gnutls_privkey_import_x509(pk, key, 0);
	tap_ok(rc == 0 && est_cert_key_match(bundle.crts[0], pk, &match, &e) == 0 && match,
	       "the certificate's own key matches");
out:
	gnutls_privkey_deinit(pk);
	gnutls_x509_privkey_deinit(key);
	est_cert_list_free(&bundle);
}

int
main(void)
{
	test_time_parse();
	test_time_format();
	test_bundle_refuses();
	test_validity_edges();
	return tap_done();
}
