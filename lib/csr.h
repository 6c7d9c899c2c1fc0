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
 * for P-384, pure Ed25519). */
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

/* The CSR as PEM or DER in OUT (gnutls_malloc'd). */
int est_csr_export(gnutls_x509_crq_t crq, int der, gnutls_datum_t *out, struct est_error *e);

#endif
