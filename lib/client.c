/* The EST client's transport: libcurl easy handles on one multi handle, with
 * a share handle so every request to the server reuses connections and TLS
 * sessions. Replies are read in client_reply.c. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <gnutls/crypto.h>

#include "b64.h"
#include "client.h"
#include "file.h"

/* A 202 without Retry-After is the server's fault; wait this long anyway. */
#define RETRY_AFTER_DEFAULT 10

struct xfer {
	struct xfer *next;
	CURL *h;
	enum est_op op;
	void *user;
	struct curl_slist *hdrs;
	gnutls_datum_t b64;
	unsigned char *buf;
	size_t len;
	int too_big;
	int retry_after_seen;
	int resent;             /* once, after a reused connection broke: resend() */
	char url[1024];
	char errbuf[CURL_ERROR_SIZE];
};

struct est_client {
	char *base;
	char *cacert;           /* trust anchor file: the user's, or our pinned CA */
	char *pin_file;         /* our temporary file holding the pinned CA */
	unsigned char pin[32];
	int pinned;
	int trusted;            /* a trust anchor, the system store, or a checked pin */
	char *user;
	struct est_secret password;
	char *cert, *key;
	long connect_timeout, timeout;
	CURLM *multi;
	CURLSH *share;
	struct xfer *xfers;
	size_t pending;
	struct est_certs ca;
};

static int
check_file(const char *path, const char *what, struct est_error *e)
{
	if (access(path, R_OK) != 0)
		return est_fail(e, EST_ECONFIG, "%s %s: %s", what, path, strerror(errno));
	return 0;
}

static int
dup_opt(const char *s, char **out, struct est_error *e)
{
	*out = NULL;
	if (s != NULL && (*out = strdup(s)) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	return 0;
}

static int
client_opts(struct est_client *c, const struct est_client_opts *o, struct est_error *e)
{
	int rc;

	if ((rc = est_client_base_url(o->url, o->label, &c->base, e)) < 0)
		return rc;
	if (o->pin != NULL && (rc = est_client_pin_parse(o->pin, c->pin, e)) < 0)
		return est_fail(e, EST_ECONFIG, "%s", e->msg);
	c->pinned = o->pin != NULL;
	if (o->cacert == NULL && !c->pinned && !o->system_store)
		return est_fail(e, EST_ECONFIG, "no trust in the server: give a CA certificate, "
				"a pin of the CA certificate, or use the system's trust store");
	if (o->cacert != NULL && (rc = check_file(o->cacert, "CA certificate", e)) < 0)
		return rc;
	if ((o->cert == NULL) != (o->key == NULL))
		return est_fail(e, EST_ECONFIG, "a client certificate needs its key and the other way round");
	if (o->cert != NULL && ((rc = check_file(o->cert, "client certificate", e)) < 0 ||
				(strncmp(o->key, "pkcs11:", 7) != 0 &&
				 (rc = check_file(o->key, "client key", e)) < 0)))
		return rc;
	if (o->user != NULL && (o->password == NULL || strchr(o->user, ':') != NULL))
		return est_fail(e, EST_ECONFIG, "user %s: needs a password and no ':'", o->user);
	if ((rc = dup_opt(o->cacert, &c->cacert, e)) < 0 || (rc = dup_opt(o->user, &c->user, e)) < 0 ||
	    (rc = dup_opt(o->cert, &c->cert, e)) < 0 || (rc = dup_opt(o->key, &c->key, e)) < 0)
		return rc;
	if (o->password != NULL) {
		if (est_secret_alloc(&c->password, o->password->len) < 0)
			return est_fail(e, EST_EINTERNAL, "out of memory");
		memcpy(c->password.data, o->password->data, o->password->len);
	}
	c->trusted = o->cacert != NULL || !c->pinned;
	c->connect_timeout = o->connect_timeout > 0 ? o->connect_timeout : 15;
	c->timeout = o->timeout > 0 ? o->timeout : 120;
	return 0;
}

int
est_client_new(const struct est_client_opts *o, struct est_client **out, struct est_error *e)
{
	struct est_client *c;
	int rc;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		free(c);
		return est_fail(e, EST_EINTERNAL, "libcurl cannot start: %s",
				est_curl_load_error() ? est_curl_load_error() : "curl_global_init failed");
	}
	if ((rc = client_opts(c, o, e)) < 0)
		goto out;
	c->multi = curl_multi_init();
	c->share = curl_share_init();
	if (c->multi == NULL || c->share == NULL ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT) != CURLSHE_OK ||
	    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS) != CURLSHE_OK) {
		rc = est_fail(e, EST_EINTERNAL, "libcurl: cannot set up the transfer handles");
		goto out;
	}
	*out = c;
out:
	if (rc < 0)
		est_client_free(c);
	return rc;
}

static void
xfer_free(struct xfer *x)
{
	if (x == NULL)
		return;
	if (x->h != NULL)
		curl_easy_cleanup(x->h);
	curl_slist_free_all(x->hdrs);
	/* A request body can be a plain CSR: not secret, but not kept either. */
	if (x->b64.data != NULL)
		gnutls_memset(x->b64.data, 0, x->b64.size);
	gnutls_free(x->b64.data);
	free(x->buf);
	free(x);
}

void
est_client_free(struct est_client *c)
{
	struct xfer *x, *next;

	if (c == NULL)
		return;
	for (x = c->xfers; x != NULL; x = next) {
		next = x->next;
		curl_multi_remove_handle(c->multi, x->h);
		xfer_free(x);
	}
	if (c->multi != NULL)
		curl_multi_cleanup(c->multi);
	if (c->share != NULL)
		curl_share_cleanup(c->share);
	if (c->pin_file != NULL) {
		unlink(c->pin_file);
		free(c->pin_file);
	}
	est_certs_free(&c->ca);
	est_secret_free(&c->password);
	free(c->base);
	free(c->cacert);
	free(c->user);
	free(c->cert);
	free(c->key);
	free(c);
	curl_global_cleanup();
}

const struct est_certs *
est_client_ca(const struct est_client *c)
{
	return c->ca.n > 0 ? &c->ca : NULL;
}

size_t
est_client_pending(const struct est_client *c)
{
	return c->pending;
}

static size_t
on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;
	unsigned char *p;

	if (x->len + n > EST_CLIENT_BODY_MAX) {
		x->too_big = 1;
		return 0;       /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	if ((p = realloc(x->buf, x->len + n + 1)) == NULL)
		return 0;
	memcpy(p + x->len, data, n);
	x->buf = p;
	x->len += n;
	x->buf[x->len] = '\0';
	return n;
}

/* libcurl reads Retry-After itself (CURLINFO_RETRY_AFTER, delta-seconds or an
 * HTTP-date); here we only learn whether the server sent one at all. */
static size_t
on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct xfer *x = arg;
	size_t n = size * nmemb;

	if (n > 12 && strncasecmp(data, "retry-after:", 12) == 0)
		x->retry_after_seen = 1;
	return n;
}

static int
set_tls(struct est_client *c, struct xfer *x, const struct est_request *r, int bootstrap)
{
	CURL *h = x->h;
	const char *cert = r->cert != NULL ? r->cert : c->cert;
	const char *key = r->cert != NULL ? r->key : c->key;
	int bad = 0;

	bad |= curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) != CURLE_OK;
	if (bootstrap) {
		/* RFC 7030 4.1.1: the only unverified request, for the pin to be
		 * checked on; nothing from it is kept or reused. */
		bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L) != CURLE_OK;
		bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L) != CURLE_OK;
		bad |= curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L) != CURLE_OK;
		bad |= curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK;
		bad |= curl_easy_setopt(h, CURLOPT_SSL_SESSIONID_CACHE, 0L) != CURLE_OK;
		return bad;
	}
	bad |= curl_easy_setopt(h, CURLOPT_SHARE, c->share) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
	if (c->cacert != NULL) {
		bad |= curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert) != CURLE_OK;
		/* Only those anchors: libcurl's built-in CA path (Debian's:
		 * /etc/ssl/certs) would otherwise be trusted beside them, and
		 * parsed again for every connection. */
		bad |= curl_easy_setopt(h, CURLOPT_CAPATH, NULL) != CURLE_OK;
	}
	if (cert != NULL && r->op != EST_OP_CACERTS && r->op != EST_OP_CSRATTRS) {
		bad |= curl_easy_setopt(h, CURLOPT_SSLCERT, cert) != CURLE_OK;
		bad |= curl_easy_setopt(h, CURLOPT_SSLKEY, key) != CURLE_OK;
	}
	return bad;
}

static int
set_body(struct est_client *c, struct xfer *x, const struct est_request *r, struct est_error *e)
{
	CURL *h = x->h;
	int bad = 0, rc;

	if (r->op == EST_OP_CACERTS || r->op == EST_OP_CSRATTRS)
		return curl_easy_setopt(h, CURLOPT_HTTPGET, 1L) != CURLE_OK;
	if ((rc = est_b64_encode(r->body, r->len, 1, &x->b64, e)) < 0)
		return rc;
	x->hdrs = curl_slist_append(NULL, r->sealed
		? "Content-Type: application/pkcs7-mime; smime-type=authEnveloped-data"
		: "Content-Type: application/pkcs10");
	/* No "Expect: 100-continue": a small body, sent at once. */
	if (x->hdrs != NULL)
		x->hdrs = curl_slist_append(x->hdrs, "Expect:");
	bad |= x->hdrs == NULL;
	bad |= curl_easy_setopt(h, CURLOPT_HTTPHEADER, x->hdrs) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)x->b64.size) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->b64.data) != CURLE_OK;
	if (c->user != NULL) {
		bad |= curl_easy_setopt(h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) != CURLE_OK;
		bad |= curl_easy_setopt(h, CURLOPT_USERNAME, c->user) != CURLE_OK;
		bad |= curl_easy_setopt(h, CURLOPT_PASSWORD, (char *)c->password.data) != CURLE_OK;
	}
	return bad;
}

static int
set_common(struct est_client *c, struct xfer *x)
{
	CURL *h = x->h;
	int bad = 0;

	bad |= curl_easy_setopt(h, CURLOPT_URL, x->url) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_USERAGENT, "estctl") != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, x->errbuf) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_WRITEDATA, x) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_HEADERDATA, x) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->connect_timeout) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout) != CURLE_OK;
	bad |= curl_easy_setopt(h, CURLOPT_PRIVATE, x) != CURLE_OK;
	return bad;
}

static int
submit(struct est_client *c, const struct est_request *r, int bootstrap, struct est_error *e)
{
	struct xfer *x;
	int rc;

	if ((int)r->op < 0 || r->op >= EST_OP__MAX)
		return est_fail(e, EST_EINTERNAL, "unknown EST operation");
	if (!c->trusted && !bootstrap)
		return est_fail(e, EST_EINTERNAL, "%s: the pin has not been checked yet (cacerts first)",
				est_op_names[r->op]);
	if ((x = calloc(1, sizeof(*x))) == NULL || (x->h = curl_easy_init()) == NULL) {
		free(x);
		return est_fail(e, EST_EINTERNAL, "out of memory");
	}
	x->op = r->op;
	x->user = r->user;
	snprintf(x->url, sizeof(x->url), "%s%s", c->base, est_op_names[r->op]);
	if ((rc = set_body(c, x, r, e)) < 0)
		goto out;
	if (rc > 0 || set_common(c, x) || set_tls(c, x, r, bootstrap) ||
	    curl_multi_add_handle(c->multi, x->h) != CURLM_OK) {
		rc = est_fail(e, EST_EINTERNAL, "%s: libcurl refused the request's options",
			      est_op_names[r->op]);
		goto out;
	}
	x->next = c->xfers;
	c->xfers = x;
	c->pending++;
	return 0;
out:
	xfer_free(x);
	return rc;
}

int
est_client_submit(struct est_client *c, const struct est_request *r, struct est_error *e)
{
	return submit(c, r, 0, e);
}

/* A transfer that got no HTTP answer: why, and which exit status fits. */
static int
curl_failed(struct xfer *x, CURLcode cc, struct est_error *e)
{
	const char *op = est_op_names[x->op];
	const char *why = x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(cc);

	switch (cc) {
	case CURLE_PEER_FAILED_VERIFICATION:
		return est_fail(e, EST_EPROTO, "%s: the server's certificate is not trusted: %s", op,
				why);
	case CURLE_SSL_CACERT_BADFILE:
		return est_fail(e, EST_ECONFIG, "%s: the CA certificate file cannot be used: %s", op,
				why);
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
		return est_fail(e, EST_ECONFIG, "%s: the client certificate or key cannot be used: %s",
				op, why);
	case CURLE_WRITE_ERROR:
		if (x->too_big)
			return est_fail(e, EST_EPROTO, "%s: the reply is larger than %u bytes", op,
					EST_CLIENT_BODY_MAX);
		return est_fail(e, EST_EINTERNAL, "%s: out of memory", op);
	case CURLE_OUT_OF_MEMORY:
		return est_fail(e, EST_EINTERNAL, "%s: out of memory", op);
	default:
		return est_fail(e, EST_EUNAVAIL, "%s: cannot reach %s: %s", op, x->url, why);
	}
}

static int
content_type_is(CURL *h, const char *want)
{
	char *ct = NULL;
	size_t n = strlen(want);

	curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
	return ct != NULL && strncasecmp(ct, want, n) == 0 &&
	       (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* A 200 answer: its body as the operation expects it. */
static int
parse_ok(struct xfer *x, struct est_result *res, struct est_error *e)
{
	const char *op = est_op_names[x->op];
	gnutls_datum_t der;

	if (x->op == EST_OP_CSRATTRS) {
		if (!content_type_is(x->h, "application/csrattrs"))
			return est_fail(e, EST_EPROTO, "%s: the reply is not application/csrattrs", op);
		if (x->len == 0)
			return 0;
		if (!est_b64_looks_like(x->buf, x->len) || est_b64_decode(x->buf, x->len, &der, e) < 0)
			return est_fail(e, EST_EPROTO, "%s: the reply is not base64", op);
		res->der = der;
		return 0;
	}
	if (!content_type_is(x->h, "application/pkcs7-mime"))
		return est_fail(e, EST_EPROTO, "%s: the reply is not application/pkcs7-mime", op);
	return est_client_certs_parse(x->buf, x->len, op, &res->certs, e);
}

static int
http_status(struct xfer *x, long status, struct est_result *res, struct est_error *e)
{
	const char *op = est_op_names[x->op];
	char reason[EST_CLIENT_REASON_MAX + 1] = "";
	curl_off_t wait = 0;

	if (content_type_is(x->h, "text/plain") && x->len > 0)
		est_client_reason(x->buf, x->len, reason, sizeof(reason));
	if (status == 200)
		return parse_ok(x, res, e);
	if ((status == 204 || status == 404) && x->op == EST_OP_CSRATTRS)
		return 0;       /* RFC 7030 4.5.2: no attributes to ask for */
	if (status == 202 && (x->op == EST_OP_SIMPLEENROLL || x->op == EST_OP_SIMPLEREENROLL)) {
		curl_easy_getinfo(x->h, CURLINFO_RETRY_AFTER, &wait);
		res->retry_after = !x->retry_after_seen ? RETRY_AFTER_DEFAULT : wait < 1 ? 1 : (long)wait;
		if (reason[0] == '\0')
			return est_fail(e, EST_ETEMPFAIL, "%s: the server asks to come back in %ld s",
					op, res->retry_after);
		/* The reason says what is awaited (an operator's approval). */
		return est_fail(e, EST_ETEMPFAIL, "%s: the server asks to come back in %ld s (%s)",
				op, res->retry_after, reason);
	}
	if (reason[0] == '\0')
		snprintf(reason, sizeof(reason), "no reason given");
	if (status == 401 || status == 403)
		return est_fail(e, EST_EREFUSED, "%s: refused by the server (%ld): %s", op, status,
				reason);
	if (status >= 500)
		return est_fail(e, EST_EUNAVAIL, "%s: server error (%ld): %s", op, status, reason);
	return est_fail(e, EST_EPROTO, "%s: unexpected HTTP status %ld: %s", op, status, reason);
}

/* A request that could not be sent on a kept-alive connection (the server
 * closed it while idle, at the moment it was reused) never reached the
 * server: send it once more on a new connection. libcurl retries such
 * connections itself only when the failure comes before the body is sent.
 * 1 when the transfer runs again. */
static int
resend(struct est_client *c, struct xfer *x, CURLcode cc)
{
	long fresh = -1;

	if (cc != CURLE_SEND_ERROR || x->resent ||
	    curl_easy_getinfo(x->h, CURLINFO_NUM_CONNECTS, &fresh) != CURLE_OK || fresh != 0)
		return 0;
	x->resent = 1;
	x->len = 0;
	x->too_big = 0;
	x->retry_after_seen = 0;
	x->errbuf[0] = '\0';
	curl_multi_remove_handle(c->multi, x->h);
	return curl_easy_setopt(x->h, CURLOPT_FRESH_CONNECT, 1L) == CURLE_OK &&
	       curl_multi_add_handle(c->multi, x->h) == CURLM_OK;
}

static void
finish(struct est_client *c, struct xfer *x, CURLcode cc, struct est_result *res)
{
	struct xfer **p;

	memset(res, 0, sizeof(*res));
	res->op = x->op;
	res->user = x->user;
	if (cc != CURLE_OK) {
		res->rc = curl_failed(x, cc, &res->err);
	} else {
		curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &res->status);
		res->rc = http_status(x, res->status, res, &res->err);
	}
	curl_multi_remove_handle(c->multi, x->h);
	for (p = &c->xfers; *p != x; p = &(*p)->next)
		;
	*p = x->next;
	c->pending--;
	xfer_free(x);
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
est_client_wait(struct est_client *c, int timeout_ms, struct est_result *res,
		struct est_error *e)
{
	long long end = now_ms() + timeout_ms, left;
	struct xfer *x;
	CURLMsg *m;
	int running, msgs;

	for (;;) {
		if (curl_multi_perform(c->multi, &running) != CURLM_OK)
			return est_fail(e, EST_EINTERNAL, "libcurl: the transfers failed");
		while ((m = curl_multi_info_read(c->multi, &msgs)) != NULL) {
			if (m->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			if (resend(c, x, m->data.result))
				continue;
			finish(c, x, m->data.result, res);
			return 1;
		}
		left = timeout_ms < 0 ? 1000 : end - now_ms();
		if (c->pending == 0) {
			/* A caller waiting out a Retry-After with nothing in flight
			 * must not spin. */
			if (timeout_ms > 0 && left > 0)
				poll(NULL, 0, (int)left);
			return 0;
		}
		if (left <= 0)
			return 0;
		if (curl_multi_poll(c->multi, NULL, 0, (int)left, NULL) != CURLM_OK)
			return est_fail(e, EST_EINTERNAL, "libcurl: waiting for the transfers failed");
	}
}

static int
run(struct est_client *c, const struct est_request *r, int bootstrap, struct est_result *res,
    struct est_error *e)
{
	int rc;

	memset(res, 0, sizeof(*res));
	if (c->pending > 0)
		return est_fail(e, EST_EINTERNAL, "%s: other requests are in flight",
				est_op_names[r->op]);
	if ((rc = submit(c, r, bootstrap, e)) < 0)
		return rc;
	while ((rc = est_client_wait(c, -1, res, e)) == 0)
		;
	if (rc < 0)
		return rc;
	if (res->rc < 0 && e != NULL)
		*e = res->err;
	return res->rc;
}

int
est_client_do(struct est_client *c, const struct est_request *r, struct est_result *res,
	      struct est_error *e)
{
	return run(c, r, 0, res, e);
}

static int
crt_sha256(gnutls_x509_crt_t crt, unsigned char sha[32])
{
	gnutls_datum_t der = { NULL, 0 };
	int rc;

	if ((rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der)) >= 0)
		rc = gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, sha);
	gnutls_free(der.data);
	return rc;
}

/* The index of the certificate in CERTS matching the pin, or -1. */
static int
pin_match(const struct est_client *c, const struct est_certs *certs)
{
	unsigned char sha[32];
	unsigned i;

	for (i = 0; i < certs->n; i++)
		if (crt_sha256(certs->crt[i], sha) >= 0 && memcmp(sha, c->pin, 32) == 0)
			return (int)i;
	return -1;
}

static int
pin_mismatch(const struct est_certs *certs, struct est_error *e)
{
	unsigned char sha[32];
	char hex[65];
	unsigned i;

	if (certs->n == 0 || crt_sha256(certs->crt[0], sha) < 0)
		return est_fail(e, EST_EPROTO, "cacerts: no CA certificate matches the pin");
	for (i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", sha[i]);
	return est_fail(e, EST_EPROTO, "cacerts: no CA certificate matches the pin "
			"(the server's first one is SHA256:%s)", hex);
}

/* Keep the pinned CA in a file of its own: libcurl's GnuTLS backend takes
 * trust anchors only from files. */
static int
pin_trust(struct est_client *c, gnutls_x509_crt_t ca, struct est_error *e)
{
	gnutls_datum_t pem = { NULL, 0 };
	const char *dir = getenv("TMPDIR");
	char path[4096];
	int fd = -1, rc = 0;

	snprintf(path, sizeof(path), "%s/estctl-pin-XXXXXX", dir != NULL && *dir ? dir : "/tmp");
	if (gnutls_x509_crt_export2(ca, GNUTLS_X509_FMT_PEM, &pem) < 0)
		return est_fail(e, EST_EINTERNAL, "cannot export the pinned CA certificate");
	if ((fd = mkstemp(path)) < 0 || est_write_all(fd, pem.data, pem.size) < 0 ||
	    close(fd) != 0) {
		rc = est_fail(e, EST_EIO, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			unlink(path);
		goto out;
	}
	free(c->cacert);
	if ((c->pin_file = strdup(path)) == NULL || (c->cacert = strdup(path)) == NULL) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	c->trusted = 1;
out:
	gnutls_free(pem.data);
	return rc;
}

static int
bootstrap(struct est_client *c, struct est_error *e)
{
	struct est_request r = { .op = EST_OP_CACERTS };
	struct est_result res;
	int rc, i;

	if ((rc = run(c, &r, 1, &res, e)) < 0)
		goto out;
	if ((i = pin_match(c, &res.certs)) < 0)
		rc = pin_mismatch(&res.certs, e);
	else
		rc = pin_trust(c, res.certs.crt[i], e);
out:
	est_result_free(&res);
	return rc;
}

static int
certs_copy(const struct est_certs *from, struct est_certs *to, struct est_error *e)
{
	gnutls_datum_t der;
	unsigned i;
	int rc = 0;

	to->n = 0;
	if ((to->crt = calloc(from->n, sizeof(*to->crt))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	for (i = 0; i < from->n && rc >= 0; i++) {
		if ((rc = gnutls_x509_crt_export2(from->crt[i], GNUTLS_X509_FMT_DER, &der)) < 0)
			break;
		if ((rc = gnutls_x509_crt_init(&to->crt[i])) >= 0) {
			to->n++;
			rc = gnutls_x509_crt_import(to->crt[i], &der, GNUTLS_X509_FMT_DER);
		}
		gnutls_free(der.data);
	}
	if (rc < 0) {
		est_certs_free(to);
		return est_fail(e, EST_EINTERNAL, "copying certificates: %s", gnutls_strerror(rc));
	}
	return 0;
}

int
est_client_cacerts(struct est_client *c, struct est_certs *out, struct est_error *e)
{
	struct est_request r = { .op = EST_OP_CACERTS };
	struct est_result res;
	int rc;

	if (out != NULL) {
		out->crt = NULL;
		out->n = 0;
	}
	if (!c->trusted && (rc = bootstrap(c, e)) < 0)
		return rc;
	if ((rc = run(c, &r, 0, &res, e)) < 0)
		goto out;
	/* Over the verified channel the pinned CA must still be there. */
	if (c->pinned && pin_match(c, &res.certs) < 0) {
		rc = pin_mismatch(&res.certs, e);
		goto out;
	}
	est_certs_free(&c->ca);
	c->ca = res.certs;
	res.certs.crt = NULL;
	res.certs.n = 0;
	if (out != NULL)
		rc = certs_copy(&c->ca, out, e);
out:
	est_result_free(&res);
	return rc;
}
