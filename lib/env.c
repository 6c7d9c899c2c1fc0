#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <libtasn1.h>
#include <nettle/aes.h>
#include <nettle/gcm.h>
#include <nettle/memops.h>
#include <nettle/nist-keywrap.h>

#include "env.h"
#include "key.h"

extern const asn1_static_node cms_asn1_tab[];

#define OID_AUTHENV "1.2.840.113549.1.9.16.1.23"
#define OID_DATA "1.2.840.113549.1.7.1"
#define OID_AES256_WRAP "2.16.840.1.101.3.4.1.45"
#define OID_AES256_GCM "2.16.840.1.101.3.4.1.46"

#define CEK_LEN 32
#define WRAPPED_LEN (CEK_LEN + 8)
#define NONCE_LEN 12
#define TAG_LEN 16

/* RFC 3394 2.2.3.1: the default initial value, checked again on unwrapping. */
static const uint8_t kw_iv[8] = { 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6 };

/* The fields of one envelope, as written or as read. */
struct sealed {
	char keyid[EST_ENV_KEYID_MAX + 1];
	unsigned char wrapped[WRAPPED_LEN];
	unsigned char nonce[NONCE_LEN];
	unsigned icvlen;
	unsigned char mac[TAG_LEN];
	gnutls_datum_t ct;      /* the encrypted content */
	gnutls_datum_t aad;     /* authAttrs with a SET tag (RFC 5083 2.2), or empty */
};

/* The parsed ASN.1 module: built once, read only afterwards, shared by threads. */
static pthread_once_t defs_once = PTHREAD_ONCE_INIT;
static asn1_node defs;
static int defs_rc;

static void
load_defs(void)
{
	defs_rc = asn1_array2tree(cms_asn1_tab, &defs, NULL);
}

static int
new_node(const char *type, asn1_node *n, struct est_error *e)
{
	int rc;

	*n = NULL;
	pthread_once(&defs_once, load_defs);
	if (defs_rc != ASN1_SUCCESS)
		return est_fail(e, EST_EINTERNAL, "cms module: %s", asn1_strerror(defs_rc));
	if ((rc = asn1_create_element(defs, type, n)) != ASN1_SUCCESS)
		return est_fail(e, EST_EINTERNAL, "%s: %s", type, asn1_strerror(rc));
	return 0;
}

static int
encode(asn1_node n, gnutls_datum_t *out, struct est_error *e)
{
	int len = 0, rc;

	out->data = NULL;
	out->size = 0;
	rc = asn1_der_coding(n, "", NULL, &len, NULL);
	if (rc != ASN1_MEM_ERROR)
		return est_fail(e, EST_EINTERNAL, "encoding the envelope: %s", asn1_strerror(rc));
	if ((out->data = gnutls_malloc(len > 0 ? len : 1)) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	if ((rc = asn1_der_coding(n, "", out->data, &len, NULL)) != ASN1_SUCCESS) {
		gnutls_free(out->data);
		out->data = NULL;
		return est_fail(e, EST_EINTERNAL, "encoding the envelope: %s", asn1_strerror(rc));
	}
	out->size = (unsigned)len;
	return 0;
}

/* Strict DER of TYPE filling all LEN bytes. libtasn1 overlooks some
 * non-DER forms (the length of an EXPLICIT tag around an ANY), so the
 * decoded value must also encode back to exactly the same bytes. */
static int
decode(const char *type, const unsigned char *der, size_t len, const char *what, asn1_node *n,
       struct est_error *e)
{
	gnutls_datum_t again = { NULL, 0 };
	int used = (int)len, rc;

	if ((rc = new_node(type, n, e)) < 0)
		return rc;
	rc = asn1_der_decoding2(n, der, &used, ASN1_DECODE_FLAG_STRICT_DER, NULL);
	if (rc == ASN1_SUCCESS && used >= 0 && (size_t)used == len) {
		if ((rc = encode(*n, &again, e)) < 0)
			goto out;
		if (again.size == len && memcmp(again.data, der, len) == 0)
			goto out;
	}
	rc = est_fail(e, EST_EDATA, "malformed envelope: bad %s", what);
out:
	if (rc < 0)
		asn1_delete_structure(n);
	gnutls_free(again.data);
	return rc;
}

/* The value of NAME in OUT (gnutls_malloc'd, NUL-terminated); EST_EDATA when absent. */
static int
read_alloc(asn1_node n, const char *name, gnutls_datum_t *out, struct est_error *e)
{
	int len = 0, rc;

	out->data = NULL;
	out->size = 0;
	rc = asn1_read_value(n, name, NULL, &len);
	if (rc == ASN1_SUCCESS && len == 0)
		return est_fail(e, EST_EDATA, "malformed envelope: empty %s", name);
	if (rc != ASN1_MEM_ERROR)
		return est_fail(e, EST_EDATA, "malformed envelope: no %s", name);
	if ((out->data = gnutls_malloc((size_t)len + 1)) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	if (asn1_read_value(n, name, out->data, &len) != ASN1_SUCCESS) {
		gnutls_free(out->data);
		out->data = NULL;
		return est_fail(e, EST_EDATA, "malformed envelope: bad %s", name);
	}
	out->data[len] = 0;
	out->size = (unsigned)len;
	return 0;
}

/* The value of NAME, which must be exactly WANT bytes long, into BUF. */
static int
read_fixed(asn1_node n, const char *name, unsigned char *buf, size_t want, const char *what,
	   struct est_error *e)
{
	int len = (int)want, rc;

	rc = asn1_read_value(n, name, buf, &len);
	if (rc != ASN1_SUCCESS || (size_t)len != want)
		return est_fail(e, EST_EDATA, "malformed envelope: %s is not %zu bytes", what, want);
	return 0;
}

static int
oid_is(asn1_node n, const char *name, const char *oid)
{
	char buf[128];
	int len = sizeof(buf);

	return asn1_read_value(n, name, buf, &len) == ASN1_SUCCESS && strcmp(buf, oid) == 0;
}

static int
absent(asn1_node n, const char *name)
{
	int len = 0;

	return asn1_read_value(n, name, NULL, &len) == ASN1_ELEMENT_NOT_FOUND;
}

/* A non-negative INTEGER of at most 4 bytes; -1 when missing, negative or larger. */
static long
read_small_int(asn1_node n, const char *name)
{
	unsigned char buf[4];
	int len = sizeof(buf), i;
	long v = 0;

	if (asn1_read_value(n, name, buf, &len) != ASN1_SUCCESS || len < 1 || (buf[0] & 0x80))
		return -1;
	for (i = 0; i < len; i++)
		v = v << 8 | buf[i];
	return v;
}

int
est_env_keyid_check(const char *keyid, struct est_error *e)
{
	size_t i, len = keyid != NULL ? strlen(keyid) : 0;

	if (len == 0 || len > EST_ENV_KEYID_MAX)
		return est_fail(e, EST_EDATA, "a key id is 1 to %d characters", EST_ENV_KEYID_MAX);
	for (i = 0; i < len; i++)
		if (keyid[i] <= ' ' || keyid[i] > '~')
			return est_fail(e, EST_EDATA,
					"a key id is printable ASCII without spaces");
	return 0;
}

/* The AlgorithmIdentifier parameters of the content encryption: GCMParameters. */
static int
build_gcm_params(const struct sealed *s, gnutls_datum_t *out, struct est_error *e)
{
	asn1_node n = NULL;
	char icv[8];
	int rc;

	if ((rc = new_node("CMS.GCMParameters", &n, e)) < 0)
		return rc;
	snprintf(icv, sizeof(icv), "%u", s->icvlen);
	if (asn1_write_value(n, "aesNonce", s->nonce, NONCE_LEN) != ASN1_SUCCESS ||
	    asn1_write_value(n, "aesICVlen", icv, 0) != ASN1_SUCCESS)
		rc = est_fail(e, EST_EINTERNAL, "building the gcm parameters");
	else
		rc = encode(n, out, e);
	asn1_delete_structure(&n);
	return rc;
}

static int
write_fields(asn1_node n, const struct sealed *s, const gnutls_datum_t *params)
{
#define W(name, val, len) if (asn1_write_value(n, name, val, len) != ASN1_SUCCESS) return -1
#define KEK "recipientInfos.?1.kekri."
	W("version", "0", 0);
	W("recipientInfos", "NEW", 1);
	W("recipientInfos.?1", "kekri", 1);
	W(KEK "version", "4", 0);
	W(KEK "kekid.keyIdentifier", s->keyid, (int)strlen(s->keyid));
	W(KEK "kekid.date", NULL, 0);
	W(KEK "kekid.other", NULL, 0);
	W(KEK "keyEncryptionAlgorithm.algorithm", OID_AES256_WRAP, 1);
	W(KEK "keyEncryptionAlgorithm.parameters", NULL, 0);
	W(KEK "encryptedKey", s->wrapped, WRAPPED_LEN);
	W("authEncryptedContentInfo.contentType", OID_DATA, 1);
	W("authEncryptedContentInfo.contentEncryptionAlgorithm.algorithm", OID_AES256_GCM, 1);
	W("authEncryptedContentInfo.contentEncryptionAlgorithm.parameters", params->data,
	  (int)params->size);
	W("authEncryptedContentInfo.encryptedContent", s->ct.data, (int)s->ct.size);
	W("authAttrs", NULL, 0);
	W("mac", s->mac, (int)s->icvlen);
	return 0;
#undef KEK
#undef W
}

/* The DER ContentInfo holding the AuthEnvelopedData of S. */
static int
build(const struct sealed *s, gnutls_datum_t *out, struct est_error *e)
{
	asn1_node aed = NULL, ci = NULL;
	gnutls_datum_t params = { NULL, 0 }, inner = { NULL, 0 };
	int rc;

	if ((rc = build_gcm_params(s, &params, e)) < 0)
		goto out;
	if ((rc = new_node("CMS.AuthEnvelopedData", &aed, e)) < 0)
		goto out;
	if (write_fields(aed, s, &params) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "building the envelope");
		goto out;
	}
	if ((rc = encode(aed, &inner, e)) < 0 || (rc = new_node("CMS.ContentInfo", &ci, e)) < 0)
		goto out;
	if (asn1_write_value(ci, "contentType", OID_AUTHENV, 1) != ASN1_SUCCESS ||
	    asn1_write_value(ci, "content", inner.data, (int)inner.size) != ASN1_SUCCESS) {
		rc = est_fail(e, EST_EINTERNAL, "building the content info");
		goto out;
	}
	rc = encode(ci, out, e);
out:
	asn1_delete_structure(&aed);
	asn1_delete_structure(&ci);
	gnutls_free(params.data);
	gnutls_free(inner.data);
	return rc;
}

int
est_env_seal(const struct est_secret *kek, const char *keyid, const unsigned char *content,
	     size_t len, gnutls_datum_t *out, struct est_error *e)
{
	unsigned char cek[CEK_LEN];
	struct sealed s;
	struct aes256_ctx aes;
	struct gcm_aes256_ctx gcm;
	int rc;

	out->data = NULL;
	out->size = 0;
	memset(&s, 0, sizeof(s));
	if (kek == NULL || kek->len != EST_ENRKEY_LEN)
		return est_fail(e, EST_EDATA, "an enrollment key is %d bytes", EST_ENRKEY_LEN);
	if ((rc = est_env_keyid_check(keyid, e)) < 0)
		return rc;
	if (len == 0 || len > EST_ENV_MAX_CONTENT)
		return est_fail(e, EST_EDATA, "cannot seal %zu bytes (1 to %u)", len,
				EST_ENV_MAX_CONTENT);
	strcpy(s.keyid, keyid);
	s.icvlen = TAG_LEN;
	s.ct.size = (unsigned)len;
	if ((s.ct.data = gnutls_malloc(len)) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	if ((rc = gnutls_rnd(GNUTLS_RND_KEY, cek, sizeof(cek))) < 0 ||
	    (rc = gnutls_rnd(GNUTLS_RND_NONCE, s.nonce, sizeof(s.nonce))) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "random generator: %s", gnutls_strerror(rc));
		goto out;
	}
	aes256_set_encrypt_key(&aes, kek->data);
	aes256_keywrap(&aes, kw_iv, WRAPPED_LEN, s.wrapped, cek);
	gcm_aes256_set_key(&gcm, cek);
	gcm_aes256_set_iv(&gcm, NONCE_LEN, s.nonce);
	gcm_aes256_encrypt(&gcm, len, s.ct.data, content);
	gcm_aes256_digest(&gcm, TAG_LEN, s.mac);
	rc = build(&s, out, e);
out:
	gnutls_memset(cek, 0, sizeof(cek));
	gnutls_memset(&aes, 0, sizeof(aes));
	gnutls_memset(&gcm, 0, sizeof(gcm));
	gnutls_free(s.ct.data);
	return rc;
}

/* The one KEKRecipientInfo: its key id and wrapped content key. */
static int
parse_recipient(asn1_node n, struct sealed *s, struct est_error *e)
{
	gnutls_datum_t id = { NULL, 0 };
	int count = 0, rc;

#define KEK "recipientInfos.?1.kekri."
	if (asn1_number_of_elements(n, "recipientInfos", &count) != ASN1_SUCCESS || count != 1)
		return est_fail(e, EST_EDATA, "envelope has %d recipients, expected one", count);
	if (read_small_int(n, KEK "version") != 4)
		return est_fail(e, EST_EDATA, "malformed envelope: kek recipient version is not 4");
	if (!absent(n, KEK "kekid.other"))
		return est_fail(e, EST_EDATA, "envelope: unsupported other key attribute");
	if (!oid_is(n, KEK "keyEncryptionAlgorithm.algorithm", OID_AES256_WRAP) ||
	    !absent(n, KEK "keyEncryptionAlgorithm.parameters"))
		return est_fail(e, EST_EDATA, "envelope: key encryption is not id-aes256-wrap");
	if ((rc = read_fixed(n, KEK "encryptedKey", s->wrapped, WRAPPED_LEN, "the wrapped key",
			     e)) < 0)
		return rc;
	if ((rc = read_alloc(n, KEK "kekid.keyIdentifier", &id, e)) < 0)
		return rc;
#undef KEK
	if (strlen((char *)id.data) != id.size || est_env_keyid_check((char *)id.data, NULL) < 0)
		rc = est_fail(e, EST_EDATA, "envelope: the key id is not a printable name");
	else
		memcpy(s->keyid, id.data, id.size + 1);
	gnutls_free(id.data);
	return rc;
}

/* GCMParameters: a 12-byte nonce and a tag of 12 to 16 bytes (RFC 5084 3.2). */
static int
parse_gcm_params(asn1_node n, struct sealed *s, struct est_error *e)
{
	asn1_node p = NULL;
	gnutls_datum_t der = { NULL, 0 };
	long icv;
	int rc;

	if ((rc = read_alloc(n, "authEncryptedContentInfo.contentEncryptionAlgorithm.parameters",
			     &der, e)) < 0)
		return rc;
	if ((rc = decode("CMS.GCMParameters", der.data, der.size, "gcm parameters", &p, e)) < 0)
		goto out;
	if ((rc = read_fixed(p, "aesNonce", s->nonce, NONCE_LEN, "the gcm nonce", e)) < 0)
		goto out;
	icv = read_small_int(p, "aesICVlen");
	if (icv < 12 || icv > TAG_LEN) {
		rc = est_fail(e, EST_EDATA, "envelope: unsupported gcm tag length");
		goto out;
	}
	s->icvlen = (unsigned)icv;
out:
	asn1_delete_structure(&p);
	gnutls_free(der.data);
	return rc;
}

/* The EncryptedContentInfo: id-data under id-aes256-GCM, and its ciphertext. */
static int
parse_content(asn1_node n, struct sealed *s, struct est_error *e)
{
	int rc;

	if (!oid_is(n, "authEncryptedContentInfo.contentType", OID_DATA))
		return est_fail(e, EST_EDATA, "envelope: sealed content type is not id-data");
	if (!oid_is(n, "authEncryptedContentInfo.contentEncryptionAlgorithm.algorithm",
		    OID_AES256_GCM))
		return est_fail(e, EST_EDATA, "envelope: content encryption is not id-aes256-GCM");
	if ((rc = parse_gcm_params(n, s, e)) < 0)
		return rc;
	if ((rc = read_alloc(n, "authEncryptedContentInfo.encryptedContent", &s->ct, e)) < 0)
		return rc;
	if (s->ct.size > EST_ENV_MAX_CONTENT)
		return est_fail(e, EST_EDATA, "envelope: sealed content over %u bytes",
				EST_ENV_MAX_CONTENT);
	if ((rc = read_fixed(n, "mac", s->mac, s->icvlen, "the mac", e)) < 0)
		return rc;
	return 0;
}

/* RFC 5083 2.2: authenticated attributes enter GCM as AAD, DER with a SET tag. */
static int
parse_aad(asn1_node n, const gnutls_datum_t *der, struct sealed *s, struct est_error *e)
{
	int start, end, rc;

	if (absent(n, "authAttrs"))
		return 0;
	rc = asn1_der_decoding_startEnd(n, der->data, (int)der->size, "authAttrs", &start, &end);
	if (rc != ASN1_SUCCESS || start < 0 || end < start || (size_t)end >= der->size)
		return est_fail(e, EST_EDATA, "malformed envelope: bad authAttrs");
	s->aad.size = (unsigned)(end - start + 1);
	if ((s->aad.data = gnutls_malloc(s->aad.size)) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	memcpy(s->aad.data, der->data + start, s->aad.size);
	s->aad.data[0] = 0x31;  /* [1] IMPLICIT -> SET OF */
	return 0;
}

static int
parse(const unsigned char *der, size_t len, struct sealed *s, struct est_error *e)
{
	asn1_node ci = NULL, aed = NULL;
	gnutls_datum_t inner = { NULL, 0 };
	int rc;

	if ((rc = decode("CMS.ContentInfo", der, len, "content info", &ci, e)) < 0)
		return rc;
	if (!oid_is(ci, "contentType", OID_AUTHENV)) {
		rc = est_fail(e, EST_EDATA, "not a sealed csr (not authEnvelopedData)");
		goto out;
	}
	if ((rc = read_alloc(ci, "content", &inner, e)) < 0)
		goto out;
	if ((rc = decode("CMS.AuthEnvelopedData", inner.data, inner.size,
			 "authEnvelopedData", &aed, e)) < 0)
		goto out;
	if (read_small_int(aed, "version") != 0) {
		rc = est_fail(e, EST_EDATA, "malformed envelope: version is not 0");
		goto out;
	}
	if ((rc = parse_recipient(aed, s, e)) < 0 || (rc = parse_content(aed, s, e)) < 0)
		goto out;
	rc = parse_aad(aed, &inner, s, e);
out:
	asn1_delete_structure(&ci);
	asn1_delete_structure(&aed);
	gnutls_free(inner.data);
	return rc;
}

/* Unwrap the content key, decrypt and check the tag; CONTENT only on success. */
static int
decrypt(const struct sealed *s, const struct est_secret *kek, struct est_secret *content,
	struct est_error *e)
{
	unsigned char cek[CEK_LEN], tag[TAG_LEN];
	struct aes256_ctx aes;
	struct gcm_aes256_ctx gcm;
	int rc = 0;

	aes256_set_decrypt_key(&aes, kek->data);
	if (!aes256_keyunwrap(&aes, kw_iv, CEK_LEN, cek, s->wrapped)) {
		rc = est_fail(e, EST_EDATA, "authentication failed");
		goto out;
	}
	if (est_secret_alloc(content, s->ct.size) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	gcm_aes256_set_key(&gcm, cek);
	gcm_aes256_set_iv(&gcm, NONCE_LEN, s->nonce);
	if (s->aad.size > 0)
		gcm_aes256_update(&gcm, s->aad.size, s->aad.data);
	gcm_aes256_decrypt(&gcm, s->ct.size, content->data, s->ct.data);
	gcm_aes256_digest(&gcm, s->icvlen, tag);
	if (!memeql_sec(tag, s->mac, s->icvlen)) {
		est_secret_free(content);
		rc = est_fail(e, EST_EDATA, "authentication failed");
	}
out:
	gnutls_memset(cek, 0, sizeof(cek));
	gnutls_memset(&aes, 0, sizeof(aes));
	gnutls_memset(&gcm, 0, sizeof(gcm));
	return rc;
}

int
est_env_open(const unsigned char *der, size_t len, est_env_lookup_fn lookup, void *ctx,
	     struct est_secret *content, char **keyid, struct est_error *e)
{
	struct est_secret kek = { NULL, 0 };
	struct sealed s;
	int rc;

	memset(&s, 0, sizeof(s));
	content->data = NULL;
	content->len = 0;
	if (keyid != NULL)
		*keyid = NULL;
	if (len > EST_ENV_MAX)
		return est_fail(e, EST_EDATA, "envelope over %u bytes", EST_ENV_MAX);
	if ((rc = parse(der, len, &s, e)) < 0 || (rc = lookup(ctx, s.keyid, &kek, e)) < 0)
		goto out;
	if (kek.data == NULL || kek.len != EST_ENRKEY_LEN) {
		rc = est_fail(e, EST_EINTERNAL, "key '%s' is not %d bytes", s.keyid,
			      EST_ENRKEY_LEN);
		goto out;
	}
	if ((rc = decrypt(&s, &kek, content, e)) < 0)
		goto out;
	if (keyid != NULL && (*keyid = strdup(s.keyid)) == NULL) {
		est_secret_free(content);
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
	}
out:
	est_secret_free(&kek);
	gnutls_free(s.ct.data);
	gnutls_free(s.aad.data);
	return rc;
}

int
est_env_is_sealed(const unsigned char *der, size_t len)
{
	unsigned char cls;
	unsigned long tag;
	int tl, ll, n = (int)(len < EST_ENV_MAX ? len : EST_ENV_MAX), off;
	long l;
	char oid[64];

	if (der == NULL || n <= 0 || asn1_get_tag_der(der, n, &cls, &tl, &tag) != ASN1_SUCCESS ||
	    cls != (ASN1_CLASS_UNIVERSAL | ASN1_CLASS_STRUCTURED) || tag != ASN1_TAG_SEQUENCE)
		return 0;
	/* -4: the length runs past LEN, which a truncated envelope still starts like */
	if ((l = asn1_get_length_der(der + tl, n - tl, &ll)) < 0 && l != -4)
		return 0;
	off = tl + ll;
	if (asn1_get_tag_der(der + off, n - off, &cls, &tl, &tag) != ASN1_SUCCESS ||
	    cls != ASN1_CLASS_UNIVERSAL || tag != ASN1_TAG_OBJECT_ID)
		return 0;
	off += tl;
	if (asn1_get_object_id_der(der + off, n - off, &ll, oid, sizeof(oid)) != ASN1_SUCCESS)
		return 0;
	return strcmp(oid, OID_AUTHENV) == 0;
}
