/* Issuing certificates (DESIGN.md 4.5) behind a signer interface: the local
 * CA (a key file or PKCS#11 URI plus its certificate) is one backend, an AWS
 * IoT signer will be another. Also the certificates `server init` makes. */
#ifndef EST_CA_H
#define EST_CA_H

#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "err.h"
#include "key.h"
#include "profile.h"

/* Issued certificates start this long before the issuing time (never before
 * the CA's notBefore), so a device whose clock lags a few minutes behind the
 * server can use its certificate at once. */
#define EST_CA_BACKDATE (5 * 60)

/* Default validities, in seconds. */
#define EST_CA_DEFAULT_VALIDITY (365LL * 86400)
#define EST_CA_DEFAULT_CA_VALIDITY (10LL * 365 * 86400)
#define EST_CA_DEFAULT_SUBJECT "CN=estctl CA"

struct est_issue_req {
	gnutls_x509_crq_t crq;          /* the parsed CSR; its signature NOT yet verified */
	const struct est_profile *profile; /* validated by the caller (est_policy_check);
					    * gives the CN, not copied (see below) */
	long long validity;             /* seconds > 0; cut at the CA's notAfter */
	time_t now;                     /* issuing time; 0 means time(NULL) */
};

/* What issue() returns: everything the registry and the reply need. */
struct est_issued {
	gnutls_x509_crt_t crt;
	char serial_hex[41];            /* 40 lowercase hex digits (20 bytes) */
	time_t not_before, not_after;
	char key_sha256[65];            /* SHA-256 of the SubjectPublicKeyInfo, hex */
	gnutls_datum_t pem;             /* the certificate, PEM (gnutls_malloc'd) */
	gnutls_datum_t der;             /* the certificate, DER (gnutls_malloc'd) */
};

struct est_signer_ops {
	const char *name;               /* "local", "aws-iot" */
	/* Issue a certificate for REQ into OUT (zeroed first; free it with
	 * est_issued_free on success; nothing to free on failure).
	 * Verifies the CSR's self-signature exactly once (callers must not
	 * verify it again: it is ~25% of the cost): a bad signature or a
	 * malformed CSR is EST_EDATA. The certificate (local backend):
	 *   serial     20 random bytes, first bit clear, first byte non-zero
	 *              (always exactly 20 content octets, positive)
	 *   subject    exactly CN=<profile ThingName>; a CN in the CSR, when
	 *              present, must equal it (EST_EDATA otherwise); other RDNs
	 *              of the CSR's subject are not copied
	 *   validity   now - EST_CA_BACKDATE .. min(now + validity, CA notAfter)
	 *   extensions basicConstraints CA:FALSE (critical), keyUsage
	 *              digitalSignature (critical), extKeyUsage clientAuth, SKI,
	 *              AKI (= the CA's SKI). Nothing is copied from the CSR
	 *              but its public key: no SANs (policy does not validate
	 *              them) and NOT the profile extension - GnuTLS cannot
	 *              import a certificate holding EST_PROFILE_OID (a 128-bit
	 *              arc), see docs/DECISIONS.md; the validated profile is
	 *              bound to the certificate by the registry and audit log.
	 *   signature  SHA-256 (SHA-384 for a P-384 CA, pure Ed25519)
	 * A CA that has expired (or expires within the backdate) is EST_ECONFIG.
	 * Safe to call from several threads at once on one signer. */
	int (*issue)(void *ctx, const struct est_issue_req *req, struct est_issued *out,
		     struct est_error *e);
	/* The CA chain for cacerts, issuing CA first; owned by the signer. */
	int (*chain)(void *ctx, const gnutls_x509_crt_t **certs, unsigned *n);
	void (*close)(void *ctx);
};

struct est_signer {
	const struct est_signer_ops *ops;
	void *ctx;
};

/* Open the local CA: KEY is a key file (PEM/DER) or a "pkcs11:" URI
 * (est_key_load), CERT_FILE the CA certificate PEM, optionally followed by
 * its issuers (all of them become chain()). The certificate must be a CA
 * (basicConstraints CA:TRUE, keyCertSign when keyUsage is present) and match
 * the key (EST_ECONFIG otherwise). Close with est_signer_close. */
int est_ca_open(const char *key, const char *cert_file, struct est_signer *out,
		struct est_error *e);

/* As est_ca_open with an already loaded key and certificate(s); takes
 * ownership of KEY and of CERTS[0..N-1] (and the CERTS array, gnutls_malloc'd
 * as gnutls_x509_crt_list_import2 returns it), also on failure. */
int est_ca_open_mem(gnutls_privkey_t key, gnutls_x509_crt_t *certs, unsigned n,
		    struct est_signer *out, struct est_error *e);

/* Shorthands for the ops; close is safe on a zeroed signer. */
int est_signer_issue(const struct est_signer *s, const struct est_issue_req *req,
		     struct est_issued *out, struct est_error *e);
void est_signer_close(struct est_signer *s);

void est_issued_free(struct est_issued *iss);

/* For `server init`: a new CA key of type T (not EST_KEY_AES256) and a
 * self-signed CA certificate: subject SUBJECT_DN (an RFC 4514 string such as
 * "CN=Acme Fleet CA,O=Acme"; NULL for EST_CA_DEFAULT_SUBJECT), validity
 * seconds from now, basicConstraints CA:TRUE pathlen 0 (critical), keyUsage
 * keyCertSign + cRLSign (critical), SKI, 20-byte random serial. A bad DN is
 * EST_EUSAGE naming it. */
int est_ca_create(enum est_key_type t, const char *subject_dn, long long validity,
		  gnutls_x509_privkey_t *key, gnutls_x509_crt_t *cert, struct est_error *e);

/* For `server init`: a TLS server key of type T and certificate signed by
 * CA_KEY/CA_CERT for HOSTS (e.g. "localhost", "127.0.0.1", "::1": IP
 * literals become iPAddress SANs, the rest dNSName SANs; CN = HOSTS[0]),
 * keyUsage digitalSignature (+ keyEncipherment for RSA), extKeyUsage
 * serverAuth, CA:FALSE, SKI/AKI, validity min(now + VALIDITY, CA notAfter).
 * A gnutls_x509_privkey_t CA key from est_ca_create is wrapped with
 * gnutls_privkey_init + gnutls_privkey_import_x509(ca, key, 0). */
int est_tls_cert_create(gnutls_privkey_t ca_key, gnutls_x509_crt_t ca_cert,
			enum est_key_type t, const char *const *hosts, size_t nhosts,
			long long validity, gnutls_x509_privkey_t *key,
			gnutls_x509_crt_t *cert, struct est_error *e);

#endif
