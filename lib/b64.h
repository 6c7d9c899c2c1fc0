/* Base64 as EST uses it: decoding ignores white space (RFC 8951 bodies come
 * with or without line breaks), encoding writes 64-character lines. */
#ifndef EST_B64_H
#define EST_B64_H

#include <gnutls/gnutls.h>

#include "err.h"

/* Decode base64 in SRC (white space ignored) into OUT (gnutls_malloc'd). */
int est_b64_decode(const void *src, size_t len, gnutls_datum_t *out, struct est_error *e);

/* Encode SRC into OUT: 64-character lines, each ending in a newline
 * (no line breaks at all when WRAP is 0). OUT is gnutls_malloc'd, NUL-terminated. */
int est_b64_encode(const void *src, size_t len, int wrap, gnutls_datum_t *out,
		   struct est_error *e);

/* True when all of SRC is base64 alphabet, '=' or white space. */
int est_b64_looks_like(const void *src, size_t len);

#endif
