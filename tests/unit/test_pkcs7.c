/* Unit tests of lib/pkcs7: certs-only build and parse, in every input form. */
#include "config.h"

#include <string.h>

#include "b64.h"
#include "ca.h"
#include "pkcs7.h"
#include "tap.h"

#define NCERTS 3

/* GOT holds exactly WANT's certificates (DER sorts the SET OF, so in any order). */
static int
same_certs(gnutls_x509_crt_t *got, unsigned n, gnutls_x509_crt_t *want, unsigned wn)
{
	unsigned i, j, found = 0;

	for (i = 0; n == wn && i < wn; i++)
		for (j = 0; j < n; j++)
			if (gnutls_x509_crt_equals(got[j], want[i])) {
				found++;
				break;
			}
	return n == wn && found == wn;
}

static void
test_round_trip(gnutls_x509_crt_t *certs)
{
	gnutls_datum_t der = { NULL, 0 }, b64 = { NULL, 0 }, pem = { NULL, 0 };
	gnutls_x509_crt_t *got;
	struct est_error e;
	unsigned n, k;
	int rc;

	for (k = 1; k <= NCERTS; k++) {
		rc = est_pkcs7_build_crts(certs, k, &der, &e);
		tap_ok(rc == 0 && est_pkcs7_parse(der.data, der.size, "reply", &got, &n, &e) == 0 &&
		       same_certs(got, n, certs, k), "%u certificates round-trip through DER",
		       k);
		if (rc == 0 && n > 0)
			est_pkcs7_free_certs(got, n);
		if (k == NCERTS)
			break;
		gnutls_free(der.data);
	}
	rc = est_b64_encode(der.data, der.size, 1, &b64, &e);
	tap_ok(rc == 0 && est_pkcs7_parse(b64.data, b64.size, "reply", &got, &n, &e) == 0 &&
	       same_certs(got, n, certs, NCERTS), "base64 with line breaks parses (RFC 8951 body)");
	est_pkcs7_free_certs(got, n);
	rc = gnutls_pem_base64_encode2("PKCS7", &der, &pem);
	tap_ok(rc == 0 && est_pkcs7_parse(pem.data, pem.size, "reply", &got, &n, &e) == 0 &&
	       same_certs(got, n, certs, NCERTS), "PEM parses");
	est_pkcs7_free_certs(got, n);
	gnutls_free(pem.data);
	gnutls_free(b64.data);
	gnutls_free(der.data);
}

static void
test_refusals(void)
{
	static const struct {
		const char *what;
		const unsigned char *data;
		size_t len;
	} cases[] = {
		{ "empty input", (const unsigned char *)"", 0 },
		{ "bad base64", (const unsigned char *)"MII*", 4 },
		{ "a DER SEQUENCE that is not PKCS#7", (const unsigned char *)"\x30\x03\x02\x01\x01", 5 },
		{ "truncated DER", (const unsigned char *)"\x30\x82\x05\x00\x06", 5 },
	};
	gnutls_x509_crt_t *got;
	struct est_error e;
	unsigned n;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = est_pkcs7_parse(cases[i].data, cases[i].len, "reply", &got, &n, &e);
		tap_ok(rc == -EST_EDATA && got == NULL && n == 0 && strncmp(e.msg, "reply", 5) == 0,
		       "parse refuses %s (%s)", cases[i].what, e.msg);
	}
}

static void
test_empty(void)
{
	gnutls_datum_t der = { NULL, 0 };
	struct est_error e;

	tap_ok(est_pkcs7_build(NULL, 0, &der, &e) == -EST_EINTERNAL && der.data == NULL,
	       "building a reply without certificates is refused (%s)", e.msg);
}

int
main(void)
{
	gnutls_x509_crt_t certs[NCERTS] = { NULL };
	gnutls_x509_privkey_t key;
	struct est_error e;
	int i;

	for (i = 0; i < NCERTS; i++) {
		char dn[32];

		snprintf(dn, sizeof(dn), "CN=cert %d", i);
		if (est_ca_create(EST_KEY_EC_P256, dn, 86400, &key, &certs[i], &e) < 0) {
			tap_ok(0, "setting up: %s", e.msg);
			return tap_done();
		}
		gnutls_x509_privkey_deinit(key);
	}
	test_round_trip(certs);
	test_refusals();
	test_empty();
	for (i = 0; i < NCERTS; i++)
		gnutls_x509_crt_deinit(certs[i]);
	return tap_done();
}
