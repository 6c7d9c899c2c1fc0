/* Unit tests of the sealed CSR (lib/env.c): round trips, an envelope made by
 * OpenSSL, every flipped byte and every truncation, malformed DER, and
 * envelopes built here independently (libtasn1 + nettle) whose crypto is
 * right but whose structure is not, so the structural checks are what fails. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <libtasn1.h>
#include <nettle/aes.h>
#include <nettle/gcm.h>
#include <nettle/nist-keywrap.h>

#include "env.h"
#include "tap.h"

extern const asn1_static_node cms_asn1_tab[];

#define OID_AUTHENV "1.2.840.113549.1.9.16.1.23"
#define OID_DATA "1.2.840.113549.1.7.1"

static const unsigned char kek_a[32] = {
	0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
	16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
};
static unsigned char kek_b[32];  /* kek_a with the last bit changed */

/* `openssl cms -encrypt -binary -aes-256-gcm -secretkey 000102..1f
 * -secretkeyid <hex of "kat-key"> -outform DER` of "sealed by openssl cms\n". */
static const unsigned char openssl_env[] = {
	0x30, 0x81, 0xb6, 0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01,
	0x09, 0x10, 0x01, 0x17, 0xa0, 0x81, 0xa6, 0x30, 0x81, 0xa3, 0x02, 0x01,
	0x00, 0x31, 0x47, 0xa2, 0x45, 0x02, 0x01, 0x04, 0x30, 0x09, 0x04, 0x07,
	0x6b, 0x61, 0x74, 0x2d, 0x6b, 0x65, 0x79, 0x30, 0x0b, 0x06, 0x09, 0x60,
	0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2d, 0x04, 0x28, 0xca, 0xaa,
	0x91, 0xb8, 0x05, 0xf9, 0x54, 0xad, 0xa2, 0x78, 0xa1, 0x61, 0x2a, 0xff,
	0xb3, 0xe1, 0x06, 0xad, 0x9a, 0xea, 0xbc, 0x6d, 0x54, 0x2c, 0x10, 0x44,
	0x4d, 0x7b, 0xc6, 0x34, 0xba, 0x71, 0x20, 0x08, 0x85, 0xdf, 0xbe, 0xac,
	0x2e, 0xc9, 0x30, 0x43, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
	0x01, 0x07, 0x01, 0x30, 0x1e, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65,
	0x03, 0x04, 0x01, 0x2e, 0x30, 0x11, 0x04, 0x0c, 0x31, 0x71, 0xc4, 0x5c,
	0x40, 0x7e, 0x87, 0xf3, 0xd3, 0x93, 0xa4, 0xbf, 0x02, 0x01, 0x10, 0x80,
	0x16, 0xc0, 0xc8, 0x01, 0xb6, 0x67, 0x4e, 0x48, 0x56, 0x15, 0x59, 0x53,
	0xf6, 0x03, 0x58, 0xd8, 0x86, 0x77, 0x4d, 0xf7, 0xac, 0xb2, 0xad, 0x04,
	0x10, 0xa1, 0xfe, 0xc2, 0x3c, 0x49, 0xad, 0xac, 0x85, 0x1a, 0x8b, 0xac,
	0x80, 0x92, 0x60, 0xcc, 0x13
};

/* The keys a lookup knows: id -> key. */
struct ring {
	const char *id[2];
	const unsigned char *key[2];
};

static int
lookup(void *ctx, const char *keyid, struct est_secret *key, struct est_error *e)
{
	const struct ring *r = ctx;
	int i;

	for (i = 0; i < 2; i++)
		if (r->id[i] != NULL && strcmp(r->id[i], keyid) == 0) {
			if (est_secret_alloc(key, 32) < 0)
				return est_fail(e, EST_EINTERNAL, "out of memory");
			memcpy(key->data, r->key[i], 32);
			return 0;
		}
	return est_fail(e, EST_EREFUSED, "unknown key id '%s'", keyid);
}

static const struct ring ring_a = { { "fleet-key-1", "kat-key" }, { kek_a, kek_a } };

/* Open DER with RING: the return code, and the plaintext compared with WANT. */
static int
try_open(const unsigned char *der, size_t len, const struct ring *r, const void *want,
	 size_t wlen, int *same, struct est_error *e)
{
	struct est_secret out = { (unsigned char *)"x", 1 };
	int rc = est_env_open(der, len, lookup, (void *)r, &out, NULL, e);

	*same = rc == 0 && out.len == wlen && memcmp(out.data, want, wlen) == 0;
	if (rc < 0 && out.data != NULL)
		*same = -1;     /* plaintext left behind on failure */
	est_secret_free(&out);
	return rc;
}

static void
seal_a(const void *content, size_t len, gnutls_datum_t *env)
{
	struct est_secret k = { (unsigned char *)kek_a, 32 };
	struct est_error e;

	if (est_env_seal(&k, "fleet-key-1", content, len, env, &e) < 0) {
		tap_diag("seal: %s", e.msg);
		exit(1);
	}
}

static void
test_round_trip(void)
{
	static const char msg[] = "a CSR would be here; any bytes will do for the envelope";
	struct est_secret k = { (unsigned char *)kek_a, 32 };
	gnutls_datum_t env1, env2;
	struct est_error e;
	char *id = NULL;
	struct est_secret out;
	int rc, same;

	seal_a(msg, sizeof(msg), &env1);
	seal_a(msg, sizeof(msg), &env2);
	rc = est_env_open(env1.data, env1.size, lookup, (void *)&ring_a, &out, &id, &e);
	tap_ok(rc == 0 && out.len == sizeof(msg) && memcmp(out.data, msg, sizeof(msg)) == 0,
	       "a sealed envelope opens to the same content");
	tap_ok(rc == 0 && id != NULL && strcmp(id, "fleet-key-1") == 0,
	       "open names the key id it used");
	tap_ok(env1.size == env2.size && memcmp(env1.data, env2.data, env1.size) != 0,
	       "sealing twice gives different envelopes (fresh key and nonce)");
	tap_ok(est_env_is_sealed(env1.data, env1.size), "a sealed envelope is recognised");
	est_secret_free(&out);
	free(id);
	rc = try_open(openssl_env, sizeof(openssl_env), &ring_a, "sealed by openssl cms\n", 22,
		      &same, &e);
	tap_ok(rc == 0 && same == 1, "an envelope made by openssl cms opens");
	gnutls_free(env1.data);
	gnutls_free(env2.data);
	tap_ok(est_env_seal(&k, "fleet-key-1", (const unsigned char *)"", 0, &env2, &e) ==
	       -EST_EDATA && env2.data == NULL, "empty content is not sealed");
}

static void
test_seal_refuses(void)
{
	static char big[EST_ENV_MAX_CONTENT + 1];
	static const struct {
		const char *what, *id;
		size_t keylen, len;
	} cases[] = {
		{ "a 31-byte key", "k", 31, 10 },
		{ "an empty key id", "", 32, 10 },
		{ "a key id with a space", "fleet key", 32, 10 },
		{ "a key id with a control character", "fleet\tkey", 32, 10 },
		{ "a key id of 129 characters", NULL, 32, 10 },
		{ "content over the size cap", "k", 32, sizeof(big) },
	};
	char longid[EST_ENV_KEYID_MAX + 2];
	struct est_secret k;
	struct est_error e;
	gnutls_datum_t env;
	size_t i;
	int rc;

	memset(longid, 'a', sizeof(longid) - 1);
	longid[sizeof(longid) - 1] = 0;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		k.data = (unsigned char *)kek_a;
		k.len = cases[i].keylen;
		rc = est_env_seal(&k, cases[i].id ? cases[i].id : longid, (unsigned char *)big,
				  cases[i].len, &env, &e);
		tap_ok(rc == -EST_EDATA && env.data == NULL, "seal refuses %s", cases[i].what);
	}
}

static void
test_wrong_key_and_id(void)
{
	static const char msg[] = "content";
	const struct ring wrong_key = { { "fleet-key-1", NULL }, { kek_b, NULL } };
	const struct ring wrong_id = { { "fleet-key-2", NULL }, { kek_a, NULL } };
	gnutls_datum_t env;
	struct est_error e;
	int rc, same;

	seal_a(msg, sizeof(msg), &env);
	rc = try_open(env.data, env.size, &wrong_key, msg, sizeof(msg), &same, &e);
	tap_ok(rc == -EST_EDATA && same == 0 && strcmp(e.msg, "authentication failed") == 0,
	       "a wrong key is refused as 'authentication failed' (%s)", e.msg);
	rc = try_open(env.data, env.size, &wrong_id, msg, sizeof(msg), &same, &e);
	tap_ok(rc == -EST_EREFUSED && same == 0 && strcmp(e.msg, "unknown key id 'fleet-key-1'") == 0,
	       "an unknown key id keeps the lookup's error (%s)", e.msg);
	gnutls_free(env.data);
}

/* Every byte changed in turn, with each mask: nothing may open. */
static void
test_flips(void)
{
	static const unsigned char masks[] = { 0x01, 0x80, 0xff };
	static const char msg[] = "flip every byte of this envelope in turn";
	gnutls_datum_t env;
	struct est_error e;
	size_t i, m, opened, leaked;
	int same;

	seal_a(msg, sizeof(msg), &env);
	for (m = 0; m < sizeof(masks); m++) {
		opened = leaked = 0;
		for (i = 0; i < env.size; i++) {
			env.data[i] ^= masks[m];
			if (try_open(env.data, env.size, &ring_a, msg, sizeof(msg), &same, &e) == 0) {
				opened++;
				tap_diag("flip 0x%02x at %zu opened", masks[m], i);
			}
			leaked += same == -1;
			env.data[i] ^= masks[m];
		}
		tap_ok(opened == 0 && leaked == 0, "none of %u bytes xor 0x%02x opens", env.size,
		       masks[m]);
	}
	gnutls_free(env.data);
}

static void
test_truncations(void)
{
	static const char msg[] = "truncate this envelope at every length";
	gnutls_datum_t env;
	struct est_error e;
	unsigned char *longer;
	size_t n, opened = 0;
	int same;

	seal_a(msg, sizeof(msg), &env);
	for (n = 0; n < env.size; n++) {
		/* A copy of exactly N bytes, so ASan sees any read past the end. */
		unsigned char *cut = malloc(n + 1);
		memcpy(cut, env.data, n);
		if (try_open(cut, n, &ring_a, msg, sizeof(msg), &same, &e) != -EST_EDATA)
			opened++;
		free(cut);
	}
	tap_ok(opened == 0, "every one of %u truncations is refused as bad data", env.size);
	longer = malloc(env.size + 1);
	memcpy(longer, env.data, env.size);
	longer[env.size] = 0;
	tap_ok(try_open(longer, env.size + 1, &ring_a, msg, sizeof(msg), &same, &e) == -EST_EDATA,
	       "a trailing byte is refused");
	free(longer);
	gnutls_free(env.data);
}

static void
test_malformed_der(void)
{
	const struct {
		const char *what;
		const unsigned char *der;
		size_t len;
	} cases[] = {
#define C(what, ...) { what, (const unsigned char[]){ __VA_ARGS__ }, \
		       sizeof((const unsigned char[]){ __VA_ARGS__ }) }
		C("a SET instead of a SEQUENCE", 0x31, 0x0d, 0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86,
		  0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17),
		C("a huge length", 0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x06, 0x0b, 0x2a, 0x86,
		  0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17),
		C("a length over 2^32", 0x30, 0x89, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x06),
		C("an indefinite length (BER)", 0x30, 0x80, 0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86,
		  0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17, 0xa0, 0x80, 0x30, 0x00, 0, 0, 0, 0),
		C("a non-minimal length", 0x30, 0x81, 0x0f, 0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86,
		  0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17, 0xa0, 0x00),
		C("an id-data ContentInfo", 0x30, 0x0f, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7,
		  0x0d, 0x01, 0x07, 0x01, 0xa0, 0x02, 0x04, 0x00),
		C("authEnvelopedData holding an empty SEQUENCE", 0x30, 0x11, 0x06, 0x0b, 0x2a,
		  0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x10, 0x01, 0x17, 0xa0, 0x02, 0x30,
		  0x00),
		C("one zero byte", 0x00),
		C("text", 'h', 'e', 'l', 'l', 'o'),
#undef C
	};
	struct est_error e;
	size_t i;
	int same;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		tap_ok(try_open(cases[i].der, cases[i].len, &ring_a, "", 0, &same, &e) ==
		       -EST_EDATA, "open refuses %s (%s)", cases[i].what, e.msg);
	tap_ok(try_open((const unsigned char *)"", 0, &ring_a, "", 0, &same, &e) == -EST_EDATA,
	       "open refuses empty input");
	tap_ok(!est_env_is_sealed(cases[5].der, cases[5].len) && !est_env_is_sealed(NULL, 0) &&
	       !est_env_is_sealed((const unsigned char *)"MIIB", 4) &&
	       est_env_is_sealed(openssl_env, 20), "is_sealed looks at the content type only");
}

/* An envelope built here, field by field, with correct crypto. */
struct spec {
	const char *what;
	int ok;                 /* must open */
	int recipients;         /* how many copies of the recipient */
	const char *version, *kek_version;
	const char *keyid;
	int date, other;        /* kekid.date, kekid.other present */
	int wrap_null;          /* keyEncryptionAlgorithm parameters NULL */
	const char *content_type, *wrap_oid, *gcm_oid;
	size_t nonce_len;
	const char *icvlen;     /* NULL: absent (DEFAULT 12) */
	size_t tag_len;
	int attrs;              /* 1: authAttrs in the AAD, 2: present but not in the AAD */
};

static const unsigned char null_der[] = { 0x05, 0x00 };
static const unsigned char data_oid_der[] = { 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d,
					      0x01, 0x07, 0x01 };

static int
encode(asn1_node n, gnutls_datum_t *out)
{
	int len = 0;

	if (asn1_der_coding(n, "", NULL, &len, NULL) != ASN1_MEM_ERROR)
		return -1;
	out->data = gnutls_malloc(len);
	out->size = (unsigned)len;
	return asn1_der_coding(n, "", out->data, &len, NULL) == ASN1_SUCCESS ? 0 : -1;
}

/* One contentType attribute; PREFIX is "authAttrs." inside the envelope, "" alone. */
static int
write_attrs(asn1_node n, const char *prefix)
{
	char p[64];
	int ok = 1;

	snprintf(p, sizeof(p), "%s", *prefix ? "authAttrs" : "");
	ok &= asn1_write_value(n, p, "NEW", 1) == ASN1_SUCCESS;
	snprintf(p, sizeof(p), "%s?1.attrType", prefix);
	ok &= asn1_write_value(n, p, "1.2.840.113549.1.9.3", 1) == ASN1_SUCCESS;
	snprintf(p, sizeof(p), "%s?1.attrValues", prefix);
	ok &= asn1_write_value(n, p, "NEW", 1) == ASN1_SUCCESS;
	snprintf(p, sizeof(p), "%s?1.attrValues.?1", prefix);
	ok &= asn1_write_value(n, p, data_oid_der, sizeof(data_oid_der)) == ASN1_SUCCESS;
	return ok ? 0 : -1;
}

/* RFC 5083's AAD: the same attributes DER-encoded as a SET OF on their own. */
static int
attrs_aad(asn1_node defs, gnutls_datum_t *aad)
{
	asn1_node aa = NULL;
	int rc;

	if (asn1_create_element(defs, "CMS.AuthAttributes", &aa) != ASN1_SUCCESS)
		return -1;
	rc = write_attrs(aa, "") == 0 ? encode(aa, aad) : -1;
	asn1_delete_structure(&aa);
	return rc;
}

static int
write_recipient(asn1_node n, const struct spec *s, int i, const unsigned char *wrapped)
{
	char p[128];
	int ok = 1;

#define W(field, v, l) (snprintf(p, sizeof(p), "recipientInfos.?%d.kekri." field, i), \
			ok &= asn1_write_value(n, p, v, l) == ASN1_SUCCESS)
	ok &= asn1_write_value(n, "recipientInfos", "NEW", 1) == ASN1_SUCCESS;
	snprintf(p, sizeof(p), "recipientInfos.?%d", i);
	ok &= asn1_write_value(n, p, "kekri", 1) == ASN1_SUCCESS;
	W("version", s->kek_version, 0);
	W("kekid.keyIdentifier", s->keyid, (int)strlen(s->keyid));
	W("kekid.date", s->date ? "20260101000000Z" : NULL, s->date ? 15 : 0);
	if (s->other)
		W("kekid.other.keyAttrId", "1.2.3.4", 1);
	if (s->other)
		W("kekid.other.keyAttr", NULL, 0);
	else
		W("kekid.other", NULL, 0);
	W("keyEncryptionAlgorithm.algorithm", s->wrap_oid, 1);
	W("keyEncryptionAlgorithm.parameters", s->wrap_null ? null_der : NULL,
	  s->wrap_null ? 2 : 0);
	W("encryptedKey", wrapped, 40);
#undef W
	return ok ? 0 : -1;
}

/* GCM over CONTENT with the spec's nonce, AAD and tag length. */
static void
spec_crypto(const struct spec *s, const unsigned char *cek, const gnutls_datum_t *aad,
	    const char *content, unsigned char *ct, unsigned char *tag)
{
	static const unsigned char nonce[16] = { 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6 };
	struct gcm_aes256_ctx gcm;

	gcm_aes256_set_key(&gcm, cek);
	gcm_aes256_set_iv(&gcm, s->nonce_len, nonce);
	if (s->attrs == 1)
		gcm_aes256_update(&gcm, aad->size, aad->data);
	gcm_aes256_encrypt(&gcm, strlen(content), ct, (const unsigned char *)content);
	gcm_aes256_digest(&gcm, s->tag_len, tag);
}

static int
write_content(asn1_node aed, const struct spec *s, const gnutls_datum_t *params,
	      const unsigned char *ct, size_t len, const unsigned char *tag)
{
#define ECI "authEncryptedContentInfo."
	return asn1_write_value(aed, "version", s->version, 0) == ASN1_SUCCESS &&
	       asn1_write_value(aed, ECI "contentType", s->content_type, 1) == ASN1_SUCCESS &&
	       asn1_write_value(aed, ECI "contentEncryptionAlgorithm.algorithm", s->gcm_oid, 1) ==
	       ASN1_SUCCESS &&
	       asn1_write_value(aed, ECI "contentEncryptionAlgorithm.parameters", params->data,
				(int)params->size) == ASN1_SUCCESS &&
	       asn1_write_value(aed, ECI "encryptedContent", ct, (int)len) == ASN1_SUCCESS &&
	       asn1_write_value(aed, "mac", tag, (int)s->tag_len) == ASN1_SUCCESS ? 0 : -1;
#undef ECI
}

static int
gcm_params(asn1_node defs, const struct spec *s, gnutls_datum_t *out)
{
	static const unsigned char nonce[16] = { 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 6 };
	asn1_node gp = NULL;
	int rc = -1;

	if (asn1_create_element(defs, "CMS.GCMParameters", &gp) == ASN1_SUCCESS &&
	    asn1_write_value(gp, "aesNonce", nonce, (int)s->nonce_len) == ASN1_SUCCESS &&
	    (s->icvlen == NULL ||  /* left unwritten: DER omits a DEFAULT */
	     asn1_write_value(gp, "aesICVlen", s->icvlen, 0) == ASN1_SUCCESS))
		rc = encode(gp, out);
	asn1_delete_structure(&gp);
	return rc;
}

static int
build_spec(asn1_node defs, const struct spec *s, const char *content, gnutls_datum_t *out)
{
	static const unsigned char cek[32] = { 42, 42, 42, 7 };
	static const unsigned char kw_iv[8] = { 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6 };
	unsigned char wrapped[40], ct[256], tag[16];
	struct aes256_ctx aes;
	asn1_node aed = NULL, ci = NULL;
	gnutls_datum_t params = { 0 }, inner = { 0 }, aad = { 0 };
	int i, ok;

	aes256_set_encrypt_key(&aes, kek_a);
	aes256_keywrap(&aes, kw_iv, sizeof(wrapped), wrapped, cek);
	ok = asn1_create_element(defs, "CMS.AuthEnvelopedData", &aed) == ASN1_SUCCESS &&
	     asn1_create_element(defs, "CMS.ContentInfo", &ci) == ASN1_SUCCESS &&
	     gcm_params(defs, s, &params) == 0;
	if (ok && s->attrs)
		ok = write_attrs(aed, "authAttrs.") == 0 && attrs_aad(defs, &aad) == 0;
	else if (ok)
		ok = asn1_write_value(aed, "authAttrs", NULL, 0) == ASN1_SUCCESS;
	spec_crypto(s, cek, &aad, content, ct, tag);
	for (i = 1; ok && i <= s->recipients; i++)
		ok = write_recipient(aed, s, i, wrapped) == 0;
	ok = ok && write_content(aed, s, &params, ct, strlen(content), tag) == 0 &&
	     encode(aed, &inner) == 0 &&
	     asn1_write_value(ci, "contentType", OID_AUTHENV, 1) == ASN1_SUCCESS &&
	     asn1_write_value(ci, "content", inner.data, (int)inner.size) == ASN1_SUCCESS &&
	     encode(ci, out) == 0;
	asn1_delete_structure(&aed);
	asn1_delete_structure(&ci);
	gnutls_free(params.data);
	gnutls_free(inner.data);
	gnutls_free(aad.data);
	return ok ? 0 : -1;
}

#define WRAP "2.16.840.1.101.3.4.1.45"
#define GCM "2.16.840.1.101.3.4.1.46"
/* The good envelope, then one change per row. */
#define GOOD 1, "0", "4", "fleet-key-1", 0, 0, 0, OID_DATA, WRAP, GCM, 12, "16", 16, 0

static const struct spec specs[] = {
	{ "a well-formed envelope built independently", 1, GOOD },
	{ "the ICVlen absent (DEFAULT 12) with a 12-byte tag", 1, 1, "0", "4", "fleet-key-1",
	  0, 0, 0, OID_DATA, WRAP, GCM, 12, NULL, 12, 0 },
	{ "a 14-byte tag", 1, 1, "0", "4", "fleet-key-1", 0, 0, 0, OID_DATA, WRAP, GCM, 12,
	  "14", 14, 0 },
	{ "a kekid with a date", 1, 1, "0", "4", "fleet-key-1", 1, 0, 0, OID_DATA, WRAP, GCM,
	  12, "16", 16, 0 },
	{ "authAttrs authenticated as AAD", 1, 1, "0", "4", "fleet-key-1", 0, 0, 0, OID_DATA,
	  WRAP, GCM, 12, "16", 16, 1 },
	{ "authAttrs left out of the tag", 0, 1, "0", "4", "fleet-key-1", 0, 0, 0, OID_DATA,
	  WRAP, GCM, 12, "16", 16, 2 },
	{ "no recipient", 0, 0, "0", "4", "fleet-key-1", 0, 0, 0, OID_DATA, WRAP, GCM, 12,
	  "16", 16, 0 },
	{ "two recipients", 0, 2, "0", "4", "fleet-key-1", 0, 0, 0, OID_DATA, WRAP, GCM, 12,
	  "16", 16, 0 },
	{ "envelope version 2", 0, 1, "2", "4", "fleet-key-1", 0, 0, 0, OID_DATA, WRAP, GCM,
	  12, "16", 16, 0 },
	{ "kek recipient version 3", 0, 1, "0", "3", "fleet-key-1", 0, 0, 0, OID_DATA, WRAP,
	  GCM, 12, "16", 16, 0 },
	{ "an other key attribute", 0, 1, "0", "4", "fleet-key-1", 0, 1, 0, OID_DATA, WRAP,
	  GCM, 12, "16", 16, 0 },
	{ "key wrap parameters NULL", 0, 1, "0", "4", "fleet-key-1", 0, 0, 1, OID_DATA, WRAP,
	  GCM, 12, "16", 16, 0 },
	{ "aes128-wrap", 0, 1, "0", "4", "fleet-key-1", 0, 0, 0, OID_DATA,
	  "2.16.840.1.101.3.4.1.5", GCM, 12, "16", 16, 0 },
	{ "aes128-GCM", 0, 1, "0", "4", "fleet-key-1", 0, 0, 0, OID_DATA, WRAP,
	  "2.16.840.1.101.3.4.1.6", 12, "16", 16, 0 },
	{ "signedData as the sealed content type", 0, 1, "0", "4", "fleet-key-1", 0, 0, 0,
	  "1.2.840.113549.1.7.2", WRAP, GCM, 12, "16", 16, 0 },
	{ "an 11-byte nonce", 0, 1, "0", "4", "fleet-key-1", 0, 0, 0, OID_DATA, WRAP, GCM, 11,
	  "16", 16, 0 },
	{ "a 13-byte nonce", 0, 1, "0", "4", "fleet-key-1", 0, 0, 0, OID_DATA, WRAP, GCM, 13,
	  "16", 16, 0 },
	{ "a 16-byte nonce", 0, 1, "0", "4", "fleet-key-1", 0, 0, 0, OID_DATA, WRAP, GCM, 16,
	  "16", 16, 0 },
	{ "an 11-byte tag", 0, 1, "0", "4", "fleet-key-1", 0, 0, 0, OID_DATA, WRAP, GCM, 12,
	  "11", 11, 0 },
	{ "ICVlen 16 with a 12-byte mac", 0, 1, "0", "4", "fleet-key-1", 0, 0, 0, OID_DATA,
	  WRAP, GCM, 12, "16", 12, 0 },
	{ "a key id with a control character", 0, 1, "0", "4", "fleet\001key", 0, 0, 0,
	  OID_DATA, WRAP, GCM, 12, "16", 16, 0 },
	{ "a key id with a space", 0, 1, "0", "4", "fleet key", 0, 0, 0, OID_DATA, WRAP, GCM,
	  12, "16", 16, 0 },
};

static void
test_specs(void)
{
	static const char msg[] = "content of an envelope built by the test";
	asn1_node defs = NULL;
	gnutls_datum_t env;
	struct est_error e;
	size_t i;
	int rc, same;

	if (asn1_array2tree(cms_asn1_tab, &defs, NULL) != ASN1_SUCCESS) {
		tap_ok(0, "cms module loads");
		return;
	}
	for (i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
		env.data = NULL;
		if (build_spec(defs, &specs[i], msg, &env) < 0) {
			tap_ok(0, "building %s", specs[i].what);
			gnutls_free(env.data);
			continue;
		}
		rc = try_open(env.data, env.size, &ring_a, msg, strlen(msg), &same, &e);
		if (specs[i].ok)
			tap_ok(rc == 0 && same == 1, "open accepts %s", specs[i].what);
		else
			tap_ok(rc == -EST_EDATA && same == 0, "open refuses %s (%s)", specs[i].what,
			       e.msg);
		gnutls_free(env.data);
	}
	asn1_delete_structure(&defs);
}

int
main(void)
{
	memcpy(kek_b, kek_a, sizeof(kek_b));
	kek_b[31] ^= 1;
	test_round_trip();
	test_seal_refuses();
	test_wrong_key_and_id();
	test_flips();
	test_truncations();
	test_malformed_der();
	test_specs();
	return tap_done();
}
