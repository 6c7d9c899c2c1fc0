/* Unit tests of lib/ca: every property of DESIGN.md 4.5, read back from the
 * issued certificate, for each CA key type; refusals; the init certificates. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ca.h"
#include "ca_util.h"
#include "file.h"
#include "tap.h"

#define DAY 86400LL

static int
verifies(gnutls_x509_crt_t crt, gnutls_x509_crt_t ca)
{
	unsigned status = 1;

	if (gnutls_x509_crt_verify(crt, &ca, 1, 0, &status) != 0)
		return 0;
	if (status != 0)
		tap_diag("verification status %#x", status);
	return status == 0;
}

static int
serial_ok(gnutls_x509_crt_t crt, const char *hex)
{
	unsigned char s[32];
	size_t n = sizeof(s), i;
	char buf[3];

	if (gnutls_x509_crt_get_serial(crt, s, &n) < 0 || n != 20 || s[0] == 0 || (s[0] & 0x80))
		return 0;
	for (i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "%02x", s[i]);
		if (memcmp(buf, hex + 2 * i, 2) != 0)
			return 0;
	}
	return hex[40] == '\0';
}

static int
eku_is(gnutls_x509_crt_t crt, const char *oid)
{
	char buf[128];
	size_t n = sizeof(buf);
	unsigned crit = 1;

	if (gnutls_x509_crt_get_key_purpose_oid(crt, 0, buf, &n, &crit) < 0 || strcmp(buf, oid))
		return 0;
	n = sizeof(buf);
	return gnutls_x509_crt_get_key_purpose_oid(crt, 1, buf, &n, NULL) ==
	       GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE && crit == 0;
}

/* AKI of CRT equals SKI of CA; SKI of CRT is the SHA-1 key id of PUB. */
static int
key_ids_ok(gnutls_x509_crt_t crt, gnutls_x509_crt_t ca)
{
	unsigned char a[64], b[64];
	size_t alen = sizeof(a), blen = sizeof(b);
	unsigned crit;

	if (gnutls_x509_crt_get_authority_key_id(crt, a, &alen, &crit) < 0 ||
	    gnutls_x509_crt_get_subject_key_id(ca, b, &blen, &crit) < 0 || alen != blen ||
	    memcmp(a, b, alen) != 0)
		return 0;
	alen = sizeof(a);
	blen = sizeof(b);
	return gnutls_x509_crt_get_subject_key_id(crt, a, &alen, &crit) >= 0 &&
	       gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, b, &blen) >= 0 &&
	       alen == blen && memcmp(a, b, alen) == 0;
}

static int
ski_ok(gnutls_x509_crt_t crt)
{
	unsigned char a[64], b[64];
	size_t alen = sizeof(a), blen = sizeof(b);
	unsigned crit;

	return gnutls_x509_crt_get_subject_key_id(crt, a, &alen, &crit) >= 0 &&
	       gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA1, b, &blen) >= 0 &&
	       alen == blen && memcmp(a, b, alen) == 0;
}

/* Exactly the five extensions of DESIGN.md 4.5 (the profile is not copied:
 * docs/DECISIONS.md), so GnuTLS and every other stack can read the certificate. */
static int
only_expected_extensions(gnutls_x509_crt_t crt)
{
	static const char *const want[] = { "2.5.29.19", "2.5.29.15", "2.5.29.37", "2.5.29.14",
					    "2.5.29.35" };
	char oid[128];
	size_t n, i;
	unsigned k, seen = 0;

	for (k = 0;; k++) {
		n = sizeof(oid);
		if (gnutls_x509_crt_get_extension_info(crt, k, oid, &n, NULL) < 0)
			break;
		for (i = 0; i < 5 && strcmp(oid, want[i]) != 0; i++)
			;
		if (i == 5)
			return 0;
		seen |= 1u << i;
	}
	return k == 5 && seen == 0x1f;
}

static int
dn_is(gnutls_x509_crt_t crt, const char *want)
{
	gnutls_datum_t dn = { NULL, 0 };
	int ok = gnutls_x509_crt_get_dn3(crt, &dn, 0) == 0 && strcmp((char *)dn.data, want) == 0;

	gnutls_free(dn.data);
	return ok;
}

static void
check_issued(const char *what, struct est_issued *iss, gnutls_x509_crt_t ca,
	     gnutls_x509_crq_t crq, time_t now, long long validity)
{
	unsigned crit = 0, usage = 0, ca_flag = 1;
	gnutls_pubkey_t pub = NULL;
	gnutls_x509_crt_t back = NULL;
	char sha[65] = "";

	gnutls_pubkey_init(&pub);
	gnutls_pubkey_import_x509_crq(pub, crq, 0);
	est_pubkey_sha256_hex(pub, sha, NULL);
	gnutls_pubkey_deinit(pub);
	tap_ok(verifies(iss->crt, ca), "%s: the certificate verifies under the CA", what);
	tap_ok(serial_ok(iss->crt, iss->serial_hex), "%s: serial is 20 bytes, positive, first byte "
	       "non-zero, and serial_hex matches", what);
	tap_ok(dn_is(iss->crt, "CN=Dev-1"), "%s: subject is exactly CN=ThingName", what);
	tap_ok(iss->not_before == now - EST_CA_BACKDATE && iss->not_after == now + validity &&
	       gnutls_x509_crt_get_activation_time(iss->crt) == iss->not_before &&
	       gnutls_x509_crt_get_expiration_time(iss->crt) == iss->not_after,
	       "%s: validity is now-5min .. now+validity", what);
	tap_ok(gnutls_x509_crt_get_basic_constraints(iss->crt, &crit, &ca_flag, NULL) == 0 &&
	       ca_flag == 0 && crit == 1, "%s: basicConstraints CA:FALSE, critical", what);
	tap_ok(gnutls_x509_crt_get_key_usage(iss->crt, &usage, &crit) >= 0 &&
	       usage == GNUTLS_KEY_DIGITAL_SIGNATURE && crit == 1,
	       "%s: keyUsage digitalSignature only, critical", what);
	tap_ok(eku_is(iss->crt, GNUTLS_KP_TLS_WWW_CLIENT), "%s: extKeyUsage clientAuth only", what);
	tap_ok(key_ids_ok(iss->crt, ca), "%s: SKI of the device key, AKI = CA's SKI", what);
	tap_ok(only_expected_extensions(iss->crt), "%s: exactly basicConstraints, keyUsage, "
	       "extKeyUsage, SKI, AKI (no profile OID)", what);
	tap_ok(strcmp(sha, iss->key_sha256) == 0, "%s: key_sha256 is the CSR key's", what);
	tap_ok(gnutls_x509_crt_init(&back) == 0 &&
	       gnutls_x509_crt_import(back, &iss->pem, GNUTLS_X509_FMT_PEM) == 0 &&
	       gnutls_x509_crt_equals2(back, &iss->der), "%s: PEM and DER are the same certificate",
	       what);
	gnutls_x509_crt_deinit(back);
}

static void
test_issue_per_ca_type(void)
{
	static const struct {
		enum est_key_type ca, dev;
		gnutls_sign_algorithm_t sig;
	} cases[] = {
		{ EST_KEY_EC_P256, EST_KEY_EC_P256, GNUTLS_SIGN_ECDSA_SHA256 },
		{ EST_KEY_EC_P384, EST_KEY_EC_P256, GNUTLS_SIGN_ECDSA_SHA384 },
		{ EST_KEY_ED25519, EST_KEY_ED25519, GNUTLS_SIGN_EDDSA_ED25519 },
		{ EST_KEY_RSA2048, EST_KEY_EC_P384, GNUTLS_SIGN_RSA_SHA256 },
		{ EST_KEY_EC_P256, EST_KEY_RSA2048, GNUTLS_SIGN_ECDSA_SHA256 },
	};
	struct est_signer s;
	struct est_issued iss;
	struct est_profile prof;
	struct est_error e;
	gnutls_x509_crt_t ca;
	gnutls_x509_crq_t crq;
	char what[64];
	time_t now = time(NULL);
	struct est_issue_req req = { NULL, &prof, 30 * DAY, now };
	size_t i;

	tu_profile("Dev-1", &prof);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(what, sizeof(what), "%s CA, %s CSR", est_key_type_names[cases[i].ca],
			 est_key_type_names[cases[i].dev]);
		if (tu_signer(cases[i].ca, 3650 * DAY, &s, NULL, &ca) < 0 ||
		    tu_crq(cases[i].dev, "Dev-1", &crq, NULL) < 0) {
			tap_ok(0, "%s: setting up", what);
			continue;
		}
		/* After the CA exists: a leaf never starts before its CA, so a CA made
		 * more than a second after an earlier `now` would clamp notBefore. */
		req.crq = crq;
		req.now = now = time(NULL);
		if (est_signer_issue(&s, &req, &iss, &e) == 0) {
			check_issued(what, &iss, ca, crq, now, 30 * DAY);
			tap_ok(gnutls_x509_crt_get_signature_algorithm(iss.crt) == (int)cases[i].sig,
			       "%s: signed with %s", what, gnutls_sign_get_name(cases[i].sig));
			est_issued_free(&iss);
		} else {
			tap_ok(0, "%s: issue: %s", what, e.msg);
		}
		gnutls_x509_crq_deinit(crq);
		gnutls_x509_crt_deinit(ca);
		est_signer_close(&s);
	}
	est_profile_free(&prof);
}

/* The CSR CRQ with one byte of its signature flipped. */
static gnutls_x509_crq_t
tampered(gnutls_x509_crq_t crq)
{
	gnutls_datum_t der = { NULL, 0 };
	gnutls_x509_crq_t out = NULL;

	if (gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_DER, &der) == 0) {
		der.data[der.size - 3] ^= 0x01;
		if (gnutls_x509_crq_init(&out) < 0 ||
		    gnutls_x509_crq_import(out, &der, GNUTLS_X509_FMT_DER) < 0) {
			gnutls_x509_crq_deinit(out);
			out = NULL;
		}
	}
	gnutls_free(der.data);
	return out;
}

static void
test_issue_refusals(void)
{
	struct est_signer s;
	struct est_issued iss;
	struct est_profile prof;
	struct est_error e;
	gnutls_x509_crt_t ca = NULL;
	gnutls_x509_crq_t good = NULL, other_cn = NULL, no_cn = NULL, bad = NULL;
	time_t now = time(NULL), ca_end;
	struct est_issue_req req = { NULL, &prof, 365 * DAY, now };
	int rc;

	tu_profile("Dev-1", &prof);
	if (tu_signer(EST_KEY_EC_P256, 10 * DAY, &s, NULL, &ca) < 0 ||
	    tu_crq(EST_KEY_EC_P256, "Dev-1", &good, NULL) < 0 ||
	    tu_crq(EST_KEY_EC_P256, "Dev-2", &other_cn, NULL) < 0 ||
	    tu_crq(EST_KEY_EC_P256, NULL, &no_cn, NULL) < 0 || (bad = tampered(good)) == NULL) {
		tap_ok(0, "setting up the refusal cases");
		goto out;
	}
	ca_end = gnutls_x509_crt_get_expiration_time(ca);
	req.crq = good;
	rc = est_signer_issue(&s, &req, &iss, &e);
	tap_ok(rc == 0 && iss.not_after == ca_end,
	       "365 days asked of a CA with 10 days left: notAfter is the CA's");
	if (rc == 0)
		est_issued_free(&iss);
	req.crq = bad;
	rc = est_signer_issue(&s, &req, &iss, &e);
	tap_ok(rc == -EST_EDATA && strstr(e.msg, "signature") && iss.crt == NULL,
	       "a CSR with a flipped signature byte is bad data (%s)", e.msg);
	req.crq = other_cn;
	rc = est_signer_issue(&s, &req, &iss, &e);
	tap_ok(rc == -EST_EDATA && strstr(e.msg, "'Dev-1'"),
	       "a CSR whose CN is another device is bad data (%s)", e.msg);
	req.crq = no_cn;
	rc = est_signer_issue(&s, &req, &iss, &e);
	tap_ok(rc == 0 && dn_is(iss.crt, "CN=Dev-1"), "a CSR without a subject gets CN=ThingName");
	if (rc == 0)
		est_issued_free(&iss);
	req.crq = good;
	req.now = ca_end + 1;
	rc = est_signer_issue(&s, &req, &iss, &e);
	tap_ok(rc == -EST_ECONFIG, "an expired CA is a configuration error (%s)", e.msg);
	req.now = now;
	req.validity = 0;
	tap_ok(est_signer_issue(&s, &req, &iss, &e) == -EST_EINTERNAL, "zero validity is refused");
out:
	gnutls_x509_crq_deinit(good);
	gnutls_x509_crq_deinit(other_cn);
	gnutls_x509_crq_deinit(no_cn);
	gnutls_x509_crq_deinit(bad);
	gnutls_x509_crt_deinit(ca);
	est_signer_close(&s);
	est_profile_free(&prof);
}

#define THREADS 4
#define PER_THREAD 40

struct worker {
	struct est_signer *s;
	gnutls_x509_crt_t ca;
	gnutls_x509_crq_t crq;
	const struct est_profile *prof;
	char serials[PER_THREAD][41];
	int failures, unverified;
};

static void *
work(void *arg)
{
	struct worker *w = arg;
	struct est_issue_req req = { w->crq, w->prof, DAY, 0 };
	struct est_issued iss;
	struct est_error e;
	unsigned status;
	int i;

	for (i = 0; i < PER_THREAD; i++) {
		if (est_signer_issue(w->s, &req, &iss, &e) < 0) {
			w->failures++;
			continue;
		}
		/* Concurrent signatures use different copies of the key. */
		if (gnutls_x509_crt_verify(iss.crt, &w->ca, 1, 0, &status) < 0 || status != 0)
			w->unverified++;
		memcpy(w->serials[i], iss.serial_hex, 41);
		est_issued_free(&iss);
	}
	return NULL;
}

static int
cmp_serial(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void
test_threads(void)
{
	static struct worker w[THREADS];
	static char all[THREADS * PER_THREAD][41];
	pthread_t t[THREADS];
	struct est_signer s;
	struct est_profile prof;
	gnutls_x509_crt_t ca = NULL;
	int i, failures = 0, unverified = 0, dups = 0, top = 0;

	tu_profile("Dev-1", &prof);
	if (tu_signer(EST_KEY_EC_P256, 3650 * DAY, &s, NULL, &ca) < 0) {
		tap_ok(0, "threads: setting up");
		return;
	}
	for (i = 0; i < THREADS; i++) {
		w[i].s = &s;
		w[i].ca = ca;
		w[i].prof = &prof;
		tu_crq(EST_KEY_EC_P256, "Dev-1", &w[i].crq, NULL);
		pthread_create(&t[i], NULL, work, &w[i]);
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		failures += w[i].failures;
		unverified += w[i].unverified;
		memcpy(all[i * PER_THREAD], w[i].serials, sizeof(w[i].serials));
		gnutls_x509_crq_deinit(w[i].crq);
	}
	qsort(all, THREADS * PER_THREAD, 41, cmp_serial);
	for (i = 0; i < THREADS * PER_THREAD; i++) {
		dups += i > 0 && strcmp(all[i], all[i - 1]) == 0;
		top |= strtol((char[3]){ all[i][0], all[i][1], 0 }, NULL, 16) & 0x80;
	}
	tap_ok(failures == 0 && dups == 0 && top == 0, "%d threads x %d issues on one signer: all "
	       "succeed, %d distinct positive serials", THREADS, PER_THREAD,
	       THREADS * PER_THREAD - dups);
	tap_ok(unverified == 0, "every one of them verifies under the CA (%d do not)", unverified);
	gnutls_x509_crt_deinit(ca);
	est_signer_close(&s);
	est_profile_free(&prof);
}

static void
test_ca_create(void)
{
	static const struct {
		enum est_key_type t;
		const char *dn, *want;      /* want NULL: refused */
	} cases[] = {
		{ EST_KEY_EC_P256, NULL, "CN=estctl CA" },
		{ EST_KEY_EC_P384, "CN=Acme Fleet CA,O=Acme", "CN=Acme Fleet CA,O=Acme" },
		{ EST_KEY_ED25519, "CN=ed CA", "CN=ed CA" },
		{ EST_KEY_RSA2048, "CN=rsa CA", "CN=rsa CA" },
		{ EST_KEY_EC_P256, "no equals sign", NULL },
		{ EST_KEY_AES256, NULL, NULL },
	};
	gnutls_x509_privkey_t key;
	gnutls_x509_crt_t crt;
	struct est_error e;
	unsigned crit = 0, ca = 0, usage = 0;
	int pathlen = -1, rc;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = est_ca_create(cases[i].t, cases[i].dn, 30 * DAY, &key, &crt, &e);
		if (cases[i].want == NULL) {
			tap_ok(rc == -EST_EUSAGE && key == NULL && crt == NULL,
			       "est_ca_create refuses %s / %s (%s)", est_key_type_names[cases[i].t],
			       cases[i].dn ? cases[i].dn : "default", e.msg);
			continue;
		}
		tap_ok(rc == 0 && dn_is(crt, cases[i].want) && verifies(crt, crt) &&
		       gnutls_x509_crt_get_basic_constraints(crt, &crit, &ca, &pathlen) >= 0 &&
		       ca == 1 && pathlen == 0 && crit == 1 &&
		       gnutls_x509_crt_get_key_usage(crt, &usage, &crit) >= 0 &&
		       usage == (GNUTLS_KEY_KEY_CERT_SIGN | GNUTLS_KEY_CRL_SIGN) &&
		       ski_ok(crt),
		       "%s CA '%s': self-signed, CA:TRUE pathlen 0, keyCertSign+cRLSign, SKI",
		       est_key_type_names[cases[i].t], cases[i].want);
		gnutls_x509_crt_deinit(crt);
		gnutls_x509_privkey_deinit(key);
	}
}

static void
test_tls_cert(void)
{
	static const char *const hosts[] = { "localhost", "127.0.0.1", "::1" };
	static const unsigned char v4[4] = { 127, 0, 0, 1 }, v6[16] = { [15] = 1 };
	gnutls_privkey_t cakey = NULL;
	gnutls_x509_crt_t ca = NULL, crt = NULL;
	gnutls_x509_privkey_t key = NULL;
	struct est_signer s;
	struct est_error e;
	int rc;

	if (tu_signer(EST_KEY_EC_P256, 100 * DAY, &s, &cakey, &ca) < 0) {
		tap_ok(0, "tls: setting up");
		return;
	}
	rc = est_tls_cert_create(cakey, ca, EST_KEY_EC_P256, hosts, 3, 3650 * DAY, &key, &crt, &e);
	tap_ok(rc == 0 && verifies(crt, ca) && dn_is(crt, "CN=localhost") &&
	       eku_is(crt, GNUTLS_KP_TLS_WWW_SERVER) && key_ids_ok(crt, ca),
	       "TLS certificate: signed by the CA, CN=localhost, serverAuth, SKI/AKI");
	tap_ok(rc == 0 && gnutls_x509_crt_check_hostname(crt, "localhost") &&
	       gnutls_x509_crt_check_ip(crt, v4, 4, 0) && gnutls_x509_crt_check_ip(crt, v6, 16, 0) &&
	       !gnutls_x509_crt_check_hostname(crt, "example.com"),
	       "TLS certificate names localhost, 127.0.0.1 and ::1 and nothing else");
	tap_ok(rc == 0 && gnutls_x509_crt_get_expiration_time(crt) ==
	       gnutls_x509_crt_get_expiration_time(ca), "TLS certificate ends with the CA");
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	rc = est_tls_cert_create(cakey, ca, EST_KEY_EC_P256, hosts, 0, DAY, &key, &crt, &e);
	tap_ok(rc == -EST_EUSAGE && crt == NULL, "TLS certificate without hosts is refused");
	gnutls_x509_crt_deinit(ca);
	gnutls_privkey_deinit(cakey);
	est_signer_close(&s);
}

static int
write_pem(const char *path, gnutls_x509_crt_t crt)
{
	gnutls_datum_t pem = { NULL, 0 };
	int rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem) < 0 ? -1
		: est_file_write(path, pem.data, pem.size, 0, NULL);

	gnutls_free(pem.data);
	return rc;
}

static void
test_open(void)
{
	gnutls_x509_privkey_t k1 = NULL, k2 = NULL;
	gnutls_x509_crt_t c1 = NULL, c2 = NULL, leaf = NULL;
	struct est_secret pem = { NULL, 0 };
	struct est_signer s = { NULL, NULL };
	struct est_error e;
	const gnutls_x509_crt_t *chain;
	char dir[] = "/tmp/test_ca.XXXXXX", key[64], cert[64], both[64], mis[64], junk[64];
	unsigned n = 0;
	int rc;

	if (mkdtemp(dir) == NULL || est_ca_create(EST_KEY_EC_P256, "CN=one", DAY, &k1, &c1, &e) ||
	    est_ca_create(EST_KEY_EC_P256, "CN=two", DAY, &k2, &c2, &e)) {
		tap_ok(0, "open: setting up");
		return;
	}
	snprintf(key, sizeof(key), "%s/ca.key", dir);
	snprintf(cert, sizeof(cert), "%s/ca.pem", dir);
	snprintf(both, sizeof(both), "%s/chain.pem", dir);
	snprintf(mis, sizeof(mis), "%s/two.pem", dir);
	snprintf(junk, sizeof(junk), "%s/junk.pem", dir);
	est_key_export_pem(k1, &pem, &e);
	est_file_write(key, pem.data, pem.len, EST_WRITE_PRIVATE, &e);
	write_pem(cert, c1);
	write_pem(mis, c2);
	est_file_write(junk, "not a certificate\n", 18, 0, &e);
	rc = est_ca_open(key, cert, &s, &e);
	tap_ok(rc == 0 && strcmp(s.ops->name, "local") == 0 && s.ops->chain(s.ctx, &chain, &n) == 0 &&
	       n == 1 && dn_is(chain[0], "CN=one"), "est_ca_open reads a key file and its certificate");
	est_signer_close(&s);
	rc = est_ca_open(key, mis, &s, &e);
	tap_ok(rc == -EST_ECONFIG && strstr(e.msg, "does not match"),
	       "est_ca_open refuses a certificate of another key (%s)", e.msg);
	rc = est_ca_open(key, junk, &s, &e);
	tap_ok(rc == -EST_ECONFIG, "est_ca_open refuses a file that is not a certificate (%s)", e.msg);
	rc = est_ca_open(key, "/nonexistent/ca.pem", &s, &e);
	tap_ok(rc == -EST_ENOINPUT, "est_ca_open reports a missing certificate file (%s)", e.msg);
	/* A device certificate is not a CA, even with the matching key. */
	{
		struct est_profile prof;
		struct est_issued iss;
		gnutls_x509_crq_t crq;
		gnutls_x509_privkey_t dk;

		tu_profile("Dev-1", &prof);
		est_ca_open(key, cert, &s, &e);
		tu_crq(EST_KEY_EC_P256, "Dev-1", &crq, &dk);
		struct est_issue_req req = { crq, &prof, DAY, 0 };
		if (est_signer_issue(&s, &req, &iss, &e) == 0) {
			leaf = tu_crt_dup(iss.crt);
			est_issued_free(&iss);
		}
		est_signer_close(&s);
		est_secret_free(&pem);
		est_key_export_pem(dk, &pem, &e);
		unlink(key);
		est_file_write(key, pem.data, pem.len, EST_WRITE_PRIVATE, &e);
		write_pem(cert, leaf);
		rc = est_ca_open(key, cert, &s, &e);
		tap_ok(rc == -EST_ECONFIG && strstr(e.msg, "not a CA"),
		       "est_ca_open refuses a device certificate (%s)", e.msg);
		gnutls_x509_crq_deinit(crq);
		gnutls_x509_privkey_deinit(dk);
		est_profile_free(&prof);
	}
	unlink(key);
	unlink(cert);
	unlink(mis);
	unlink(junk);
	rmdir(dir);
	est_secret_free(&pem);
	gnutls_x509_crt_deinit(leaf);
	gnutls_x509_crt_deinit(c1);
	gnutls_x509_crt_deinit(c2);
	gnutls_x509_privkey_deinit(k1);
	gnutls_x509_privkey_deinit(k2);
}

int
main(void)
{
	test_issue_per_ca_type();
	test_issue_refusals();
	test_threads();
	test_ca_create();
	test_tls_cert();
	test_open();
	return tap_done();
}
