/* The HTTPS front end: libmicrohttpd + GnuTLS around the server core. It
 * only moves bytes: TLS (1.2/1.3), the client certificate and the channel
 * binding, body and time limits, one log line per request; EST is lib/srv.c. */
#ifndef EST_HTTPD_H
#define EST_HTTPD_H

#include <stdio.h>

#include "err.h"
#include "srv.h"

struct est_httpd;

struct est_httpd_opts {
	const char *listen;     /* "ADDR:PORT" ("[::1]:8443" for IPv6); NULL: the config's */
	unsigned threads;       /* request workers; 0: 8 per CPU */
	FILE *log;              /* one line per request; NULL: none */
};

/* Listen and serve SRV in background threads. EST_EUNAVAIL when the address
 * cannot be bound, EST_ECONFIG for a bad TLS key, certificate or priority. */
int est_httpd_start(struct est_srv *srv, const struct est_httpd_opts *opts,
		    struct est_httpd **out, struct est_error *e);

/* The port actually bound (useful with port 0). */
unsigned est_httpd_port(const struct est_httpd *h);

/* Reload the core (est_srv_reload) and the TLS key and certificate without
 * dropping a connection; new handshakes use the new certificate. */
int est_httpd_reload(struct est_httpd *h, struct est_error *e);

/* Stop accepting, let requests in flight finish (up to GRACE seconds),
 * then close every connection and free H. */
void est_httpd_stop(struct est_httpd *h, unsigned grace);

#endif
