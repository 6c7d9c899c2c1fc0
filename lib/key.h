/* Keys: generating, loading (PEM PKCS#8 or traditional, DER, PKCS#11 URI)
 * and the AES enrollment keys of DESIGN.md 4.3. */
#ifndef EST_KEY_H
#define EST_KEY_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "err.h"
#include "secret.h"

enum est_key_type {
	EST_KEY_EC_P256,
	EST_KEY_EC_P384,
	EST_KEY_ED25519,
	EST_KEY_RSA2048,
	EST_KEY_RSA3072,
	EST_KEY_RSA4096,
	EST_KEY_AES256,     /* an enrollment key, not an asymmetric one */
	EST_KEY__MAX
};

/* "ec-p256", ... "aes256", indexed by enum est_key_type. */
extern const char *const est_key_type_names[EST_KEY__MAX];

/* Parse NAME into *T; EST_EUSAGE naming the accepted types otherwise. */
int est_key_type_parse(const char *name, enum est_key_type *t, struct est_error *e);

/* Generate an asymmetric key of type T (not EST_KEY_AES256). */
int est_key_generate(enum est_key_type t, gnutls_x509_privkey_t *out, struct est_error *e);

/* KEY as PKCS#8 PEM (unencrypted) in a secret buffer. */
int est_key_export_pem(gnutls_x509_privkey_t key, struct est_secret *pem, struct est_error *e);

/* Load a private key from PATH ("-" for stdin): PEM (PKCS#8 or traditional)
 * or DER, or a "pkcs11:" URI. The file's bytes are wiped after parsing. A
 * URI's PIN comes from its pin-value attribute, or from the file its
 * pin-source names (pin.h), read whenever the token asks and never from a
 * terminal. */
int est_key_load(const char *path, gnutls_privkey_t *out, struct est_error *e);

/* Parse a private key from memory, PEM or DER; NAME is for messages. */
int est_key_parse(const gnutls_datum_t *data, const char *name, gnutls_privkey_t *out,
		  struct est_error *e);

/* The type of a loaded key, or EST_KEY__MAX when it is none of ours. */
enum est_key_type est_key_type_of(gnutls_privkey_t key);

/* The type of a public key (a CSR's or a certificate's), or EST_KEY__MAX. */
enum est_key_type est_pubkey_type(gnutls_pubkey_t pub);

/* The digest to sign with for KEY: SHA-384 for P-384, SHA-256 otherwise
 * (GNUTLS_DIG_UNKNOWN for Ed25519, which signs the message itself). */
gnutls_digest_algorithm_t est_key_digest(gnutls_privkey_t key);

/* SHA-256 of KEY's SubjectPublicKeyInfo, as 64 lowercase hex characters. */
int est_pubkey_sha256_hex(gnutls_pubkey_t pub, char hex[65], struct est_error *e);

/* Length of an enrollment key and its file form: 64 hex characters + "\n". */
#define EST_ENRKEY_LEN 32

/* A new enrollment key in its file form (65 bytes) in HEX. */
int est_enrkey_generate(struct est_secret *hex, struct est_error *e);

/* Read an enrollment key file (64 hex characters, surrounding white space
 * allowed) into KEY (32 bytes). */
int est_enrkey_load(const char *path, struct est_secret *key, struct est_error *e);

/* Decode the text form in TEXT into KEY (32 bytes); NAME is for messages. */
int est_enrkey_parse(const unsigned char *text, size_t len, const char *name,
		     struct est_secret *key, struct est_error *e);

#endif
