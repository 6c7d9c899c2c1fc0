/* PKCS#10 requests carrying the device profile. */
#ifndef EST_CSR_H
#define EST_CSR_H

#include <gnutls/abstract.h>
#include <gnutls/x509.h>

#include "err.h"
#include "profile.h"

/* Build and sign a CSR: CN = profile's ThingName, the profile extension in
 * extensionRequest, SANs ("dns:NAME", "uri:URI", "ip:ADDR"), and a
 * challengePassword when CHALLENGE is not NULL. Signed with SHA-256 (SHA-384
 * for P-384, pure Ed25519). A malformed SAN is EST_EUSAGE (it comes from the
 * command line): dns: takes an RFC 1123 host name without wildcards, uri: an
 * absolute URI, ip: an IPv4 or IPv6 address. An invalid profile or a
 * challenge that is not 1-255 characters of one-line text is EST_EDATA. */
int est_csr_build(gnutls_privkey_t key, const struct est_profile *p, const char *const *sans,
		  size_t nsans, const char *challenge, gnutls_x509_crq_t *out,
		  struct est_error *e);

/* Parse a CSR given as PEM, DER or base64 of DER; NAME is for messages. */
int est_csr_parse(const unsigned char *data, size_t len, const char *name,
		  gnutls_x509_crq_t *out, struct est_error *e);

/* Verify the CSR's self-signature (EST_EDATA when it fails). */
int est_csr_verify(gnutls_x509_crq_t crq, struct est_error *e);

/* The profile in the CSR: the DeviceProfile extension, else the seed's
 * legacy one. *FOUND is 0 (P untouched) when the CSR has neither. */
int est_csr_profile(gnutls_x509_crq_t crq, struct est_profile *p, int *found,
		    struct est_error *e);

/* The value (extnValue's contents) of extension OID in the CSR's
 * extensionRequest: 1 and VALUE (gnutls_malloc'd) when present, 0 when
 * absent, EST_EDATA when it appears twice or the attribute is malformed.
 * CRITICAL (may be NULL) gets the flag. Use this rather than
 * gnutls_x509_crq_get_extension_*: GnuTLS 3.7 / libtasn1 keep OID arcs in
 * 64 bits and fail on every extension of a request holding EST_PROFILE_OID,
 * whose last arc is 128 bits. */
int est_csr_extension(gnutls_x509_crq_t crq, const char *oid, gnutls_datum_t *value,
		      int *critical, struct est_error *e);

/* The CSR as PEM or DER in OUT (gnutls_malloc'd). */
int est_csr_export(gnutls_x509_crq_t crq, int der, gnutls_datum_t *out, struct est_error *e);

#endif
