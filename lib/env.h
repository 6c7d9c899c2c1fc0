/* The sealed CSR of DESIGN.md 4.3: CMS AuthEnvelopedData (RFC 5083) with
 * AES-256-GCM content encryption and one KEKRecipientInfo (AES-256 key wrap). */
#ifndef EST_ENV_H
#define EST_ENV_H

#include <stddef.h>

#include <gnutls/gnutls.h>

#include "err.h"
#include "secret.h"

/* The largest content est_env_seal seals and est_env_open releases (a CSR is
 * a few kilobytes), and the largest envelope est_env_open parses. */
#define EST_ENV_MAX_CONTENT (256u << 10)
#define EST_ENV_MAX (EST_ENV_MAX_CONTENT + (16u << 10))

/* The longest key id (a short ASCII name: the seed config's KV_Name). Key ids
 * are 1..EST_ENV_KEYID_MAX printable ASCII characters other than space. */
#define EST_ENV_KEYID_MAX 128

/* Find the 32-byte key for KEYID (copy into KEY); 0, or a negative
 * est_err when the id is unknown (EST_EREFUSED) or cannot be read. */
typedef int (*est_env_lookup_fn)(void *ctx, const char *keyid, struct est_secret *key,
				 struct est_error *e);

/* Seal CONTENT under KEK (32 bytes) named KEYID; OUT is DER ContentInfo
 * (gnutls_malloc'd). A fresh content key and nonce are drawn for every call. */
int est_env_seal(const struct est_secret *kek, const char *keyid, const unsigned char *content,
		 size_t len, gnutls_datum_t *out, struct est_error *e);

/* Open DER: parse, look up the key by its kekid, unwrap, decrypt and check
 * the tag. Any malformed, truncated or tampered input, or a wrong key, is
 * EST_EDATA with no plaintext released. *KEYID (malloc'd) names the key used
 * when not NULL (set on success only, NULL otherwise). CONTENT is a secret
 * buffer: a decrypted CSR is wiped after use. An error from LOOKUP (such as
 * EST_EREFUSED "unknown key id 'x'") is returned as LOOKUP reported it. */
int est_env_open(const unsigned char *der, size_t len, est_env_lookup_fn lookup, void *ctx,
		 struct est_secret *content, char **keyid, struct est_error *e);

/* 0 when KEYID is a valid key id, else EST_EDATA saying why. */
int est_env_keyid_check(const char *keyid, struct est_error *e);

/* True when DER starts like a ContentInfo of type id-ct-authEnvelopedData. */
int est_env_is_sealed(const unsigned char *der, size_t len);

#endif
