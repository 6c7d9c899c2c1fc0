/* X.509 certificates: loading bundles, building and verifying a chain at a
 * given time, matching a private key, and reading the device profile. */
#ifndef EST_CERT_H
#define EST_CERT_H

#include <stdbool.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "err.h"
#include "profile.h"

/* The longest chain est_cert_verify builds (leaf, intermediates, anchor). */
#define EST_CERT_MAX_DEPTH 16
/* Room for est_cert_time_format's output and its NUL. */
#define EST_CERT_TIME_LEN 32

/* A list of certificates; free with est_cert_list_free. */
struct est_cert_list {
	gnutls_x509_crt_t *crts;
	unsigned n;
};

/* Parse DATA (one or more PEM certificates, or one DER certificate) into L.
 * NAME is for messages. No certificate in DATA: EST_EDATA. */
int est_cert_parse_bundle(const gnutls_datum_t *data, const char *name,
			  struct est_cert_list *l, struct est_error *e);

/* est_cert_parse_bundle on the contents of PATH ("-" for stdin). */
int est_cert_load_bundle(const char *path, struct est_cert_list *l, struct est_error *e);

/* Deinit every certificate of L and free it; safe on a zeroed list. */
void est_cert_list_free(struct est_cert_list *l);

/* What the certificate says about itself, for display. */
struct est_cert_info {
	char *subject;          /* RFC 4514 string, malloc'd */
	char *issuer;           /* likewise */
	char serial[2 * 32 + 1];        /* lowercase hex */
	time_t not_before;
	time_t not_after;
	char key_type[48];      /* "ECDSA P-256", "RSA 2048", "Ed25519" */
	char sha256[65];        /* SHA-256 of the DER certificate, lowercase hex */
};

/* Fill INFO from CRT. */
int est_cert_info(gnutls_x509_crt_t crt, struct est_cert_info *info, struct est_error *e);

void est_cert_info_free(struct est_cert_info *info);

/* Verify LEAF at time AT against the trust anchors of BUNDLE (its self-signed
 * certificates). Intermediates may come from EXTRA (the rest of the leaf's
 * file) and from BUNDLE's other certificates; a self-signed certificate in
 * EXTRA is never trusted. Every certificate of the path, anchor included,
 * must be valid at AT. NAME names the leaf and BUNDLE_NAME the bundle in
 * messages. Returns 0 when valid, EST_ENEGATIVE with the reason ("expired on
 * 2025-01-01T00:00:00Z", "not signed by a CA in ca.pem", "signature invalid",
 * ...), or another error when it cannot tell. */
int est_cert_verify(gnutls_x509_crt_t leaf, const struct est_cert_list *extra,
		    const struct est_cert_list *bundle, time_t at, const char *name,
		    const char *bundle_name, struct est_error *e);

/* *MATCH = whether KEY's public key is CRT's SubjectPublicKeyInfo. */
int est_cert_key_match(gnutls_x509_crt_t crt, gnutls_privkey_t key, bool *match,
		       struct est_error *e);

/* The profile in CRT: the DeviceProfile extension, else the seed's legacy
 * one. *FOUND is false (P untouched) when CRT has neither; a malformed
 * extension fails with EST_EDATA. */
int est_cert_profile(gnutls_x509_crt_t crt, struct est_profile *p, bool *found,
		     struct est_error *e);

/* Parse an RFC 3339 time ("2026-01-02T03:04:05Z", "...+02:00", fractions
 * of a second ignored) into *T; -1 when malformed. */
int est_cert_time_parse(const char *s, time_t *t);

/* Format T as "2026-01-02T03:04:05Z" into BUF. */
void est_cert_time_format(time_t t, char buf[EST_CERT_TIME_LEN]);

#endif
