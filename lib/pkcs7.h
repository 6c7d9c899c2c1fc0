/* Certs-only PKCS#7 (RFC 7030 4.1.3, 4.2.3): SignedData with no content and
 * no signers, only certificates - the body of cacerts and enroll replies. */
#ifndef EST_PKCS7_H
#define EST_PKCS7_H

#include <stddef.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "err.h"

/* DER of a certs-only PKCS#7 holding the N >= 1 DER certificates CERTS into
 * OUT (gnutls_malloc'd). The certificates are not re-parsed. Their order is
 * not kept: `certificates` is a SET OF, which DER sorts (RFC 7030 gives the
 * order no meaning; readers build the chain by name). */
int est_pkcs7_build(const gnutls_datum_t *certs, size_t n, gnutls_datum_t *out,
		    struct est_error *e);

/* As est_pkcs7_build from parsed certificates. */
int est_pkcs7_build_crts(const gnutls_x509_crt_t *certs, size_t n, gnutls_datum_t *out,
			 struct est_error *e);

/* Parse a certs-only reply given as DER, base64 of DER (line breaks and
 * surrounding white space allowed) or PEM ("-----BEGIN PKCS7-----") into
 * *CERTS (gnutls_malloc'd array of *N parsed certificates, in the order
 * they are stored). NAME is for messages. Malformed input, or a reply with no
 * certificate, is EST_EDATA. Free with est_pkcs7_free_certs. */
int est_pkcs7_parse(const unsigned char *data, size_t len, const char *name,
		    gnutls_x509_crt_t **certs, unsigned *n, struct est_error *e);

/* Deinit CERTS[0..N-1] and free the array; safe on NULL. */
void est_pkcs7_free_certs(gnutls_x509_crt_t *certs, unsigned n);

#endif
