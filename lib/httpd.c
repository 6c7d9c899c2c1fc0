/* libmicrohttpd + GnuTLS front end. Decisions:
 * - the TLS certificate comes from a retrieve callback, so SIGHUP can swap
 *   it without restarting the daemon (retired credentials are kept until
 *   stop: a session may still point at them);
 * - client certificates are requested (never required) by handing MHD the
 *   PEM of every acceptable issuer; the core verifies the chain itself;
 * - MHD's few I/O threads (one per CPU) never block: a complete request is
 *   suspended and handed to a pool of workers, which may wait for the group
 *   commit while MHD goes on with the other connections, and resumed with its
 *   response. (A thread per connection would do the same, but GnuTLS 3.7
 *   keeps every thread's random-generator state until exit: the server
 *   would grow by about 220 bytes per connection. MHD's own pool would block
 *   every other connection of a thread whose request waits for the commit.)
 * - MHD's timeout is an inactivity timeout, which a client sending one byte
 *   a second never trips, so a reaper thread also cuts every connection that
 *   has not completed a request within request_timeout seconds of its start
 *   or of its previous reply (shutdown(2) of the socket; MHD then closes it). */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#include "file.h"
#include "httpd.h"
#include "key.h"

struct creds {
	gnutls_pcert_st *pcert;
	unsigned npcert;
	gnutls_privkey_t key;
	struct creds *next;             /* retired list */
};

struct conn {
	struct conn *prev, *next;
	int fd;
	struct timespec since;          /* start, or end of the previous request */
	int cut;                        /* serves no further request */
	int busy;                       /* a request in flight */
};

enum req_state { REQ_READING, REQ_QUEUED, REQ_DONE };

/* The largest declared body read (and dropped) to answer 413 cleanly. */
#define DRAIN_MAX (1024 * 1024)

struct req {
	unsigned char *body;
	size_t len, cap;
	struct timespec t0;
	int logged;
	int discard;                    /* declared over the limit: read, drop, answer 413 */
	/* Handed to a worker: what it needs, filled in by the I/O thread. */
	enum req_state state;
	struct MHD_Connection *conn;
	struct est_srv_request q;
	struct est_srv_response resp;
	gnutls_datum_t cb;              /* the channel binding q points into */
	char addr[INET6_ADDRSTRLEN];
	struct req *next;               /* the work queue */
};

/* The request workers: a FIFO of suspended requests. */
struct pool {
	pthread_mutex_t mu;
	pthread_cond_t work;
	struct req *head, *tail;
	pthread_t *tids;
	unsigned n;                     /* threads started */
	int stopping;
};

struct est_httpd {
	struct MHD_Daemon *daemon;
	struct est_srv *srv;
	FILE *log;
	size_t max_body;
	unsigned request_timeout;
	unsigned port;
	char *trust;                    /* PEM handed to MHD, kept alive */
	char priorities[640];
	pthread_mutex_t lock;           /* creds, conns, inflight, stopping */
	pthread_cond_t cond;            /* the reaper's: stopping */
	pthread_cond_t idle;            /* drain's: no request in flight */
	struct creds *creds, *retired;
	struct conn *conns;
	unsigned inflight;
	int stopping;
	int closing;                    /* stopping: every response closes its connection */
	pthread_t reaper;
	int reaper_started;
	struct pool pool;
};

static double
ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

static void
creds_free(struct creds *c)
{
	unsigned i;

	if (c == NULL)
		return;
	for (i = 0; i < c->npcert; i++)
		gnutls_pcert_deinit(&c->pcert[i]);
	gnutls_free(c->pcert);
	gnutls_privkey_deinit(c->key);
	free(c);
}

static int
creds_load(const char *cert_path, const char *key_path, struct creds **out, struct est_error *e)
{
	gnutls_datum_t pem = { NULL, 0 };
	struct creds *c;
	unsigned n = 16;
	int r, rc = 0;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	if ((rc = est_file_read(cert_path, EST_FILE_MAX, &pem, e)) < 0)
		goto out;
	if ((c->pcert = gnutls_calloc(n, sizeof(*c->pcert))) == NULL) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	r = gnutls_pcert_list_import_x509_raw(c->pcert, &n, &pem, GNUTLS_X509_FMT_PEM, 0);
	if (r < 0) {
		rc = est_fail(e, EST_ECONFIG, "%s: %s", cert_path, gnutls_strerror(r));
		goto out;
	}
	c->npcert = n;
	if ((rc = est_key_load(key_path, &c->key, e)) < 0)
		goto out;
out:
	gnutls_free(pem.data);
	if (rc < 0)
		creds_free(c);
	else
		*out = c;
	return rc;
}

/* The key must be the certificate's, or every handshake would fail later. */
static int
creds_check(const struct creds *c, const char *cert_path, struct est_error *e)
{
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t a = { NULL, 0 }, b = { NULL, 0 };
	int rc = 0;

	if (gnutls_pubkey_init(&pub) < 0 || gnutls_pubkey_import_privkey(pub, c->key, 0, 0) < 0 ||
	    gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &a) < 0 ||
	    gnutls_pubkey_export2(c->pcert[0].pubkey, GNUTLS_X509_FMT_DER, &b) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "%s: cannot compare the key with the certificate",
			      cert_path);
		goto out;
	}
	if (a.size != b.size || memcmp(a.data, b.data, a.size) != 0)
		rc = est_fail(e, EST_ECONFIG, "%s: the TLS key does not match the certificate",
			      cert_path);
out:
	gnutls_free(a.data);
	gnutls_free(b.data);
	gnutls_pubkey_deinit(pub);
	return rc;
}

/* The retrieve callback has no user pointer, so the one running front end is
 * reachable through this; est_httpd_start refuses a second one. */
static struct est_httpd *running;
static pthread_mutex_t running_lock = PTHREAD_MUTEX_INITIALIZER;

static int
retrieve_cert(gnutls_session_t session, const gnutls_datum_t *req_ca_rdn, int nreqs,
	      const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
	      gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *key)
{
	struct est_httpd *h = running;

	if (h == NULL)
		return -1;
	pthread_mutex_lock(&h->lock);
	*pcert = h->creds->pcert;
	*pcert_length = h->creds->npcert;
	*key = h->creds->key;
	pthread_mutex_unlock(&h->lock);
	return 0;
}

/* The client's numeric address into BUF ("" when MHD has none). */
static void
client_addr(struct MHD_Connection *c, char *buf, size_t n)
{
	const union MHD_ConnectionInfo *ci;

	buf[0] = '\0';
	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci != NULL && ci->client_addr != NULL)
		getnameinfo(ci->client_addr, ci->client_addr->sa_family == AF_INET6
			    ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
			    buf, (socklen_t)n, NULL, 0, NI_NUMERICHOST);
}

static void
log_line(struct est_httpd *h, const char *method, const char *url, int status, size_t bytes,
	 const struct req *r, const char *note)
{
	char ts[32];
	struct timespec now;
	struct tm tm;

	if (h->log == NULL)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	/* One fprintf per line: stdio locks the stream, so lines never interleave. */
	fprintf(h->log, "%s.%03ldZ %s \"%s %.200s\" %d %zu %.1fms%s%.300s\n", ts,
		now.tv_nsec / 1000000, r->addr[0] ? r->addr : "-", method, url, status, bytes,
		ms_since(&r->t0),
		note != NULL && *note ? " " : "", note != NULL ? note : "");
	fflush(h->log);
}

static enum MHD_Result
queue(struct est_httpd *h, struct MHD_Connection *c, int status, const char *type,
      const char *extra_name, const char *extra_value, const void *body, size_t len)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	if (type != NULL)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (extra_name != NULL && *extra_name)
		MHD_add_response_header(resp, extra_name, extra_value);
	/* While stopping, a keep-alive client is told to go after this answer,
	 * or it would keep a request in flight until the grace runs out. */
	if (__atomic_load_n(&h->closing, __ATOMIC_ACQUIRE))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	ret = MHD_queue_response(c, (unsigned)status, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* TLS facts of the connection: the client's chain and the channel binding
 * (tls-unique on TLS 1.2, tls-exporter, RFC 9266, on TLS 1.3). */
static void
tls_facts(struct MHD_Connection *c, struct est_srv_request *q, gnutls_datum_t *cb)
{
	const union MHD_ConnectionInfo *ci;
	gnutls_session_t s;
	gnutls_channel_binding_t type;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (ci == NULL || ci->tls_session == NULL)
		return;
	s = ci->tls_session;
	q->peer_chain = gnutls_certificate_get_peers(s, &q->peer_chain_len);
	if (q->peer_chain == NULL)
		q->peer_chain_len = 0;
	type = gnutls_protocol_get_version(s) == GNUTLS_TLS1_3 ? GNUTLS_CB_TLS_EXPORTER
		: GNUTLS_CB_TLS_UNIQUE;
	if (gnutls_session_channel_binding(s, type, cb) == 0) {
		q->channel_binding = cb->data;
		q->channel_binding_len = cb->size;
	}
}

/* The request as the core sees it, from what MHD holds for it (valid
 * until the request completes, suspended or not). */
static void
prepare(struct MHD_Connection *c, const char *url, const char *method, struct req *r)
{
	struct est_srv_request *q = &r->q;

	memset(q, 0, sizeof(*q));
	q->method = method;
	q->path = url;
	q->content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						      MHD_HTTP_HEADER_CONTENT_TYPE);
	q->authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						       MHD_HTTP_HEADER_AUTHORIZATION);
	q->body = r->body;
	q->body_len = r->len;
	q->remote = r->addr;
	tls_facts(c, q, &r->cb);
	r->conn = c;
}

/* Send the response a worker made, and log it. */
static enum MHD_Result
finish(struct est_httpd *h, struct MHD_Connection *c, const char *url, const char *method,
       struct req *r)
{
	struct est_srv_response *resp = &r->resp;
	enum MHD_Result ret;

	ret = queue(h, c, resp->status, resp->content_type, resp->extra_name, resp->extra_value,
		    resp->body.data, resp->body.size);
	log_line(h, method, url, resp->status, resp->body.size, r, resp->note);
	r->logged = 1;
	est_srv_response_free(resp);
	return ret;
}

static void *
worker_main(void *arg)
{
	struct est_httpd *h = arg;
	struct pool *p = &h->pool;
	struct req *r;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		while (p->head == NULL && !p->stopping)
			pthread_cond_wait(&p->work, &p->mu);
		if ((r = p->head) == NULL)
			break;  /* stopping, and nothing is left */
		if ((p->head = r->next) == NULL)
			p->tail = NULL;
		pthread_mutex_unlock(&p->mu);
		est_srv_handle(h->srv, &r->q, &r->resp);
		r->state = REQ_DONE;
		/* From here on R is MHD's again: it calls access_cb, then completed_cb. */
		MHD_resume_connection(r->conn);
		pthread_mutex_lock(&p->mu);
	}
	pthread_mutex_unlock(&p->mu);
	return NULL;
}

/* Queue R for a worker; -1 when the pool is stopping. */
static int
pool_submit(struct pool *p, struct req *r)
{
	pthread_mutex_lock(&p->mu);
	if (p->stopping) {
		pthread_mutex_unlock(&p->mu);
		return -1;
	}
	r->next = NULL;
	if (p->tail != NULL)
		p->tail->next = r;
	else
		p->head = r;
	p->tail = r;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->mu);
	return 0;
}

static int
pool_start(struct est_httpd *h, unsigned n, struct est_error *e)
{
	struct pool *p = &h->pool;

	if ((p->tids = calloc(n, sizeof(*p->tids))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	for (p->n = 0; p->n < n; p->n++)
		if (pthread_create(&p->tids[p->n], NULL, worker_main, h) != 0)
			return est_fail(e, EST_EINTERNAL, "cannot start a worker thread");
	return 0;
}

/* Let the workers finish what is queued (every suspended request is then
 * resumed), and join them. */
static void
pool_stop(struct pool *p)
{
	unsigned i;

	pthread_mutex_lock(&p->mu);
	p->stopping = 1;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->n; i++)
		pthread_join(p->tids[i], NULL);
	p->n = 0;
	free(p->tids);
	p->tids = NULL;
}

/* The body is complete: hand the request to a worker and suspend the
 * connection until its response is ready; the I/O thread goes on with the
 * other connections meanwhile. */
static enum MHD_Result
dispatch(struct est_httpd *h, struct MHD_Connection *c, const char *url, const char *method,
	 struct req *r)
{
	prepare(c, url, method, r);
	r->state = REQ_QUEUED;
	MHD_suspend_connection(c);
	if (pool_submit(&h->pool, r) == 0)
		return MHD_YES;
	/* Stopping: no worker will take it, so answer here. */
	MHD_resume_connection(c);
	est_srv_handle(h->srv, &r->q, &r->resp);
	r->state = REQ_DONE;
	return finish(h, c, url, method, r);
}

static enum MHD_Result
too_big(struct est_httpd *h, struct MHD_Connection *c, const char *url, const char *method,
	struct req *r)
{
	static const char msg[] = "request body too large\n";

	log_line(h, method, url, 413, sizeof(msg) - 1, r, "body over the limit");
	r->logged = 1;
	return queue(h, c, 413, "text/plain", NULL, NULL, msg, sizeof(msg) - 1);
}

static struct conn *
conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci;

	ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci != NULL ? ci->socket_context : NULL;
}

/* A request starts on C: it counts as in flight, unless its connection was
 * cut (by the reaper, or by the stop while it had nothing in flight), which
 * then serves nothing more: so once stopping, no request starts that the
 * stop could leave unanswered. */
static int
request_begins(struct est_httpd *h, struct MHD_Connection *c)
{
	struct conn *k = conn_of(c);
	int ok;

	pthread_mutex_lock(&h->lock);
	ok = k == NULL || !k->cut;
	if (ok) {
		h->inflight++;
		if (k != NULL)
			k->busy = 1;
	}
	pthread_mutex_unlock(&h->lock);
	return ok;
}

/* Once stopping, a new connection is closed at once (see est_httpd_stop). */
static enum MHD_Result
accept_cb(void *cls, const struct sockaddr *addr, socklen_t len)
{
	struct est_httpd *h = cls;

	(void)addr;
	(void)len;
	return __atomic_load_n(&h->closing, __ATOMIC_ACQUIRE) ? MHD_NO : MHD_YES;
}

static enum MHD_Result
access_cb(void *cls, struct MHD_Connection *c, const char *url, const char *method,
	  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct est_httpd *h = cls;
	struct req *r = *con_cls;
	const char *cl;
	unsigned long long declared;
	unsigned char *nb;

	if (r == NULL) {
		if ((r = calloc(1, sizeof(*r))) == NULL)
			return MHD_NO;
		if (!request_begins(h, c)) {
			free(r);
			return MHD_NO;
		}
		clock_gettime(CLOCK_MONOTONIC, &r->t0);
		client_addr(c, r->addr, sizeof(r->addr));
		*con_cls = r;
		cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
						 MHD_HTTP_HEADER_CONTENT_LENGTH);
		/* A declared oversized body is never stored. Up to DRAIN_MAX it is
		 * read and dropped, and the 413 sent after it: answering at once
		 * closes the connection with the body unread, and the reset that
		 * causes can reach the client before the answer does. */
		declared = cl != NULL ? strtoull(cl, NULL, 10) : 0;
		if (declared > h->max_body) {
			if (declared > DRAIN_MAX)
				return too_big(h, c, url, method, r);
			r->discard = 1;
		}
		return MHD_YES;
	}
	if (*upload_size > 0) {
		if (r->logged)
			return MHD_NO;
		if (r->discard) {
			/* Bounded here too: with Transfer-Encoding, MHD reads past
			 * the Content-Length this was decided on. */
			r->len += *upload_size;
			*upload_size = 0;
			if (r->len <= DRAIN_MAX)
				return MHD_YES;
			log_line(h, method, url, 413, 0, r, "body over the limit, cut");
			r->logged = 1;
			return MHD_NO;
		}
		if (*upload_size > h->max_body - r->len) {
			/* A chunked body grew past the limit: MHD cannot answer in the
			 * middle of an upload, so the connection is cut. */
			log_line(h, method, url, 413, 0, r, "chunked body over the limit, cut");
			r->logged = 1;
			return MHD_NO;
		}
		if (r->len + *upload_size > r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 4096;

			while (cap < r->len + *upload_size)
				cap *= 2;
			if ((nb = realloc(r->body, cap)) == NULL)
				return MHD_NO;
			r->body = nb;
			r->cap = cap;
		}
		memcpy(r->body + r->len, upload, *upload_size);
		r->len += *upload_size;
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->logged)
		return MHD_YES;
	if (r->discard)
		return too_big(h, c, url, method, r);
	switch (r->state) {
	case REQ_READING: return dispatch(h, c, url, method, r);
	case REQ_QUEUED: return MHD_YES;        /* not ours to answer yet */
	case REQ_DONE: break;
	}
	return finish(h, c, url, method, r);
}

static void
completed_cb(void *cls, struct MHD_Connection *c, void **con_cls,
	     enum MHD_RequestTerminationCode toe)
{
	struct est_httpd *h = cls;
	struct req *r = *con_cls;
	struct conn *k;

	pthread_mutex_lock(&h->lock);
	if (r != NULL && h->inflight > 0)
		h->inflight--;
	if ((k = conn_of(c)) != NULL) {
		clock_gettime(CLOCK_MONOTONIC, &k->since);
		k->busy = 0;
		if (h->closing)
			k->cut = 1;     /* its answer said Connection: close */
	}
	if (h->inflight == 0)
		pthread_cond_broadcast(&h->idle);
	pthread_mutex_unlock(&h->lock);
	if (r != NULL) {
		if (r->state == REQ_DONE && !r->logged)
			est_srv_response_free(&r->resp);
		gnutls_free(r->cb.data);
		free(r->body);
		free(r);
	}
	*con_cls = NULL;
}

/* MHD reports a connection closed before it closes the socket, so a socket
 * in our list is always still the connection we think it is. */
static void
connection_cb(void *cls, struct MHD_Connection *c, void **socket_context,
	      enum MHD_ConnectionNotificationCode code)
{
	struct est_httpd *h = cls;
	const union MHD_ConnectionInfo *ci;
	struct conn *k;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		if ((k = calloc(1, sizeof(*k))) == NULL)
			return;
		ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		k->fd = ci != NULL ? ci->connect_fd : -1;
		clock_gettime(CLOCK_MONOTONIC, &k->since);
		pthread_mutex_lock(&h->lock);
		k->next = h->conns;
		if (h->conns != NULL)
			h->conns->prev = k;
		h->conns = k;
		pthread_mutex_unlock(&h->lock);
		*socket_context = k;
		return;
	}
	if ((k = *socket_context) == NULL)
		return;
	pthread_mutex_lock(&h->lock);
	if (k->prev != NULL)
		k->prev->next = k->next;
	else
		h->conns = k->next;
	if (k->next != NULL)
		k->next->prev = k->prev;
	pthread_mutex_unlock(&h->lock);
	free(k);
	*socket_context = NULL;
}

static void *
reaper_main(void *arg)
{
	struct est_httpd *h = arg;
	struct timespec wake, now;
	struct conn *k;

	pthread_mutex_lock(&h->lock);
	while (!h->stopping) {
		clock_gettime(CLOCK_REALTIME, &wake);
		wake.tv_sec += 1;
		pthread_cond_timedwait(&h->cond, &h->lock, &wake);
		clock_gettime(CLOCK_MONOTONIC, &now);
		for (k = h->conns; k != NULL; k = k->next)
			if (!k->cut && k->fd >= 0 &&
			    now.tv_sec - k->since.tv_sec > (time_t)h->request_timeout) {
				shutdown(k->fd, SHUT_RDWR);
				k->cut = 1;
			}
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

static void
mhd_log(void *cls, const char *fmt, va_list ap)
{
	/* libmicrohttpd's own complaints (TLS handshake failures and the like)
	 * are about clients, not the server: keep them out of the request log
	 * unless asked for. */
	struct est_httpd *h = cls;

	if (h->log != NULL && getenv("ESTCTL_HTTPD_DEBUG") != NULL) {
		fputs("httpd: ", h->log);
		vfprintf(h->log, fmt, ap);
	}
}

/* TLS 1.2 and 1.3 only, whatever the configured string says. */
static int
priorities_make(const char *conf, char *out, size_t outlen, struct est_error *e)
{
	gnutls_priority_t p;
	const char *pos = NULL;
	int r;

	if ((size_t)snprintf(out, outlen, "%s:-VERS-SSL3.0:-VERS-TLS1.0:-VERS-TLS1.1:-VERS-DTLS-ALL",
			     conf) >= outlen)
		return est_fail(e, EST_ECONFIG, "tls.priorities: too long");
	if ((r = gnutls_priority_init(&p, out, &pos)) < 0)
		return est_fail(e, EST_ECONFIG, "tls.priorities: %s at '%.20s'", gnutls_strerror(r),
				pos != NULL ? pos : "");
	gnutls_priority_deinit(p);
	return 0;
}

static int
parse_listen(const char *listen, struct sockaddr_storage *ss, int *v6, struct est_error *e)
{
	struct addrinfo hints, *ai = NULL;
	char host[256];
	const char *colon = strrchr(listen, ':'), *h = listen;
	size_t hl;
	int r;

	if (colon == NULL || colon[1] == '\0')
		return est_fail(e, EST_EUSAGE, "%s: expected ADDR:PORT", listen);
	hl = (size_t)(colon - listen);
	if (hl >= 2 && listen[0] == '[' && listen[hl - 1] == ']') {
		h++;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return est_fail(e, EST_EUSAGE, "%s: expected ADDR:PORT", listen);
	memcpy(host, h, hl);
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((r = getaddrinfo(host, colon + 1, &hints, &ai)) != 0)
		return est_fail(e, EST_EUSAGE, "%s: %s", listen, gai_strerror(r));
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*v6 = ai->ai_family == AF_INET6;
	freeaddrinfo(ai);
	return 0;
}

static unsigned
cpus(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : (unsigned)n;
}

static int
daemon_start(struct est_httpd *h, const struct est_srv_transport *t,
	     const struct est_httpd_opts *o, struct est_error *e)
{
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *di;
	unsigned flags = MHD_USE_TLS | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
			 MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	int v6 = 0, rc;

	if ((rc = parse_listen(o->listen != NULL ? o->listen : t->listen, &ss, &v6, e)) < 0)
		return rc;
	if (v6)
		flags |= MHD_USE_IPv6;
	h->daemon = MHD_start_daemon(flags, 0, accept_cb, h, access_cb, h,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_HTTPS_CERT_CALLBACK, retrieve_cert,
		MHD_OPTION_HTTPS_MEM_TRUST, h->trust,
		MHD_OPTION_HTTPS_PRIORITIES, h->priorities,
		MHD_OPTION_THREAD_POOL_SIZE, cpus(),
		MHD_OPTION_CONNECTION_TIMEOUT, t->timeout,
		MHD_OPTION_CONNECTION_LIMIT, t->max_connections,
		MHD_OPTION_NOTIFY_COMPLETED, completed_cb, h,
		MHD_OPTION_NOTIFY_CONNECTION, connection_cb, h,
		MHD_OPTION_END);
	if (h->daemon == NULL)
		return est_fail(e, EST_EUNAVAIL, "cannot listen on %s (address in use, "
				"not local, or a bad TLS priority string)",
				o->listen != NULL ? o->listen : t->listen);
	di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di != NULL ? di->port : 0;
	return 0;
}

int
est_httpd_start(struct est_srv *srv, const struct est_httpd_opts *o, struct est_httpd **out,
		struct est_error *e)
{
	struct est_srv_transport t;
	gnutls_datum_t trust = { NULL, 0 };
	struct est_httpd *h;
	int rc;

	*out = NULL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	pthread_cond_init(&h->idle, NULL);
	pthread_mutex_init(&h->pool.mu, NULL);
	pthread_cond_init(&h->pool.work, NULL);
	h->srv = srv;
	h->log = o->log;
	est_srv_transport(srv, &t);
	h->max_body = t.max_body;
	h->request_timeout = t.request_timeout;
	if ((rc = priorities_make(t.priorities, h->priorities, sizeof(h->priorities), e)) < 0 ||
	    (rc = creds_load(t.tls_cert, t.tls_key, &h->creds, e)) < 0 ||
	    (rc = creds_check(h->creds, t.tls_cert, e)) < 0 ||
	    (rc = est_srv_client_cas(srv, &trust, e)) < 0)
		goto out;
	h->trust = (char *)trust.data;
	pthread_mutex_lock(&running_lock);
	if (running != NULL) {
		pthread_mutex_unlock(&running_lock);
		rc = est_fail(e, EST_EINTERNAL, "a front end is already running");
		goto out;
	}
	running = h;
	pthread_mutex_unlock(&running_lock);
	/* Workers wait for the group commit: more of them than cores is what
	 * lets the commits of concurrent requests share a batch. */
	if ((rc = pool_start(h, o->threads ? o->threads : 8 * cpus(), e)) < 0)
		goto out;
	if ((rc = daemon_start(h, &t, o, e)) < 0) {
		running = NULL;
		goto out;
	}
	if (pthread_create(&h->reaper, NULL, reaper_main, h) != 0) {
		rc = est_fail(e, EST_EINTERNAL, "cannot start the reaper thread");
		goto out;
	}
	h->reaper_started = 1;
	*out = h;
out:
	if (rc < 0 && h != NULL)
		est_httpd_stop(h, 0);
	return rc;
}

unsigned
est_httpd_port(const struct est_httpd *h)
{
	return h->port;
}

int
est_httpd_reload(struct est_httpd *h, struct est_error *e)
{
	struct est_srv_transport t;
	struct creds *c = NULL;
	int rc;

	if ((rc = est_srv_reload(h->srv, e)) < 0)
		return rc;
	est_srv_transport(h->srv, &t);
	if ((rc = creds_load(t.tls_cert, t.tls_key, &c, e)) < 0 ||
	    (rc = creds_check(c, t.tls_cert, e)) < 0) {
		creds_free(c);
		return rc;
	}
	pthread_mutex_lock(&h->lock);
	h->creds->next = h->retired;
	h->retired = h->creds;
	h->creds = c;
	pthread_mutex_unlock(&h->lock);
	return 0;
}

static void
drain(struct est_httpd *h, unsigned grace)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += grace;
	pthread_mutex_lock(&h->lock);
	while (h->inflight > 0)
		if (pthread_cond_timedwait(&h->idle, &h->lock, &until) == ETIMEDOUT)
			break;
	pthread_mutex_unlock(&h->lock);
}

void
est_httpd_stop(struct est_httpd *h, unsigned grace)
{
	struct creds *c;
	struct conn *k;

	if (h == NULL)
		return;
	if (h->daemon != NULL) {
		/* From now on only the requests in flight are served (each answer
		 * closing its connection), so none can start that MHD_stop_daemon
		 * would cut off after its certificate was issued. New connections
		 * are turned away by accept_cb, not MHD_quiesce_daemon: with epoll
		 * and a thread pool, libmicrohttpd 0.9.75's quiesce races its I/O
		 * threads to take the listening socket out of their epoll sets,
		 * and the loser aborts the process. */
		pthread_mutex_lock(&h->lock);
		__atomic_store_n(&h->closing, 1, __ATOMIC_RELEASE);
		for (k = h->conns; k != NULL; k = k->next)
			if (!k->busy)
				k->cut = 1;
		pthread_mutex_unlock(&h->lock);
		drain(h, grace);
		/* Past the grace, the workers finish what is queued and resume
		 * those connections; MHD must still send those answers (and
		 * no connection may be suspended when it stops). */
		pool_stop(&h->pool);
		drain(h, 2);
		MHD_stop_daemon(h->daemon);
	}
	pthread_mutex_lock(&h->lock);
	h->stopping = 1;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
	if (h->reaper_started)
		pthread_join(h->reaper, NULL);
	pthread_mutex_lock(&running_lock);
	if (running == h)
		running = NULL;
	pthread_mutex_unlock(&running_lock);
	creds_free(h->creds);
	while ((c = h->retired) != NULL) {
		h->retired = c->next;
		creds_free(c);
	}
	pool_stop(&h->pool);    /* a start that failed before the daemon ran */
	gnutls_free(h->trust);
	pthread_cond_destroy(&h->pool.work);
	pthread_mutex_destroy(&h->pool.mu);
	pthread_cond_destroy(&h->idle);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
	free(h);
}
