#include "config.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/pkcs11.h>

#include "file.h"
#include "key.h"
#include "pin.h"

const char *const est_key_type_names[EST_KEY__MAX] = {
	[EST_KEY_EC_P256] = "ec-p256",
	[EST_KEY_EC_P384] = "ec-p384",
	[EST_KEY_ED25519] = "ed25519",
	[EST_KEY_RSA2048] = "rsa2048",
	[EST_KEY_RSA3072] = "rsa3072",
	[EST_KEY_RSA4096] = "rsa4096",
	[EST_KEY_AES256] = "aes256",
};

int
est_key_type_parse(const char *name, enum est_key_type *t, struct est_error *e)
{
	int i;

	for (i = 0; i < EST_KEY__MAX; i++) {
		if (strcmp(name, est_key_type_names[i]) == 0) {
			*t = (enum est_key_type)i;
			return 0;
		}
	}
	return est_fail(e, EST_EUSAGE,
			"unknown key type '%s' (expected ec-p256, ec-p384, ed25519, rsa2048, "
			"rsa3072, rsa4096 or aes256)", name);
}

int
est_key_generate(enum est_key_type t, gnutls_x509_privkey_t *out, struct est_error *e)
{
	static const struct {
		gnutls_pk_algorithm_t pk;
		unsigned bits;
	} spec[EST_KEY__MAX] = {
		[EST_KEY_EC_P256] = { GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1) },
		[EST_KEY_EC_P384] = { GNUTLS_PK_ECDSA, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP384R1) },
		[EST_KEY_ED25519] = { GNUTLS_PK_EDDSA_ED25519, GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519) },
		[EST_KEY_RSA2048] = { GNUTLS_PK_RSA, 2048 },
		[EST_KEY_RSA3072] = { GNUTLS_PK_RSA, 3072 },
		[EST_KEY_RSA4096] = { GNUTLS_PK_RSA, 4096 },
	};
	gnutls_x509_privkey_t key = NULL;
	int rc;

	*out = NULL;
	if ((int)t < 0 || t >= EST_KEY_AES256)
		return est_fail(e, EST_EUSAGE, "not an asymmetric key type");
	if ((rc = gnutls_x509_privkey_init(&key)) < 0 ||
	    (rc = gnutls_x509_privkey_generate2(key, spec[t].pk, spec[t].bits, 0, NULL, 0)) < 0) {
		gnutls_x509_privkey_deinit(key);
		return est_fail(e, EST_EINTERNAL, "generating a %s key: %s", est_key_type_names[t],
				gnutls_strerror(rc));
	}
	*out = key;
	return 0;
}

int
est_key_export_pem(gnutls_x509_privkey_t key, struct est_secret *pem, struct est_error *e)
{
	gnutls_datum_t d = { NULL, 0 };
	int rc;

	pem->data = NULL;
	pem->len = 0;
	rc = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN, &d);
	if (rc < 0)
		return est_fail(e, EST_EINTERNAL, "exporting the key: %s", gnutls_strerror(rc));
	rc = est_secret_alloc(pem, d.size);
	if (rc == 0)
		memcpy(pem->data, d.data, d.size);
	gnutls_memset(d.data, 0, d.size);
	gnutls_free(d.data);
	return rc == 0 ? 0 : est_fail(e, EST_EINTERNAL, "out of memory");
}

/* True when the LEN bytes at P contain the string S (memmem: the build
 * force-includes autoconf's config.h, which defines _GNU_SOURCE). */
static bool
contains(const char *p, size_t len, const char *s)
{
	return memmem(p, len, s, strlen(s)) != NULL;
}

/* Why DATA is not a key we can use, for the message of a failed import. */
static const char *
refusal(const gnutls_datum_t *data, int rc)
{
	const char *p = (const char *)data->data;

	/* PKCS#8 reports a failed decryption; the traditional OpenSSL form
	 * (Proc-Type: 4,ENCRYPTED) is not even recognised, so look for it. */
	if (rc == GNUTLS_E_DECRYPTION_FAILED || contains(p, data->size, "Proc-Type: 4,ENCRYPTED"))
		return "encrypted private keys are not supported (decrypt it first)";
	if (contains(p, data->size, "-----BEGIN PUBLIC KEY-----"))
		return "a public key, not a private key";
	return "not a private key (PEM or DER)";
}

/* Import DATA as PEM, then as DER, into X; a gnutls error code. */
static int
import_x509(gnutls_x509_privkey_t x, const gnutls_datum_t *data)
{
	int rc;

	/* import2 reads PKCS#8 and the traditional RSA/EC forms. An encrypted
	 * PEM key must keep its own error, not the DER attempt's. */
	rc = gnutls_x509_privkey_import2(x, data, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN);
	if (rc < 0 && rc != GNUTLS_E_DECRYPTION_FAILED)
		rc = gnutls_x509_privkey_import2(x, data, GNUTLS_X509_FMT_DER, NULL,
						 GNUTLS_PKCS_PLAIN);
	return rc;
}

int
est_key_parse(const gnutls_datum_t *data, const char *name, gnutls_privkey_t *out,
	      struct est_error *e)
{
	gnutls_x509_privkey_t x = NULL;
	gnutls_privkey_t key = NULL;
	int rc;

	*out = NULL;
	if ((rc = gnutls_x509_privkey_init(&x)) < 0)
		return est_fail(e, EST_EINTERNAL, "%s", gnutls_strerror(rc));
	if ((rc = import_x509(x, data)) < 0) {
		gnutls_x509_privkey_deinit(x);
		return est_fail(e, EST_EDATA, "%s: %s", name, refusal(data, rc));
	}
	if ((rc = gnutls_privkey_init(&key)) < 0 ||
	    (rc = gnutls_privkey_import_x509(key, x, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE)) < 0) {
		gnutls_privkey_deinit(key);
		gnutls_x509_privkey_deinit(x);
		return est_fail(e, EST_EINTERNAL, "%s: %s", name, gnutls_strerror(rc));
	}
	if (est_key_type_of(key) == EST_KEY__MAX) {
		gnutls_privkey_deinit(key);
		return est_fail(e, EST_EDATA, "%s: unsupported key type (use EC P-256/P-384, "
				"Ed25519 or RSA 2048-4096)", name);
	}
	*out = key;
	return 0;
}

/* URL as messages may show it: a pin-value attribute's value is the token's
 * PIN, so it becomes "***" (truncated to N - 1 bytes). */
static void
redact(const char *url, char *buf, size_t n)
{
	const char *p = url, *pin;
	size_t len = 0;
	int w;

	buf[0] = '\0';
	while (len < n && (pin = strstr(p, "pin-value=")) != NULL) {
		w = snprintf(buf + len, n - len, "%.*s***", (int)(pin + 10 - p), p);
		len += w < 0 ? n : (size_t)w;
		p = pin + 10 + strcspn(pin + 10, ";&");
	}
	if (len < n)
		snprintf(buf + len, n - len, "%s", p);
}

/* Import the key at URL (no pin-source left in it) into KEY, its PIN read
 * from PINFILE whenever the token asks; a failure of the file while loading
 * is explained in WHY. */
static int
import_pin_file(gnutls_privkey_t key, const char *url, const char *pinfile,
		struct est_error *why)
{
	struct est_pin_file now = { pinfile, why };
	const struct est_pin_file *later;
	gnutls_pkcs11_privkey_t p11 = NULL;
	int rc;

	/* The token asks for the PIN during the import, when NOW explains a
	 * failure in WHY, and may ask again while the key lives (a key that
	 * wants its PIN for each signature), when LATER, which outlives this
	 * frame, is used. Hence the PKCS#11 key by hand: once
	 * gnutls_privkey_import_url has made it, it cannot be reached. */
	if ((later = est_pin_file_keep(pinfile)) == NULL)
		return GNUTLS_E_MEMORY_ERROR;
	if ((rc = gnutls_pkcs11_privkey_init(&p11)) < 0)
		return rc;
	gnutls_pkcs11_privkey_set_pin_function(p11, est_pin_file_cb, &now);
	rc = gnutls_pkcs11_privkey_import_url(p11, url, 0);
	gnutls_pkcs11_privkey_set_pin_function(p11, est_pin_file_cb, (void *)later);
	if (rc >= 0)
		rc = gnutls_privkey_import_pkcs11(key, p11, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE);
	if (rc < 0)
		gnutls_pkcs11_privkey_deinit(p11);
	return rc;
}

/* A pin-source is taken off the URI before GnuTLS sees it: GnuTLS would hand
 * it to p11-kit, whose file callback reads the whole file (newline included)
 * whatever its mode, and not wipe it. */
static int
load_url(const char *url, gnutls_privkey_t *out, struct est_error *e)
{
	gnutls_privkey_t key = NULL;
	struct est_error why = { EST_OK, "" };
	char shown[512], *bare = NULL, *pinfile = NULL;
	int rc, has;

	redact(url, shown, sizeof(shown));
	if ((has = est_pin_source_split(url, &bare, &pinfile, e)) < 0) {
		est_error_prefix(e, "%s", shown);
		return has;
	}
	if ((rc = gnutls_privkey_init(&key)) >= 0)
		rc = has ? import_pin_file(key, bare, pinfile, &why)
			: gnutls_privkey_import_url(key, url, 0);
	if (rc < 0) {
		gnutls_privkey_deinit(key);
		key = NULL;
		rc = why.code != EST_OK ? est_fail(e, why.code, "%s", why.msg)
			: est_fail(e, EST_ENOINPUT, "%s: %s", shown, gnutls_strerror(rc));
	}
	free(bare);
	free(pinfile);
	*out = key;
	return rc < 0 ? rc : 0;
}

int
est_key_load(const char *path, gnutls_privkey_t *out, struct est_error *e)
{
	struct est_secret s = { NULL, 0 };
	gnutls_datum_t d;
	int rc;

	*out = NULL;
	if (strncmp(path, "pkcs11:", 7) == 0)
		return load_url(path, out, e);
	if ((rc = est_file_read_secret(path, 1u << 20, &s, e)) < 0)
		return rc;
	d.data = s.data;
	d.size = (unsigned)s.len;
	rc = est_key_parse(&d, est_path_is_std(path) ? "standard input" : path, out, e);
	est_secret_free(&s);
	return rc;
}

enum est_key_type
est_pubkey_type(gnutls_pubkey_t pub)
{
	unsigned bits = 0;
	gnutls_ecc_curve_t curve = GNUTLS_ECC_CURVE_INVALID;

	switch (gnutls_pubkey_get_pk_algorithm(pub, &bits)) {
	case GNUTLS_PK_RSA:
		return bits == 2048 ? EST_KEY_RSA2048 : bits == 3072 ? EST_KEY_RSA3072
			: bits == 4096 ? EST_KEY_RSA4096 : EST_KEY__MAX;
	case GNUTLS_PK_EDDSA_ED25519:
		return EST_KEY_ED25519;
	case GNUTLS_PK_ECDSA:
		if (gnutls_pubkey_export_ecc_raw(pub, &curve, NULL, NULL) < 0)
			return EST_KEY__MAX;
		return curve == GNUTLS_ECC_CURVE_SECP256R1 ? EST_KEY_EC_P256
			: curve == GNUTLS_ECC_CURVE_SECP384R1 ? EST_KEY_EC_P384 : EST_KEY__MAX;
	default:
		return EST_KEY__MAX;
	}
}

enum est_key_type
est_key_type_of(gnutls_privkey_t key)
{
	gnutls_pubkey_t pub = NULL;
	enum est_key_type t = EST_KEY__MAX;

	if (gnutls_pubkey_init(&pub) == 0 && gnutls_pubkey_import_privkey(pub, key, 0, 0) == 0)
		t = est_pubkey_type(pub);
	gnutls_pubkey_deinit(pub);
	return t;
}

gnutls_digest_algorithm_t
est_key_digest(gnutls_privkey_t key)
{
	switch (est_key_type_of(key)) {
	case EST_KEY_EC_P384:
		return GNUTLS_DIG_SHA384;
	case EST_KEY_ED25519:
		return GNUTLS_DIG_UNKNOWN;
	default:
		return GNUTLS_DIG_SHA256;
	}
}

int
est_pubkey_sha256_hex(gnutls_pubkey_t pub, char hex[65], struct est_error *e)
{
	unsigned char md[32];
	size_t len = sizeof(md);
	gnutls_datum_t der = { NULL, 0 };
	int rc, i;

	if ((rc = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der)) < 0)
		return est_fail(e, EST_EINTERNAL, "exporting a public key: %s", gnutls_strerror(rc));
	rc = gnutls_fingerprint(GNUTLS_DIG_SHA256, &der, md, &len);
	gnutls_free(der.data);
	if (rc < 0)
		return est_fail(e, EST_EINTERNAL, "hashing a public key: %s", gnutls_strerror(rc));
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

int
est_enrkey_generate(struct est_secret *hex, struct est_error *e)
{
	unsigned char raw[EST_ENRKEY_LEN];
	int i, rc;

	if (est_secret_alloc(hex, 2 * EST_ENRKEY_LEN + 1) < 0)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	if ((rc = gnutls_rnd(GNUTLS_RND_KEY, raw, sizeof(raw))) < 0) {
		est_secret_free(hex);
		return est_fail(e, EST_EINTERNAL, "random generator: %s", gnutls_strerror(rc));
	}
	for (i = 0; i < EST_ENRKEY_LEN; i++)
		snprintf((char *)hex->data + 2 * i, 3, "%02x", raw[i]);
	hex->data[2 * EST_ENRKEY_LEN] = '\n';
	gnutls_memset(raw, 0, sizeof(raw));
	return 0;
}

static int
hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
		: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

int
est_enrkey_parse(const unsigned char *text, size_t len, const char *name,
		 struct est_secret *key, struct est_error *e)
{
	size_t i = 0, n = 0;
	int hi, lo;

	key->data = NULL;
	key->len = 0;
	while (len > 0 && isspace(text[len - 1]))
		len--;
	while (i < len && isspace(text[i]))
		i++;
	if (len - i != 2 * EST_ENRKEY_LEN)
		return est_fail(e, EST_EDATA, "%s: an enrollment key is 64 hex characters", name);
	if (est_secret_alloc(key, EST_ENRKEY_LEN) < 0)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	for (; i < len; i += 2) {
		hi = hexval(text[i]);
		lo = hexval(text[i + 1]);
		if (hi < 0 || lo < 0) {
			est_secret_free(key);
			return est_fail(e, EST_EDATA, "%s: an enrollment key is 64 hex characters",
					name);
		}
		key->data[n++] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

int
est_enrkey_load(const char *path, struct est_secret *key, struct est_error *e)
{
	struct est_secret s = { NULL, 0 };
	int rc;

	if ((rc = est_file_read_secret(path, 4096, &s, e)) < 0)
		return rc;
	rc = est_enrkey_parse(s.data, s.len, est_path_is_std(path) ? "standard input" : path,
			      key, e);
	est_secret_free(&s);
	return rc;
}
