/* The EST client of RFC 7030 (with RFC 8951) over libcurl: one struct
 * est_client per server holds the base URL, the trust in the server, the
 * credentials and one libcurl multi handle, so a fleet keeps many requests in
 * flight over shared connections and TLS sessions. Nothing here prints or
 * sleeps; a 202 is handed back with its Retry-After for the caller to wait. */
#ifndef EST_CLIENT_H
#define EST_CLIENT_H

#include <stddef.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "err.h"
#include "secret.h"

/* Reply bodies larger than this are a protocol error. */
#define EST_CLIENT_BODY_MAX (1u << 20)

/* A server's reason (text/plain) is cut to this many characters. */
#define EST_CLIENT_REASON_MAX 200

enum est_op { EST_OP_CACERTS, EST_OP_SIMPLEENROLL, EST_OP_SIMPLEREENROLL, EST_OP_CSRATTRS,
	      EST_OP__MAX };

/* "cacerts", "simpleenroll", ..., indexed by enum est_op: the path's last segment. */
extern const char *const est_op_names[EST_OP__MAX];

struct est_client_opts {
	const char *url;        /* ESTAPIURL: https://host[:port][/prefix][/.well-known/est[/label]] */
	const char *label;      /* the CA label, or NULL */
	const char *cacert;     /* trust anchors (PEM file) for the server's TLS certificate */
	const char *pin;        /* "SHA256:HEX" of the CA certificate, for bootstrap */
	int system_store;       /* with neither CACERT nor PIN: trust the system's store */
	const char *user;       /* HTTP Basic on enrollment requests, or NULL */
	const struct est_secret *password;      /* its password (copied) */
	const char *cert;       /* client certificate (PEM file) for mutual TLS, or NULL */
	const char *key;        /* its private key (PEM file or pkcs11: URI) */
	long connect_timeout;   /* seconds; 0 for 15 */
	long timeout;           /* seconds for a whole request; 0 for 120 */
};

/* A list of certificates, owned. */
struct est_certs {
	gnutls_x509_crt_t *crt;
	unsigned n;
};

void est_certs_free(struct est_certs *c);

/* All of CERTS as one PEM bundle in OUT (malloc'd, NUL-terminated). */
int est_certs_pem(const struct est_certs *certs, gnutls_datum_t *out, struct est_error *e);

/* One request. BODY is the DER CSR (or sealed envelope when SEALED): it is
 * copied (as base64) at submission. CERT/KEY override the client's mutual-TLS
 * credentials for this request (rotate: each device's own pair). USER comes
 * back in the result untouched. */
struct est_request {
	enum est_op op;
	const unsigned char *body;
	size_t len;
	int sealed;
	const char *cert;
	const char *key;
	void *user;
};

/* The outcome of one request. RC is 0 or a negative est_err, with ERR saying
 * what went wrong: EST_ETEMPFAIL for 202 (RETRY_AFTER is the wait in seconds,
 * from delta-seconds or an HTTP-date), EST_EREFUSED for 401/403 (with the
 * server's reason, sanitized), EST_EUNAVAIL when the server cannot be reached
 * or answers 5xx, EST_EPROTO for a server that cannot be trusted (TLS
 * verification, pin) or an answer that is not RFC 7030. */
struct est_result {
	enum est_op op;
	void *user;
	int rc;
	struct est_error err;
	long status;            /* the HTTP status, 0 when there was none */
	long retry_after;
	struct est_certs certs; /* cacerts, simpleenroll, simplereenroll: the reply's certificates */
	gnutls_datum_t der;     /* csrattrs: the DER reply (empty for 204/404) */
};

void est_result_free(struct est_result *r);

struct est_client;

/* Why libcurl could not be loaded (lib/curl_dl.c), or NULL when it was. */
const char *est_curl_load_error(void);

/* Check O (URL, label, pin, files present) and set up the handles; no
 * network yet. Bad options are EST_ECONFIG; with neither a trust anchor nor a
 * pin nor SYSTEM_STORE the client refuses to start (EST_ECONFIG). */

int est_client_new(const struct est_client_opts *o, struct est_client **out, struct est_error *e);

void est_client_free(struct est_client *c);

/* The base URL with "/.well-known/est/[LABEL/]" (malloc'd in *OUT): appended
 * unless URL already ends in it. Only https is accepted (EST_ECONFIG). */
int est_client_base_url(const char *url, const char *label, char **out, struct est_error *e);

/* Parse "SHA256:HEX" (prefix optional, case and colons ignored) into SHA. */
int est_client_pin_parse(const char *pin, unsigned char sha[32], struct est_error *e);

/* Check the server part of O before any network: a URL ("--url is required"
 * otherwise), that it makes a base URL, and a well-formed pin; EST_EUSAGE or
 * the parse error. Without --cacert or a pin, O trusts the system store. */
int est_client_target_check(struct est_client_opts *o, struct est_error *e);

/* The server's reason: the first line of BODY, printable ASCII only, cut to
 * EST_CLIENT_REASON_MAX characters (with "..." when cut), into OUT. */
void est_client_reason(const unsigned char *body, size_t len, char *out, size_t size);

/* Certificates of a certs-only PKCS#7 reply given as base64 (with or without
 * line breaks) or DER; NAME is for messages (EST_EPROTO when it is neither). */
int est_client_certs_parse(const unsigned char *body, size_t len, const char *name,
			   struct est_certs *out, struct est_error *e);

/* The OIDs of a csrattrs reply (DER CsrAttrs of RFC 7030 4.5.2): one string
 * per entry, "OID" for a bare OID and "OID VALUE-OID..." for an attribute whose
 * values are OIDs (other values are left out). *OUT is a malloc'd array of
 * malloc'd strings. */
int est_client_csrattrs_parse(const unsigned char *der, size_t len, char ***out, size_t *n,
			      struct est_error *e);

/* Get the CA certificates (GET cacerts) and keep them as the CA that issued
 * certificates must chain to. With a pin and no trust anchor this is RFC 7030
 * 4.1.1 bootstrap: the first fetch is unverified, one certificate in it must
 * match the pin, and from then on the server's TLS chain must verify against
 * that CA (the CA list is fetched again that way before it is returned). OUT
 * may be NULL; otherwise it gets its own copy. Blocking; call it before
 * submitting anything while nothing is in flight. */
int est_client_cacerts(struct est_client *c, struct est_certs *out, struct est_error *e);

/* The CA list from est_client_cacerts, or NULL before it. */
const struct est_certs *est_client_ca(const struct est_client *c);

/* Start R. Enrollment requests need est_client_cacerts first when pinning. */
int est_client_submit(struct est_client *c, const struct est_request *r, struct est_error *e);

/* Run the transfers for up to TIMEOUT_MS (-1: until one finishes). Returns 1
 * with *RES filled when a request finished, 0 when none did in time (with
 * nothing in flight: after sleeping TIMEOUT_MS, at once for -1), or a
 * negative est_err when libcurl itself failed. RES must be freed. */
int est_client_wait(struct est_client *c, int timeout_ms, struct est_result *res,
		    struct est_error *e);

/* Requests submitted and not yet returned by est_client_wait. */
size_t est_client_pending(const struct est_client *c);

/* Submit R and wait for it (nothing else may be in flight): RES->rc is also
 * the return value, with *E a copy of RES->err. */
int est_client_do(struct est_client *c, const struct est_request *r, struct est_result *res,
		  struct est_error *e);

/* Check an enrollment reply before keeping it: one certificate in REPLY has
 * the public key of CRQ (when CRQ is not NULL; otherwise the first non-CA
 * one is taken) and CRQ's subject, and it verifies, through the other
 * certificates of REPLY, to one of CA. *LEAF is its index in REPLY.
 * A mismatch is EST_EPROTO naming what differs. */
int est_client_check_issued(const struct est_certs *reply, gnutls_x509_crq_t crq,
			    const struct est_certs *ca, unsigned *leaf, struct est_error *e);

#endif
