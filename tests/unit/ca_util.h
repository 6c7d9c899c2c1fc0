/* Test helpers shared by the CA tests, issue_tool and bench/issue_rate:
 * throwaway CAs, CSRs and profiles made in process with GnuTLS. */
#ifndef EST_CA_UTIL_H
#define EST_CA_UTIL_H

#include "ca.h"

/* A new CA of type T valid for VALIDITY seconds, opened as a signer. When
 * KEY/CERT are not NULL they receive copies of the CA key and certificate. */
int tu_signer(enum est_key_type t, long long validity, struct est_signer *s,
	      gnutls_privkey_t *key, gnutls_x509_crt_t *cert);

/* A CSR with subject CN (none when NULL) signed by a new key of type T;
 * the key's copy in *KEY when KEY is not NULL. */
int tu_crq(enum est_key_type t, const char *cn, gnutls_x509_crq_t *out,
	   gnutls_x509_privkey_t *key);

/* A profile for THING: connect client/THING, publish topic/THING/telemetry,
 * subscribe (deny) topic/THING/secret. Free with est_profile_free. */
int tu_profile(const char *thing, struct est_profile *p);

/* Copy of CRT. */
gnutls_x509_crt_t tu_crt_dup(gnutls_x509_crt_t crt);

#endif
