/* The transport-independent EST server core (DESIGN.md section 2): a request
 * {method, path, content type, body, HTTP credentials, client certificate
 * chain, channel binding} in, a response {status, headers, body} out. The
 * libmicrohttpd front end (lib/httpd.c) and a Lambda front end are thin
 * adapters around est_srv_handle(); neither holds EST logic. */
#ifndef EST_SRV_H
#define EST_SRV_H

#include <stddef.h>

#include <gnutls/gnutls.h>

#include "err.h"

struct est_srv;

struct est_srv_request {
	const char *method;             /* "GET", "POST", ... */
	const char *path;               /* URL path, no query string */
	const char *content_type;       /* NULL when absent */
	const unsigned char *body;
	size_t body_len;
	const char *authorization;      /* raw Authorization header, or NULL */
	const gnutls_datum_t *peer_chain;  /* the client's certificates (DER), leaf first */
	unsigned peer_chain_len;        /* 0 without a client certificate */
	const unsigned char *channel_binding;  /* tls-unique (TLS 1.2) or tls-exporter (1.3) */
	size_t channel_binding_len;     /* 0 when the transport has none */
	const char *remote;             /* peer address, for the audit log */
};

struct est_srv_response {
	int status;                     /* HTTP status */
	const char *content_type;       /* a static string */
	char extra_name[32];            /* "WWW-Authenticate", "Retry-After", "Allow" or "" */
	char extra_value[256];
	gnutls_datum_t body;            /* gnutls_malloc'd; est_srv_response_free() frees */
	char note[256];                 /* why, for the server's own log line only: never sent */
};

/* Static settings a front end needs (copied out, so a reload cannot change
 * them under it). */
struct est_srv_transport {
	char tls_cert[4096];            /* path of the TLS certificate chain (PEM) */
	char tls_key[4096];             /* path of its key (PEM) */
	char priorities[512];           /* GnuTLS priority string */
	char listen[128];               /* default ADDR:PORT */
	size_t max_body;                /* bytes; larger bodies get 413 */
	unsigned timeout;               /* seconds of inactivity before a connection is cut */
	unsigned request_timeout;       /* seconds a request may take from its first byte */
	unsigned max_connections;
};

/* Open the state directory DIR (DESIGN.md section 5): read config.json,
 * open the signer, the key store, the credentials, the registry and the
 * audit log, and start the group committer. EST_ECONFIG names the field. */
int est_srv_open(const char *dir, struct est_srv **out, struct est_error *e);

/* Re-read the configuration, keys, credentials and trust anchors. Requests
 * in flight finish on the old settings; on failure the old ones stay. */
int est_srv_reload(struct est_srv *srv, struct est_error *e);

/* The transport settings of the current configuration. */
void est_srv_transport(struct est_srv *srv, struct est_srv_transport *out);

/* PEM of every certificate a client may present (this CA, for re-enrollment,
 * and the bootstrap anchors), for the TLS CertificateRequest; gnutls_malloc'd. */
int est_srv_client_cas(struct est_srv *srv, gnutls_datum_t *pem, struct est_error *e);

/* Handle one request; always fills RESP (5xx on internal failure, with the
 * detail in RESP->note). Thread-safe. */
void est_srv_handle(struct est_srv *srv, const struct est_srv_request *req,
		    struct est_srv_response *resp);

void est_srv_response_free(struct est_srv_response *resp);

/* Stop the committer (after flushing it) and free everything. */
void est_srv_close(struct est_srv *srv);

#endif
