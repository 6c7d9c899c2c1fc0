/* Unit tests of the EST client's pure parts: URLs, pins, reasons, PKCS#7 and
 * csrattrs replies, and the check of an issued certificate. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>
#include <gnutls/pkcs7.h>

#include "b64.h"
#include "client.h"
#include "tap.h"

#include <time.h>

static void
test_base_url(void)
{
	static const struct {
		const char *url, *label, *want;     /* want NULL: refused */
	} cases[] = {
		{ "https://est.example.com", NULL, "https://est.example.com/.well-known/est/" },
		{ "https://est.example.com/", NULL, "https://est.example.com/.well-known/est/" },
		{ "https://h:8443", "fleet", "https://h:8443/.well-known/est/fleet/" },
		{ "https://x.execute-api.eu-west-2.amazonaws.com/prod//", NULL,
		  "https://x.execute-api.eu-west-2.amazonaws.com/prod/.well-known/est/" },
		{ "https://h/.well-known/est", NULL, "https://h/.well-known/est/" },
		{ "https://h/.well-known/est/", "a", "https://h/.well-known/est/a/" },
		{ "https://h/.well-known/est/a", NULL, "https://h/.well-known/est/a/" },
		{ "https://h/.well-known/est/a/", "a", "https://h/.well-known/est/a/" },
		{ "HTTPS://h", NULL, "HTTPS://h/.well-known/est/" },
		{ "https://h/.well-known/est/a", "b", NULL },     /* two labels */
		{ "https://h/.well-known/est/a/b", NULL, NULL },
		{ "http://h", NULL, NULL },                       /* EST runs over TLS */
		{ "https://", NULL, NULL },
		{ "https:///x", NULL, NULL },
		{ "https://h/?x=1", NULL, NULL },
		{ "https://h/#x", NULL, NULL },
		{ "https://h/a b", NULL, NULL },
		{ "https://h", "../x", NULL },
		{ "https://h", "", NULL },
		{ "https://h", ".x", NULL },
		{ "est.example.com", NULL, NULL },
	};
	struct est_error e;
	size_t i;
	char *out;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = est_client_base_url(cases[i].url, cases[i].label, &out, &e);
		if (cases[i].want == NULL)
			tap_ok(rc == -EST_ECONFIG && out == NULL, "base url refuses %s label %s",
			       cases[i].url, cases[i].label ? cases[i].label : "-");
		else
			tap_ok(rc == 0 && strcmp(out, cases[i].want) == 0, "base url %s label %s -> %s",
			       cases[i].url, cases[i].label ? cases[i].label : "-", out ? out : "(null)");
		free(out);
	}
}

static void
test_pin(void)
{
	static const char hex[] =
		"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	static const struct {
		const char *pin;
		int ok;
	} cases[] = {
		{ "SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 1 },
		{ "sha256:0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF", 1 },
		{ "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 1 },
		{ "SHA256:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:"
		  "01:23:45:67:89:AB:CD:EF", 1 },
		{ "SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde", 0 },
		{ "SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef00", 0 },
		{ "SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg", 0 },
		{ "SHA1:0123456789abcdef0123456789abcdef01234567", 0 },
		{ "", 0 },
	};
	unsigned char sha[32], want[32];
	struct est_error e;
	size_t i;
	int rc;

	for (i = 0; i < 32; i++)
		want[i] = (unsigned char)strtoul((char[]){ hex[2 * i], hex[2 * i + 1], 0 }, NULL, 16);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(sha, 0, sizeof(sha));
		rc = est_client_pin_parse(cases[i].pin, sha, &e);
		if (cases[i].ok)
			tap_ok(rc == 0 && memcmp(sha, want, 32) == 0, "pin %s is read", cases[i].pin);
		else
			tap_ok(rc == -EST_EUSAGE, "pin '%s' is refused", cases[i].pin);
	}
}

static void
test_reason(void)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "wrong password\n", "wrong password" },
		{ "first\r\nsecond\n", "first" },
		{ "  \n  padded  \n", "padded" },
		{ "bell\a and \x1b[31mred\n", "bell? and ?[31mred" },
		{ "caf\xc3\xa9", "caf??" },
		{ "", "" },
	};
	char out[EST_CLIENT_REASON_MAX + 1], big[1000];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		est_client_reason((const unsigned char *)cases[i].in, strlen(cases[i].in), out,
				  sizeof(out));
		tap_ok(strcmp(out, cases[i].want) == 0, "reason '%s' is '%s'", cases[i].want, out);
	}
	memset(big, 'x', sizeof(big));
	est_client_reason((unsigned char *)big, sizeof(big), out, sizeof(out));
	tap_ok(strlen(out) == EST_CLIENT_REASON_MAX && strcmp(out + EST_CLIENT_REASON_MAX - 3, "...") == 0,
	       "a long reason is cut to %d characters ending in ...", EST_CLIENT_REASON_MAX);
	est_client_reason((unsigned char *)big, sizeof(big), out, 8);
	tap_ok(strcmp(out, "xxxx...") == 0, "a reason fits a small buffer");
}

/* A P-256 key as gnutls_x509_privkey_t. */
static gnutls_x509_privkey_t
new_key(void)
{
	gnutls_x509_privkey_t k;

	gnutls_x509_privkey_init(&k);
	gnutls_x509_privkey_generate(k, GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
	return k;
}

static void
set_basics(gnutls_x509_crt_t crt, unsigned serial, int ca)
{
	unsigned char s[2] = { 0x01, (unsigned char)serial };
	time_t now = time(NULL);

	gnutls_x509_crt_set_version(crt, 3);
	gnutls_x509_crt_set_serial(crt, s, sizeof(s));
	gnutls_x509_crt_set_activation_time(crt, now - 60);
	gnutls_x509_crt_set_expiration_time(crt, now + 86400);
	gnutls_x509_crt_set_basic_constraints(crt, ca, -1);
	if (ca)
		gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_KEY_CERT_SIGN);
}

static gnutls_x509_crt_t
new_ca(gnutls_x509_privkey_t key, const char *cn)
{
	gnutls_x509_crt_t crt;

	gnutls_x509_crt_init(&crt);
	set_basics(crt, 1, 1);
	gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn));
	gnutls_x509_crt_set_key(crt, key);
	gnutls_x509_crt_sign2(crt, crt, key, GNUTLS_DIG_SHA256, 0);
	return crt;
}

static gnutls_x509_crq_t
new_csr(gnutls_x509_privkey_t key, const char *cn)
{
	gnutls_x509_crq_t crq;

	gnutls_x509_crq_init(&crq);
	gnutls_x509_crq_set_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn));
	gnutls_x509_crq_set_key(crq, key);
	gnutls_x509_crq_sign2(crq, key, GNUTLS_DIG_SHA256, 0);
	return crq;
}

static gnutls_x509_crt_t
issue(gnutls_x509_crq_t crq, gnutls_x509_crt_t ca, gnutls_x509_privkey_t cakey, const char *cn)
{
	gnutls_x509_crt_t crt;

	gnutls_x509_crt_init(&crt);
	gnutls_x509_crt_set_crq(crt, crq);
	if (cn != NULL)
		gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn, strlen(cn));
	set_basics(crt, 2, 0);
	gnutls_x509_crt_sign2(crt, ca, cakey, GNUTLS_DIG_SHA256, 0);
	return crt;
}

static void
pkcs7_of(gnutls_x509_crt_t *crts, unsigned n, gnutls_datum_t *der)
{
	gnutls_pkcs7_t p7;
	unsigned i;

	gnutls_pkcs7_init(&p7);
	for (i = 0; i < n; i++)
		gnutls_pkcs7_set_crt(p7, crts[i]);
	gnutls_pkcs7_export2(p7, GNUTLS_X509_FMT_DER, der);
	gnutls_pkcs7_deinit(p7);
}

static int
same_crt(gnutls_x509_crt_t a, gnutls_x509_crt_t b)
{
	return gnutls_x509_crt_equals(a, b) != 0;
}

static void
test_certs_parse(gnutls_x509_crt_t ca, gnutls_x509_crt_t leaf)
{
	gnutls_x509_crt_t both[2] = { leaf, ca };
	gnutls_datum_t der, wrapped, flat;
	struct est_certs got;
	struct est_error e;
	char junk[] = "<html>oops</html>";

	pkcs7_of(both, 2, &der);
	est_b64_encode(der.data, der.size, 1, &wrapped, &e);
	est_b64_encode(der.data, der.size, 0, &flat, &e);
	tap_ok(est_client_certs_parse(wrapped.data, wrapped.size, "t", &got, &e) == 0 && got.n == 2 &&
	       same_crt(got.crt[0], leaf) && same_crt(got.crt[1], ca),
	       "certs-only PKCS#7 in base64 with line breaks gives both certificates in order");
	est_certs_free(&got);
	tap_ok(est_client_certs_parse(flat.data, flat.size, "t", &got, &e) == 0 && got.n == 2,
	       "certs-only PKCS#7 in base64 on one line is read");
	est_certs_free(&got);
	tap_ok(est_client_certs_parse(der.data, der.size, "t", &got, &e) == 0 && got.n == 2,
	       "certs-only PKCS#7 sent as plain DER is read");
	est_certs_free(&got);
	tap_ok(est_client_certs_parse((unsigned char *)junk, strlen(junk), "t", &got, &e) ==
	       -EST_EPROTO && got.n == 0, "an HTML page is a protocol error");
	tap_ok(est_client_certs_parse(flat.data, flat.size / 2 & ~3u, "t", &got, &e) == -EST_EPROTO,
	       "a truncated PKCS#7 is a protocol error");
	tap_ok(est_client_certs_parse((unsigned char *)"", 0, "t", &got, &e) == -EST_EPROTO,
	       "an empty reply is a protocol error");
	gnutls_free(der.data);
	gnutls_free(wrapped.data);
	gnutls_free(flat.data);
}

static void
test_check_issued(void)
{
	gnutls_x509_privkey_t cakey = new_key(), otherkey = new_key(), devkey = new_key();
	gnutls_x509_crt_t ca = new_ca(cakey, "CA"), other = new_ca(otherkey, "Other CA");
	gnutls_x509_crq_t crq = new_csr(devkey, "DeviceAlpha"), crq2 = new_csr(otherkey, "DeviceAlpha");
	gnutls_x509_crt_t leaf = issue(crq, ca, cakey, NULL);
	gnutls_x509_crt_t renamed = issue(crq, ca, cakey, "DeviceBeta");
	gnutls_x509_crt_t foreign = issue(crq, other, otherkey, NULL);
	struct est_certs cas = { &ca, 1 }, others = { &other, 1 };
	struct est_certs r1 = { &leaf, 1 }, r2 = { &renamed, 1 }, r3 = { &foreign, 1 };
	gnutls_x509_crt_t withca[2] = { ca, leaf };
	struct est_certs r4 = { withca, 2 };
	struct est_error e;
	unsigned i = 9;

	tap_ok(est_client_check_issued(&r1, crq, &cas, &i, &e) == 0 && i == 0,
	       "an issued certificate with the CSR's key and subject chaining to the CA is accepted");
	tap_ok(est_client_check_issued(&r4, crq, &cas, &i, &e) == 0 && i == 1,
	       "the certificate is found after the CA in the reply");
	tap_ok(est_client_check_issued(&r4, NULL, &cas, &i, &e) == 0 && i == 1,
	       "without a CSR the non-CA certificate is taken");
	tap_ok(est_client_check_issued(&r1, crq2, &cas, &i, &e) == -EST_EPROTO &&
	       strstr(e.msg, "public key") != NULL, "a certificate for another key is refused");
	tap_ok(est_client_check_issued(&r2, crq, &cas, &i, &e) == -EST_EPROTO &&
	       strstr(e.msg, "subject") != NULL, "a certificate with another subject is refused");
	tap_ok(est_client_check_issued(&r3, crq, &cas, &i, &e) == -EST_EPROTO &&
	       strstr(e.msg, "chain") != NULL, "a certificate from another CA is refused");
	tap_ok(est_client_check_issued(&r1, crq, &others, &i, &e) == -EST_EPROTO,
	       "a certificate is refused against the wrong CA list");
	test_certs_parse(ca, leaf);
	gnutls_x509_crt_deinit(leaf);
	gnutls_x509_crt_deinit(renamed);
	gnutls_x509_crt_deinit(foreign);
	gnutls_x509_crt_deinit(ca);
	gnutls_x509_crt_deinit(other);
	gnutls_x509_crq_deinit(crq);
	gnutls_x509_crq_deinit(crq2);
	gnutls_x509_privkey_deinit(cakey);
	gnutls_x509_privkey_deinit(otherkey);
	gnutls_x509_privkey_deinit(devkey);
}

static void
test_csrattrs(void)
{
	static const struct {
		const char *b64;
		const char *want;       /* entries joined by '|'; NULL: refused */
		const char *what;
	} cases[] = {
		/* RFC 7030 appendix A.4 */
		{ "MEEGCSqGSIb3DQEJBzASBgcqhkjOPQIBMQcGBSuBBAAiMBYGCSqGSIb3DQEJDjEJBgcrBgEBAQEWBggqhkjOPQQDAw==",
		  "1.2.840.113549.1.9.7|1.2.840.10045.2.1 1.3.132.0.34|"
		  "1.2.840.113549.1.9.14 1.3.6.1.1.1.1.22|1.2.840.10045.4.3.3", "RFC 7030's example" },
		/* made by openssl asn1parse -genconf (tests/interop) */
		{ "MC0GCSqGSIb3DQEJBwYIKoZIzj0EAwIwFgYJKoZIhvcNAQkOMQkGBysGAQEBARY=",
		  "1.2.840.113549.1.9.7|1.2.840.10045.4.3.2|1.2.840.113549.1.9.14 1.3.6.1.1.1.1.22",
		  "the interop responder's" },
		{ "MAA=", "", "an empty sequence" },
		{ "MDoGCSqGSIb3DQEJBwYIKoZIzj0EAwIwIwYJKoZIhvcNAQkOMRYGFGmD+KqwvLWiuqbl", NULL,
		  "a truncated one" },
		{ "BAMBAgM=", NULL, "an octet string" },
	};
	struct est_error e;
	gnutls_datum_t der;
	char joined[512];
	char **v;
	size_t i, j, n;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		est_b64_decode(cases[i].b64, strlen(cases[i].b64), &der, &e);
		rc = est_client_csrattrs_parse(der.data, der.size, &v, &n, &e);
		joined[0] = '\0';
		for (j = 0; rc == 0 && j < n; j++) {
			if (j > 0)
				strcat(joined, "|");
			strncat(joined, v[j], sizeof(joined) - strlen(joined) - 2);
		}
		if (cases[i].want == NULL)
			tap_ok(rc == -EST_EPROTO && v == NULL, "csrattrs: %s is refused", cases[i].what);
		else
			tap_ok(rc == 0 && strcmp(joined, cases[i].want) == 0, "csrattrs: %s gives %s",
			       cases[i].what, joined);
		for (j = 0; rc == 0 && j < n; j++)
			free(v[j]);
		free(v);
		gnutls_free(der.data);
	}
}

int
main(void)
{
	gnutls_global_init();
	tap_diag("GnuTLS %s", gnutls_check_version(NULL));
	test_base_url();
	test_pin();
	test_reason();
	test_check_issued();
	test_csrattrs();
	gnutls_global_deinit();
	return tap_done();
}
