/* The csrattrs reply (RFC 7030 4.5.2): CsrAttrs ::= SEQUENCE OF AttrOrOID,
 * built with libtasn1 (lib/csrattrs.asn). */
#ifndef EST_CSRATTRS_H
#define EST_CSRATTRS_H

#include <gnutls/gnutls.h>

#include "err.h"
#include "key.h"

/* DER naming the device-profile extension OID, the key wanted (for EC an
 * id-ecPublicKey attribute holding the curve, for RSA an rsaEncryption
 * attribute holding the size, for Ed25519 its OID), the signature algorithm,
 * and challengePassword when POP asks for the channel binding in it. OUT is
 * gnutls_malloc'd. */
int est_csrattrs_build(enum est_key_type kt, int pop, gnutls_datum_t *out, struct est_error *e);

#endif
