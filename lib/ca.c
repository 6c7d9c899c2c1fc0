#include "config.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/crypto.h>

#include "ca.h"
#include "file.h"

#define SERIAL_LEN 20
#define KEYID_MAX 64

/* What one signature uses, locked while it does: gnutls_x509_crt_privkey_sign
 * DER-encodes the issuer certificate's subject (libtasn1 may reorder SET OF
 * nodes while encoding), and a PKCS#11 session is not safe for concurrent
 * use. */
struct slot {
	pthread_mutex_t mu;
	gnutls_privkey_t key;
	gnutls_x509_crt_t issuer;
};

/* The local CA backend. Everything but the signing step reads only fields
 * fixed at open, so issue() runs in parallel. The signing step takes a slot:
 * one per CPU when the key can be copied (a file key), so concurrent
 * signatures do not queue (one shared slot cost two threads 15% of their
 * rate); one for a PKCS#11 key. Slot 0 holds KEY and CHAIN[0] themselves. */
struct local_ca {
	gnutls_privkey_t key;
	gnutls_x509_crt_t *chain;
	unsigned nchain;
	gnutls_digest_algorithm_t dig;
	time_t not_before, not_after;   /* the issuing CA's; not_after -1: none */
	unsigned char ski[KEYID_MAX];
	size_t ski_len;
	struct slot *slots;
	unsigned nslots;
	unsigned next;                  /* where the next signature looks first */
};

/* A positive serial of exactly SERIAL_LEN content octets: first bit clear so
 * it is not negative, first byte non-zero so DER keeps all 20 octets. */
static int
set_serial(gnutls_x509_crt_t crt, char hex[2 * SERIAL_LEN + 1], struct est_error *e)
{
	unsigned char s[SERIAL_LEN];
	int rc, i;

	if ((rc = gnutls_rnd(GNUTLS_RND_RANDOM, s, sizeof(s))) < 0)
		return est_fail(e, EST_EINTERNAL, "random serial: %s", gnutls_strerror(rc));
	s[0] &= 0x7f;
	if (s[0] == 0)
		s[0] = 0x01;
	if ((rc = gnutls_x509_crt_set_serial(crt, s, sizeof(s))) < 0)
		return est_fail(e, EST_EINTERNAL, "setting the serial: %s", gnutls_strerror(rc));
	if (hex != NULL)
		for (i = 0; i < SERIAL_LEN; i++)
			snprintf(hex + 2 * i, 3, "%02x", s[i]);
	return 0;
}

/* Validity NOW - EST_CA_BACKDATE (not before CA_NB) .. NOW + VALIDITY (not
 * after CA_NA, -1 meaning no limit); the bounds chosen into *NB, *NA. */
static int
set_validity(gnutls_x509_crt_t crt, time_t now, long long validity, time_t ca_nb,
	     time_t ca_na, time_t *nb, time_t *na, struct est_error *e)
{
	int rc;

	if (validity <= 0 || validity > 100LL * 366 * 86400)
		return est_fail(e, EST_EINTERNAL, "validity of %lld seconds is out of range",
				validity);
	if (ca_na != (time_t)-1 && ca_na <= now + EST_CA_BACKDATE)
		return est_fail(e, EST_ECONFIG, "ca: the CA certificate has expired or is "
				"about to expire");
	*nb = now - EST_CA_BACKDATE < ca_nb ? ca_nb : now - EST_CA_BACKDATE;
	*na = (time_t)(now + validity);
	if (ca_na != (time_t)-1 && *na > ca_na)
		*na = ca_na;
	if ((rc = gnutls_x509_crt_set_activation_time(crt, *nb)) < 0 ||
	    (rc = gnutls_x509_crt_set_expiration_time(crt, *na)) < 0)
		return est_fail(e, EST_EINTERNAL, "setting the validity: %s", gnutls_strerror(rc));
	return 0;
}

/* SKI from the SHA-1 of the subjectPublicKey (RFC 5280 4.2.1.2 method 1),
 * the identifier every other tool computes. */
static int
set_ski(gnutls_x509_crt_t crt, gnutls_pubkey_t pub, struct est_error *e)
{
	unsigned char buf[KEYID_MAX];
	size_t n = sizeof(buf);
	int rc;

	if ((rc = gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA1, buf, &n)) < 0 ||
	    (rc = gnutls_x509_crt_set_subject_key_id(crt, buf, n)) < 0)
		return est_fail(e, EST_EINTERNAL, "setting the key identifier: %s",
				gnutls_strerror(rc));
	return 0;
}

/* The key identifier AKI must carry for certificates issued by CA: its SKI,
 * or when it has none, the identifier its SKI would have. */
static int
ca_key_id(gnutls_x509_crt_t ca, unsigned char id[KEYID_MAX], size_t *len, struct est_error *e)
{
	unsigned crit = 0;
	int rc;

	*len = KEYID_MAX;
	if (gnutls_x509_crt_get_subject_key_id(ca, id, len, &crit) >= 0)
		return 0;
	*len = KEYID_MAX;
	if ((rc = gnutls_x509_crt_get_key_id(ca, GNUTLS_KEYID_USE_SHA1, id, len)) < 0)
		return est_fail(e, EST_ECONFIG, "ca: reading the CA's key identifier: %s",
				gnutls_strerror(rc));
	return 0;
}

/* A CN in the CSR, when there is one, must be the ThingName: the CSR and the
 * certificate then name the same device, which re-enrollment compares. */
static int
check_cn(gnutls_x509_crq_t crq, const char *thing, struct est_error *e)
{
	char cn[EST_THING_NAME_MAX + 2];
	size_t len = sizeof(cn);
	int rc;

	rc = gnutls_x509_crq_get_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &len);
	if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
		return 0;
	if (rc < 0 || len != strlen(thing) || memcmp(cn, thing, len) != 0)
		return est_fail(e, EST_EDATA, "csr: the subject CN is not the ThingName '%s'", thing);
	len = sizeof(cn);
	if (gnutls_x509_crq_get_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 1, 0, cn, &len) !=
	    GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
		return est_fail(e, EST_EDATA, "csr: the subject holds more than one CN");
	return 0;
}

/* Everything of a device certificate but the signature (DESIGN.md 4.5, less
 * the profile extension: docs/DECISIONS.md). */
static int
build_leaf(const struct local_ca *ca, const struct est_issue_req *req, gnutls_pubkey_t pub,
	   time_t now, struct est_issued *out, struct est_error *e)
{
	const char *cn = req->profile->thing_name;
	gnutls_x509_crt_t crt = out->crt;
	int rc;

	if ((rc = set_serial(crt, out->serial_hex, e)) < 0 ||
	    (rc = set_validity(crt, now, req->validity, ca->not_before, ca->not_after,
			       &out->not_before, &out->not_after, e)) < 0 ||
	    (rc = set_ski(crt, pub, e)) < 0)
		return rc;
	if ((rc = gnutls_x509_crt_set_version(crt, 3)) < 0 ||
	    (rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
						(unsigned)strlen(cn))) < 0 ||
	    (rc = gnutls_x509_crt_set_pubkey(crt, pub)) < 0 ||
	    (rc = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0)) < 0 ||
	    (rc = gnutls_x509_crt_set_authority_key_id(crt, ca->ski, ca->ski_len)) < 0)
		return est_fail(e, EST_EINTERNAL, "building the certificate: %s",
				gnutls_strerror(rc));
	return 0;
}

static int
sign(struct local_ca *ca, gnutls_x509_crt_t crt, struct est_error *e)
{
	unsigned first = __atomic_fetch_add(&ca->next, 1, __ATOMIC_RELAXED), i;
	struct slot *sl = NULL;
	int rc;

	for (i = 0; i < ca->nslots && sl == NULL; i++)
		if (pthread_mutex_trylock(&ca->slots[(first + i) % ca->nslots].mu) == 0)
			sl = &ca->slots[(first + i) % ca->nslots];
	if (sl == NULL) {
		sl = &ca->slots[first % ca->nslots];
		pthread_mutex_lock(&sl->mu);
	}
	rc = gnutls_x509_crt_privkey_sign(crt, sl->issuer, sl->key, ca->dig, 0);
	pthread_mutex_unlock(&sl->mu);
	if (rc < 0)
		return est_fail(e, EST_EINTERNAL, "signing the certificate: %s", gnutls_strerror(rc));
	return 0;
}

/* Replace the certificate built in memory by one parsed from its DER (into
 * DER when not NULL): GnuTLS fills the raw-DN caches that verification,
 * gnutls_x509_crt_get_raw_issuer_dn and friends use only on import, so a
 * built certificate would not verify under its issuer. */
static int
reimport(gnutls_x509_crt_t *crt, gnutls_datum_t *der, struct est_error *e)
{
	gnutls_datum_t d = { NULL, 0 };
	gnutls_x509_crt_t back = NULL;
	int rc;

	if ((rc = gnutls_x509_crt_export2(*crt, GNUTLS_X509_FMT_DER, &d)) < 0 ||
	    (rc = gnutls_x509_crt_init(&back)) < 0 ||
	    (rc = gnutls_x509_crt_import(back, &d, GNUTLS_X509_FMT_DER)) < 0) {
		gnutls_x509_crt_deinit(back);
		gnutls_free(d.data);
		return est_fail(e, EST_EINTERNAL, "exporting the certificate: %s",
				gnutls_strerror(rc));
	}
	gnutls_x509_crt_deinit(*crt);
	*crt = back;
	if (der != NULL)
		*der = d;
	else
		gnutls_free(d.data);
	return 0;
}

static int
export_both(struct est_issued *out, struct est_error *e)
{
	int rc;

	if ((rc = reimport(&out->crt, &out->der, e)) < 0)
		return rc;
	if ((rc = gnutls_pem_base64_encode2("CERTIFICATE", &out->der, &out->pem)) < 0)
		return est_fail(e, EST_EINTERNAL, "exporting the certificate: %s",
				gnutls_strerror(rc));
	return 0;
}

static int
local_issue(void *ctx, const struct est_issue_req *req, struct est_issued *out,
	    struct est_error *e)
{
	struct local_ca *ca = ctx;
	gnutls_pubkey_t pub = NULL;
	time_t now = req->now ? req->now : time(NULL);
	int rc;

	memset(out, 0, sizeof(*out));
	if (req->profile == NULL || req->crq == NULL)
		return est_fail(e, EST_EINTERNAL, "issue: no CSR or no profile");
	/* The one verification of the CSR's self-signature (DESIGN.md 8). */
	if (gnutls_x509_crq_verify(req->crq, 0) < 0)
		return est_fail(e, EST_EDATA, "csr: the signature does not verify");
	if ((rc = check_cn(req->crq, req->profile->thing_name, e)) < 0)
		return rc;
	if ((rc = gnutls_pubkey_init(&pub)) < 0 ||
	    (rc = gnutls_pubkey_import_x509_crq(pub, req->crq, 0)) < 0) {
		rc = est_fail(e, EST_EDATA, "csr: reading the public key: %s", gnutls_strerror(rc));
		goto out;
	}
	if ((rc = est_pubkey_sha256_hex(pub, out->key_sha256, e)) < 0)
		goto out;
	if ((rc = gnutls_x509_crt_init(&out->crt)) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "%s", gnutls_strerror(rc));
		goto out;
	}
	if ((rc = build_leaf(ca, req, pub, now, out, e)) < 0 || (rc = sign(ca, out->crt, e)) < 0 ||
	    (rc = export_both(out, e)) < 0)
		goto out;
	rc = 0;
out:
	gnutls_pubkey_deinit(pub);
	if (rc < 0)
		est_issued_free(out);
	return rc;
}

static int
local_chain(void *ctx, const gnutls_x509_crt_t **certs, unsigned *n)
{
	struct local_ca *ca = ctx;

	*certs = ca->chain;
	*n = ca->nchain;
	return 0;
}

static void
local_close(void *ctx)
{
	struct local_ca *ca = ctx;
	unsigned i;

	if (ca == NULL)
		return;
	for (i = 0; i < ca->nslots; i++) {
		pthread_mutex_destroy(&ca->slots[i].mu);
		if (i > 0) {
			gnutls_privkey_deinit(ca->slots[i].key);
			gnutls_x509_crt_deinit(ca->slots[i].issuer);
		}
	}
	free(ca->slots);
	gnutls_privkey_deinit(ca->key);
	for (i = 0; i < ca->nchain; i++)
		gnutls_x509_crt_deinit(ca->chain[i]);
	gnutls_free(ca->chain);
	free(ca);
}

/* A copy of the key and the issuer certificate for slot SL; -1 when the key
 * cannot be exported (a PKCS#11 key), which leaves SL empty. */
static int
slot_copy(const struct local_ca *ca, struct slot *sl)
{
	gnutls_x509_privkey_t x = NULL;
	gnutls_datum_t der = { NULL, 0 };
	int rc;

	sl->key = NULL;
	sl->issuer = NULL;
	if (gnutls_privkey_export_x509(ca->key, &x) < 0)
		return -1;
	rc = gnutls_privkey_init(&sl->key);
	if (rc >= 0 && (rc = gnutls_privkey_import_x509(sl->key, x,
							GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE)) >= 0)
		x = NULL;       /* the slot's key owns it now */
	gnutls_x509_privkey_deinit(x);
	if (rc >= 0 && (rc = gnutls_x509_crt_export2(ca->chain[0], GNUTLS_X509_FMT_DER, &der)) >= 0 &&
	    (rc = gnutls_x509_crt_init(&sl->issuer)) >= 0)
		rc = gnutls_x509_crt_import(sl->issuer, &der, GNUTLS_X509_FMT_DER);
	gnutls_free(der.data);
	if (rc < 0) {
		gnutls_privkey_deinit(sl->key);
		gnutls_x509_crt_deinit(sl->issuer);
		sl->key = NULL;
		sl->issuer = NULL;
		return -1;
	}
	return 0;
}

/* Slot 0 for KEY itself, and a copy per further CPU when the key allows. */
static int
slots_make(struct local_ca *ca, struct est_error *e)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned want = cpus < 1 ? 1 : cpus > 16 ? 16 : (unsigned)cpus;

	if ((ca->slots = calloc(want, sizeof(*ca->slots))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	ca->slots[0].key = ca->key;
	ca->slots[0].issuer = ca->chain[0];
	pthread_mutex_init(&ca->slots[0].mu, NULL);
	for (ca->nslots = 1; ca->nslots < want; ca->nslots++) {
		if (slot_copy(ca, &ca->slots[ca->nslots]) < 0)
			break;
		pthread_mutex_init(&ca->slots[ca->nslots].mu, NULL);
	}
	return 0;
}

static const struct est_signer_ops local_ops = {
	.name = "local",
	.issue = local_issue,
	.chain = local_chain,
	.close = local_close,
};

void
est_issued_free(struct est_issued *iss)
{
	gnutls_x509_crt_deinit(iss->crt);
	gnutls_free(iss->pem.data);
	gnutls_free(iss->der.data);
	memset(iss, 0, sizeof(*iss));
}

int
est_signer_issue(const struct est_signer *s, const struct est_issue_req *req,
		 struct est_issued *out, struct est_error *e)
{
	return s->ops->issue(s->ctx, req, out, e);
}

void
est_signer_close(struct est_signer *s)
{
	if (s->ops != NULL)
		s->ops->close(s->ctx);
	s->ops = NULL;
	s->ctx = NULL;
}

/* The issuing certificate must be a CA and hold the public half of KEY. */
static int
check_ca(gnutls_privkey_t key, gnutls_x509_crt_t crt, struct est_error *e)
{
	unsigned char a[KEYID_MAX], b[KEYID_MAX];
	size_t alen = sizeof(a), blen = sizeof(b);
	unsigned crit = 0, usage = 0;
	gnutls_pubkey_t pub = NULL;
	int rc;

	if (gnutls_x509_crt_get_basic_constraints(crt, &crit, NULL, NULL) <= 0)
		return est_fail(e, EST_ECONFIG, "ca: the certificate is not a CA "
				"(no basicConstraints CA:TRUE)");
	if (gnutls_x509_crt_get_key_usage(crt, &usage, &crit) >= 0 &&
	    !(usage & GNUTLS_KEY_KEY_CERT_SIGN))
		return est_fail(e, EST_ECONFIG, "ca: the certificate's keyUsage lacks keyCertSign");
	if ((rc = gnutls_pubkey_init(&pub)) < 0 ||
	    (rc = gnutls_pubkey_import_privkey(pub, key, 0, 0)) < 0 ||
	    (rc = gnutls_pubkey_get_key_id(pub, GNUTLS_KEYID_USE_SHA256, a, &alen)) < 0 ||
	    (rc = gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, b, &blen)) < 0) {
		rc = est_fail(e, EST_ECONFIG, "ca: comparing the key with the certificate: %s",
			      gnutls_strerror(rc));
		goto out;
	}
	if (alen != blen || memcmp(a, b, alen) != 0)
		rc = est_fail(e, EST_ECONFIG, "ca: the key does not match the certificate");
out:
	gnutls_pubkey_deinit(pub);
	return rc < 0 ? rc : 0;
}

int
est_ca_open_mem(gnutls_privkey_t key, gnutls_x509_crt_t *certs, unsigned n,
		struct est_signer *out, struct est_error *e)
{
	struct local_ca *ca;
	int rc;

	out->ops = NULL;
	out->ctx = NULL;
	if ((ca = calloc(1, sizeof(*ca))) == NULL) {
		gnutls_privkey_deinit(key);
		while (n > 0)
			gnutls_x509_crt_deinit(certs[--n]);
		gnutls_free(certs);
		return est_fail(e, EST_EINTERNAL, "out of memory");
	}
	/* From here on local_close frees all of it. */
	ca->key = key;
	ca->chain = certs;
	ca->nchain = n;
	if (n == 0)
		rc = est_fail(e, EST_ECONFIG, "ca: no CA certificate");
	else if ((rc = check_ca(key, certs[0], e)) == 0 &&
		 (rc = ca_key_id(certs[0], ca->ski, &ca->ski_len, e)) == 0)
		rc = slots_make(ca, e);
	if (rc < 0) {
		local_close(ca);
		return rc;
	}
	ca->dig = est_key_digest(key);
	ca->not_before = gnutls_x509_crt_get_activation_time(certs[0]);
	ca->not_after = gnutls_x509_crt_get_expiration_time(certs[0]);
	out->ops = &local_ops;
	out->ctx = ca;
	return 0;
}

/* CERT_FILE as PEM (one or more certificates) or as one DER certificate. */
static int
load_certs(const char *path, gnutls_x509_crt_t **certs, unsigned *n, struct est_error *e)
{
	gnutls_datum_t data = { NULL, 0 };
	int rc;

	*certs = NULL;
	*n = 0;
	if ((rc = est_file_read(path, EST_FILE_MAX, &data, e)) < 0)
		return rc;
	rc = gnutls_x509_crt_list_import2(certs, n, &data, GNUTLS_X509_FMT_PEM, 0);
	if (rc < 0)
		rc = gnutls_x509_crt_list_import2(certs, n, &data, GNUTLS_X509_FMT_DER, 0);
	gnutls_free(data.data);
	if (rc < 0)
		return est_fail(e, EST_ECONFIG, "%s: not a certificate: %s", path, gnutls_strerror(rc));
	return 0;
}

int
est_ca_open(const char *key, const char *cert_file, struct est_signer *out,
	    struct est_error *e)
{
	gnutls_privkey_t pk = NULL;
	gnutls_x509_crt_t *certs = NULL;
	unsigned n = 0;
	int rc;

	out->ops = NULL;
	out->ctx = NULL;
	if ((rc = est_key_load(key, &pk, e)) < 0)
		return rc;
	if ((rc = load_certs(cert_file, &certs, &n, e)) < 0) {
		gnutls_privkey_deinit(pk);
		return rc;
	}
	if ((rc = est_ca_open_mem(pk, certs, n, out, e)) < 0)
		est_error_prefix(e, "%s", cert_file);
	return rc;
}

/* A new key of type T, both as the X.509 key the caller keeps and as the
 * abstract handles signing and SKI need. */
static int
new_key(enum est_key_type t, gnutls_x509_privkey_t *key, gnutls_privkey_t *pk,
	gnutls_pubkey_t *pub, struct est_error *e)
{
	int rc;

	*pk = NULL;
	*pub = NULL;
	if ((rc = est_key_generate(t, key, e)) < 0)
		return rc;
	if ((rc = gnutls_privkey_init(pk)) < 0 ||
	    (rc = gnutls_privkey_import_x509(*pk, *key, 0)) < 0 ||
	    (rc = gnutls_pubkey_init(pub)) < 0 ||
	    (rc = gnutls_pubkey_import_privkey(*pub, *pk, 0, 0)) < 0)
		return est_fail(e, EST_EINTERNAL, "preparing a new key: %s", gnutls_strerror(rc));
	return 0;
}

/* Serial, version, validity, public key and SKI of a new certificate. */
static int
new_cert(gnutls_x509_crt_t *crt, gnutls_pubkey_t pub, long long validity, time_t ca_nb,
	 time_t ca_na, struct est_error *e)
{
	time_t now = time(NULL), nb, na;
	int rc;

	if ((rc = gnutls_x509_crt_init(crt)) < 0 ||
	    (rc = gnutls_x509_crt_set_version(*crt, 3)) < 0 ||
	    (rc = gnutls_x509_crt_set_pubkey(*crt, pub)) < 0)
		return est_fail(e, EST_EINTERNAL, "building a certificate: %s", gnutls_strerror(rc));
	if ((rc = set_serial(*crt, NULL, e)) < 0 ||
	    (rc = set_validity(*crt, now, validity, ca_nb, ca_na, &nb, &na, e)) < 0 ||
	    (rc = set_ski(*crt, pub, e)) < 0)
		return rc;
	return 0;
}

int
est_ca_create(enum est_key_type t, const char *subject_dn, long long validity,
	      gnutls_x509_privkey_t *key, gnutls_x509_crt_t *cert, struct est_error *e)
{
	const char *dn = subject_dn ? subject_dn : EST_CA_DEFAULT_SUBJECT, *where = NULL;
	gnutls_privkey_t pk = NULL;
	gnutls_pubkey_t pub = NULL;
	int rc;

	*key = NULL;
	*cert = NULL;
	if ((rc = new_key(t, key, &pk, &pub, e)) < 0 ||
	    (rc = new_cert(cert, pub, validity, 0, (time_t)-1, e)) < 0)
		goto out;
	if ((rc = gnutls_x509_crt_set_dn(*cert, dn, &where)) < 0) {
		rc = est_fail(e, EST_EUSAGE, "CA subject '%s': not a distinguished name (at '%s')",
			      dn, where ? where : dn);
		goto out;
	}
	if ((rc = gnutls_x509_crt_set_basic_constraints(*cert, 1, 0)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_usage(*cert, GNUTLS_KEY_KEY_CERT_SIGN |
						GNUTLS_KEY_CRL_SIGN)) < 0 ||
	    (rc = gnutls_x509_crt_privkey_sign(*cert, *cert, pk, est_key_digest(pk), 0)) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "making the CA certificate: %s", gnutls_strerror(rc));
		goto out;
	}
	rc = reimport(cert, NULL, e);
out:
	gnutls_pubkey_deinit(pub);
	gnutls_privkey_deinit(pk);
	if (rc < 0) {
		gnutls_x509_crt_deinit(*cert);
		gnutls_x509_privkey_deinit(*key);
		*cert = NULL;
		*key = NULL;
	}
	return rc;
}

/* HOSTS as SANs: IP literals as iPAddress, the rest as dNSName. */
static int
add_hosts(gnutls_x509_crt_t crt, const char *const *hosts, size_t n, struct est_error *e)
{
	unsigned char ip[16];
	size_t i;
	int rc;

	for (i = 0; i < n; i++) {
		if (inet_pton(AF_INET, hosts[i], ip) == 1)
			rc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 4,
								  GNUTLS_FSAN_APPEND);
		else if (inet_pton(AF_INET6, hosts[i], ip) == 1)
			rc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, ip, 16,
								  GNUTLS_FSAN_APPEND);
		else
			rc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, hosts[i],
								  (unsigned)strlen(hosts[i]),
								  GNUTLS_FSAN_APPEND);
		if (rc < 0)
			return est_fail(e, EST_EUSAGE, "host '%s': %s", hosts[i], gnutls_strerror(rc));
	}
	return 0;
}

/* The extensions of a TLS server certificate for HOSTS issued by a CA with
 * key identifier CA_ID. */
static int
server_extensions(gnutls_x509_crt_t crt, enum est_key_type t, const char *const *hosts,
		  size_t nhosts, const unsigned char *ca_id, size_t ca_id_len, struct est_error *e)
{
	unsigned usage = GNUTLS_KEY_DIGITAL_SIGNATURE;
	int rc;

	if (t == EST_KEY_RSA2048 || t == EST_KEY_RSA3072 || t == EST_KEY_RSA4096)
		usage |= GNUTLS_KEY_KEY_ENCIPHERMENT;   /* TLS 1.2 RSA key exchange */
	if ((rc = add_hosts(crt, hosts, nhosts, e)) < 0)
		return rc;
	if ((rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, hosts[0],
						(unsigned)strlen(hosts[0]))) < 0 ||
	    (rc = gnutls_x509_crt_set_basic_constraints(crt, 0, -1)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_usage(crt, usage)) < 0 ||
	    (rc = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0)) < 0 ||
	    (rc = gnutls_x509_crt_set_authority_key_id(crt, ca_id, ca_id_len)) < 0)
		return est_fail(e, EST_EINTERNAL, "building the TLS certificate: %s",
				gnutls_strerror(rc));
	return 0;
}

int
est_tls_cert_create(gnutls_privkey_t ca_key, gnutls_x509_crt_t ca_cert,
		    enum est_key_type t, const char *const *hosts, size_t nhosts,
		    long long validity, gnutls_x509_privkey_t *key,
		    gnutls_x509_crt_t *cert, struct est_error *e)
{
	unsigned char ca_id[KEYID_MAX];
	size_t ca_id_len;
	gnutls_privkey_t pk = NULL;
	gnutls_pubkey_t pub = NULL;
	int rc;

	*key = NULL;
	*cert = NULL;
	if (nhosts == 0)
		return est_fail(e, EST_EUSAGE, "a TLS certificate needs at least one host name");
	if ((rc = ca_key_id(ca_cert, ca_id, &ca_id_len, e)) < 0 ||
	    (rc = new_key(t, key, &pk, &pub, e)) < 0 ||
	    (rc = new_cert(cert, pub, validity, gnutls_x509_crt_get_activation_time(ca_cert),
			   gnutls_x509_crt_get_expiration_time(ca_cert), e)) < 0 ||
	    (rc = server_extensions(*cert, t, hosts, nhosts, ca_id, ca_id_len, e)) < 0)
		goto out;
	if ((rc = gnutls_x509_crt_privkey_sign(*cert, ca_cert, ca_key, est_key_digest(ca_key),
					       0)) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "signing the TLS certificate: %s",
			      gnutls_strerror(rc));
		goto out;
	}
	rc = reimport(cert, NULL, e);
out:
	gnutls_pubkey_deinit(pub);
	gnutls_privkey_deinit(pk);
	if (rc < 0) {
		gnutls_x509_crt_deinit(*cert);
		gnutls_x509_privkey_deinit(*key);
		*cert = NULL;
		*key = NULL;
	}
	return rc;
}
