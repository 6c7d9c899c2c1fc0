/* The EST server core. One configuration snapshot (struct state: config,
 * signer, key store, credentials, policies, trust anchors, the prebuilt
 * cacerts reply) is shared by the requests that started under it and
 * replaced as a whole by est_srv_reload; the registry, the audit log and the
 * group committer live as long as the server.
 *
 * Error model: every failure becomes one status and one client-safe,
 * one-line reason chosen HERE from fixed text or from messages whose
 * contracts say they are client-safe (policy refusals, registry refusals).
 * Library error text (which may name files or internals) only ever goes to
 * resp->note, which the front end logs and never sends. */
#include "config.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <nettle/memops.h>

#include "audit.h"
#include "b64.h"
#include "ca.h"
#include "commit.h"
#include "csr.h"
#include "csrattrs.h"
#include "env.h"
#include "file.h"
#include "key.h"
#include "keystore.h"
#include "passwd.h"
#include "pkcs7.h"
#include "policy.h"
#include "profile.h"
#include "reg.h"
#include "srv.h"
#include "srvconf.h"

#define PREFIX "/.well-known/est/"
#define CT_CERTS "application/pkcs7-mime; smime-type=certs-only"
#define CT_TEXT "text/plain; charset=utf-8"

enum op { OP_CACERTS, OP_ENROLL, OP_REENROLL, OP_CSRATTRS, OP_KEYGEN, OP__MAX };

static const struct {
	const char *name, *method;
} ops[OP__MAX] = {
	[OP_CACERTS] = { "cacerts", "GET" },
	[OP_ENROLL] = { "simpleenroll", "POST" },
	[OP_REENROLL] = { "simplereenroll", "POST" },
	[OP_CSRATTRS] = { "csrattrs", "GET" },
	[OP_KEYGEN] = { "serverkeygen", "POST" },
};

struct label_state {
	struct est_policy policy;
	gnutls_x509_trust_list_t anchors;       /* bootstrap anchors, or NULL */
	gnutls_datum_t csrattrs;                /* the csrattrs reply body */
};

struct state {
	unsigned refs;
	struct est_srvconf conf;
	struct est_signer signer;
	struct est_keystore keys;
	struct est_passwd *passwd;
	struct label_state *labels;             /* parallel to conf.labels */
	gnutls_x509_trust_list_t ca_trust;      /* this CA, for re-enrollment */
	gnutls_datum_t cacerts;                 /* the cacerts reply body */
	gnutls_datum_t client_cas;              /* PEM for the TLS CertificateRequest */
};

struct est_srv {
	char *dir;
	pthread_mutex_t lock;
	struct state *cur;
	struct est_registry reg;                /* reads (the committer owns its own) */
	struct est_registry reg_commit;
	struct est_audit audit;
	struct est_committer *committer;
};

static void
state_free(struct state *st)
{
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; st->labels != NULL && i < st->conf.nlabels; i++) {
		est_policy_free(&st->labels[i].policy);
		if (st->labels[i].anchors != NULL)
			gnutls_x509_trust_list_deinit(st->labels[i].anchors, 1);
		gnutls_free(st->labels[i].csrattrs.data);
	}
	free(st->labels);
	if (st->ca_trust != NULL)
		gnutls_x509_trust_list_deinit(st->ca_trust, 1);
	gnutls_free(st->cacerts.data);
	gnutls_free(st->client_cas.data);
	est_passwd_free(st->passwd);
	est_keystore_close(&st->keys);
	est_signer_close(&st->signer);
	est_srvconf_free(&st->conf);
	free(st);
}

static struct state *
state_get(struct est_srv *srv)
{
	struct state *st;

	pthread_mutex_lock(&srv->lock);
	st = srv->cur;
	st->refs++;
	pthread_mutex_unlock(&srv->lock);
	return st;
}

static void
state_put(struct est_srv *srv, struct state *st)
{
	unsigned left;

	pthread_mutex_lock(&srv->lock);
	left = --st->refs;
	pthread_mutex_unlock(&srv->lock);
	if (left == 0)
		state_free(st);
}

static int
datum_append(gnutls_datum_t *d, const void *p, size_t n, struct est_error *e)
{
	unsigned char *nd = gnutls_realloc(d->data, d->size + n + 1);

	if (nd == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	memcpy(nd + d->size, p, n);
	d->data = nd;
	d->size += (unsigned)n;
	d->data[d->size] = '\0';
	return 0;
}

/* A copy of CRT for a trust list, which takes ownership of what it is given. */
static int
crt_dup(gnutls_x509_crt_t crt, gnutls_x509_crt_t *out)
{
	gnutls_datum_t der = { NULL, 0 };
	int r;

	*out = NULL;
	if ((r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der)) < 0)
		return r;
	if ((r = gnutls_x509_crt_init(out)) >= 0 &&
	    (r = gnutls_x509_crt_import(*out, &der, GNUTLS_X509_FMT_DER)) < 0) {
		gnutls_x509_crt_deinit(*out);
		*out = NULL;
	}
	gnutls_free(der.data);
	return r;
}

/* The CA side of a snapshot: the trust list for re-enrollment, the cacerts
 * reply, and the issuing CA's PEM for the TLS CertificateRequest. */
static int
ca_load(struct state *st, struct est_error *e)
{
	const gnutls_x509_crt_t *chain;
	gnutls_x509_crt_t copy = NULL;
	gnutls_datum_t p7 = { NULL, 0 }, pem = { NULL, 0 };
	unsigned n = 0;
	int r, rc = 0;

	if (st->signer.ops->chain(st->signer.ctx, &chain, &n) < 0 || n == 0)
		return est_fail(e, EST_ECONFIG, "%s: no CA certificate", st->conf.ca_cert);
	if ((r = gnutls_x509_trust_list_init(&st->ca_trust, 0)) < 0 ||
	    (r = crt_dup(chain[0], &copy)) < 0 ||
	    (r = gnutls_x509_trust_list_add_cas(st->ca_trust, &copy, 1, 0)) < 0) {
		gnutls_x509_crt_deinit(copy);
		return est_fail(e, EST_EINTERNAL, "CA trust list: %s", gnutls_strerror(r));
	}
	if ((rc = est_pkcs7_build_crts(chain, n, &p7, e)) < 0 ||
	    (rc = est_b64_encode(p7.data, p7.size, 1, &st->cacerts, e)) < 0)
		goto out;
	if ((r = gnutls_x509_crt_export2(chain[0], GNUTLS_X509_FMT_PEM, &pem)) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "CA certificate: %s", gnutls_strerror(r));
		goto out;
	}
	rc = datum_append(&st->client_cas, pem.data, pem.size, e);
out:
	gnutls_free(p7.data);
	gnutls_free(pem.data);
	return rc;
}

static int
anchors_load(struct state *st, const struct est_label *l, struct label_state *ls,
	     struct est_error *e)
{
	gnutls_datum_t pem = { NULL, 0 };
	int r, rc;

	if (l->anchors == NULL)
		return 0;
	if ((rc = est_file_read(l->anchors, EST_FILE_MAX, &pem, e)) < 0) {
		e->code = EST_ECONFIG;
		return -EST_ECONFIG;
	}
	if ((r = gnutls_x509_trust_list_init(&ls->anchors, 0)) < 0 ||
	    (r = gnutls_x509_trust_list_add_trust_mem(ls->anchors, &pem, NULL,
						      GNUTLS_X509_FMT_PEM, 0, 0)) <= 0) {
		rc = est_fail(e, EST_ECONFIG, "%s: no certificate (PEM) in the bootstrap anchors",
			      l->anchors);
		goto out;
	}
	rc = datum_append(&st->client_cas, pem.data, pem.size, e);
out:
	gnutls_free(pem.data);
	return rc;
}

static int
labels_load(struct state *st, struct est_error *e)
{
	const struct est_label *l;
	struct label_state *ls;
	gnutls_datum_t der;
	size_t i;
	int rc;

	if ((st->labels = calloc(st->conf.nlabels + 1, sizeof(*st->labels))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	for (i = 0; i < st->conf.nlabels; i++) {
		l = &st->conf.labels[i];
		ls = &st->labels[i];
		if ((rc = est_policy_from_json(l->policy != NULL ? l->policy : st->conf.policy,
					       &ls->policy, e)) < 0) {
			if (l->policy != NULL)
				est_error_prefix(e, "labels.\"%s\"", l->name);
			return rc;
		}
		if ((rc = anchors_load(st, l, ls, e)) < 0 ||
		    (rc = est_csrattrs_build(l->key_type, l->pop, &der, e)) < 0)
			return rc;
		rc = est_b64_encode(der.data, der.size, 1, &ls->csrattrs, e);
		gnutls_free(der.data);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int
state_load(const char *dir, struct state **out, struct est_error *e)
{
	struct state *st;
	int rc;

	*out = NULL;
	if ((st = calloc(1, sizeof(*st))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	st->refs = 1;
	if ((rc = est_srvconf_load(dir, &st->conf, e)) < 0)
		goto out;
	if ((rc = est_ca_open(st->conf.ca_key, st->conf.ca_cert, &st->signer, e)) < 0 ||
	    (rc = est_keystore_dir_open(st->conf.keys_dir, &st->keys, e)) < 0 ||
	    (rc = est_passwd_load(st->conf.passwd, &st->passwd, e)) < 0 ||
	    (rc = ca_load(st, e)) < 0 || (rc = labels_load(st, e)) < 0)
		goto out;
out:
	if (rc < 0) {
		/* Bad data in the state directory is a configuration problem. */
		if (e != NULL && e->code == EST_EDATA) {
			e->code = EST_ECONFIG;
			rc = -EST_ECONFIG;
		}
		state_free(st);
		return rc;
	}
	*out = st;
	return 0;
}

/* ---- replies ---- */

static void
note(struct est_srv_response *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
note(struct est_srv_response *r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->note, sizeof(r->note), fmt, ap);
	va_end(ap);
}

/* A text/plain reply: REASON is client-safe, one line. */
static void
reply_text(struct est_srv_response *r, int status, const char *reason)
{
	size_t n = strcspn(reason, "\r\n");

	r->status = status;
	r->content_type = CT_TEXT;
	gnutls_free(r->body.data);
	r->body.size = 0;
	if ((r->body.data = gnutls_malloc(n + 2)) != NULL) {
		memcpy(r->body.data, reason, n);
		r->body.data[n] = '\n';
		r->body.data[n + 1] = '\0';
		r->body.size = (unsigned)n + 1;
	}
}

static void
reply_internal(struct est_srv_response *r, const struct est_error *e)
{
	note(r, "internal: %s", e->msg);
	reply_text(r, 500, "internal server error");
}

static void
reply_401(struct est_srv_response *r, const char *reason)
{
	reply_text(r, 401, reason);
	snprintf(r->extra_name, sizeof(r->extra_name), "WWW-Authenticate");
	snprintf(r->extra_value, sizeof(r->extra_value), "Basic realm=\"estctl\"");
}

/* A 200 with a copy of BODY (already base64). */
static void
reply_body(struct est_srv_response *r, const char *type, const gnutls_datum_t *body)
{
	r->status = 200;
	r->content_type = type;
	if ((r->body.data = gnutls_malloc(body->size + 1)) == NULL) {
		r->status = 500;
		r->content_type = CT_TEXT;
		return;
	}
	memcpy(r->body.data, body->data, body->size);
	r->body.data[body->size] = '\0';
	r->body.size = body->size;
}

/* A certs-only reply holding the DER certificate CERT. */
static int
reply_cert(struct est_srv_response *r, const gnutls_datum_t *cert, struct est_error *e)
{
	gnutls_datum_t p7 = { NULL, 0 };
	int rc;

	if ((rc = est_pkcs7_build(cert, 1, &p7, e)) < 0)
		return rc;
	rc = est_b64_encode(p7.data, p7.size, 1, &r->body, e);
	gnutls_free(p7.data);
	if (rc < 0)
		return rc;
	r->status = 200;
	r->content_type = CT_CERTS;
	return 0;
}

void
est_srv_response_free(struct est_srv_response *r)
{
	if (r->body.data != NULL) {
		/* serverkeygen replies hold a private key */
		gnutls_memset(r->body.data, 0, r->body.size);
		gnutls_free(r->body.data);
	}
	r->body.data = NULL;
	r->body.size = 0;
}

/* ---- routing ---- */

/* "/.well-known/est/[label/]op" into LABEL and *OP; 0, or -1 for a path
 * outside EST (404). */
static int
route(const char *path, char label[80], enum op *op)
{
	const char *rest, *slash, *name;
	size_t i, n;

	if (path == NULL || strncmp(path, PREFIX, strlen(PREFIX)) != 0)
		return -1;
	rest = path + strlen(PREFIX);
	label[0] = '\0';
	name = rest;
	if ((slash = strchr(rest, '/')) != NULL) {
		n = (size_t)(slash - rest);
		if (n == 0 || n >= 80 || strchr(slash + 1, '/') != NULL)
			return -1;
		memcpy(label, rest, n);
		label[n] = '\0';
		name = slash + 1;
	}
	for (i = 0; i < OP__MAX; i++)
		if (strcmp(name, ops[i].name) == 0) {
			*op = (enum op)i;
			return 0;
		}
	return -1;
}

/* The media type of a Content-Type header, lowercased, without parameters;
 * and whether its smime-type parameter is SMIME. */
static int
media_is(const char *ct, const char *type, const char *smime)
{
	size_t n = strlen(type);
	const char *p;

	if (ct == NULL)
		return 0;
	while (*ct == ' ')
		ct++;
	if (strncasecmp(ct, type, n) != 0 || (ct[n] != '\0' && ct[n] != ';' && ct[n] != ' '))
		return 0;
	if (smime == NULL)
		return 1;
	for (p = ct + n; (p = strchr(p, ';')) != NULL;) {
		p++;
		while (*p == ' ')
			p++;
		if (strncasecmp(p, "smime-type=", 11) == 0) {
			p += 11;
			if (*p == '"')
				p++;
			return strncasecmp(p, smime, strlen(smime)) == 0 &&
			       strchr("\"; ", p[strlen(smime)]) != NULL;
		}
	}
	return 0;
}

/* ---- one enrollment ---- */

struct ctx {
	struct est_srv *srv;
	struct state *st;
	const struct est_label *label;
	const struct label_state *ls;
	const struct est_srv_request *req;
	struct est_srv_response *resp;
	enum op op;
	char auth[96];                  /* how the client authenticated, for the audit log */
	int sealed;                     /* the body is a sealed CSR */
	gnutls_datum_t raw;             /* the body decoded from base64 */
	struct est_secret plain;        /* a sealed CSR, opened */
	gnutls_x509_crq_t crq;
	struct est_profile profile;
	int have_profile;
	gnutls_x509_crt_t peer;         /* the client's certificate, once verified */
	char serial[EST_SERIAL_HEX_MAX + 1];   /* its serial */
	enum est_key_type kt;
	int expecting;                  /* announced to the group committer */
};

/* This request is about to reach the committer, or will not: end its
 * announcement (est_commit_expect in enroll). */
static void
expect_end(struct ctx *c)
{
	if (c->expecting) {
		est_commit_unexpect(c->srv->committer);
		c->expecting = 0;
	}
}

/* Refuse with STATUS and REASON (client-safe) and record it in the audit log. */
static int
refuse(struct ctx *c, int status, const char *reason)
{
	struct est_audit_event ev;
	struct est_error e;

	if (status == 401)
		reply_401(c->resp, reason);
	else
		reply_text(c->resp, status, reason);
	memset(&ev, 0, sizeof(ev));
	ev.kind = EST_AUDIT_REQUEST_REFUSED;
	ev.thing = c->have_profile ? c->profile.thing_name : NULL;
	ev.remote = c->req->remote;
	ev.label = c->label->name;
	ev.auth = c->auth[0] ? c->auth : NULL;
	ev.reason = reason;
	expect_end(c);
	if (est_commit_event(c->srv->committer, &ev, &e) < 0)
		note(c->resp, "audit of a refusal failed: %s", e.msg);
	return -1;
}

static int
fail_internal(struct ctx *c, const struct est_error *e)
{
	reply_internal(c->resp, e);
	return -1;
}

static int
hex_serial(gnutls_x509_crt_t crt, char out[EST_SERIAL_HEX_MAX + 1])
{
	unsigned char buf[64];
	size_t n = sizeof(buf), i, skip = 0;

	if (gnutls_x509_crt_get_serial(crt, buf, &n) < 0)
		return -1;
	/* DER keeps a leading zero octet for a positive number with its top bit
	 * set; the registry's serials are the 20 content octets without it. */
	while (n - skip > 20 && buf[skip] == 0)
		skip++;
	if (n - skip > 20)
		return -1;
	for (i = skip; i < n; i++)
		snprintf(out + 2 * (i - skip), 3, "%02x", buf[i]);
	out[2 * (n - skip)] = '\0';
	return 0;
}

/* Verify the client's chain against TL; the leaf into *LEAF. */
static int
chain_verify(gnutls_x509_trust_list_t tl, const struct est_srv_request *q,
	     gnutls_x509_crt_t *leaf)
{
	gnutls_x509_crt_t crts[16];
	gnutls_typed_vdata_st purpose = { GNUTLS_DT_KEY_PURPOSE_OID,
		(unsigned char *)GNUTLS_KP_TLS_WWW_CLIENT, 0 };
	unsigned i, n = q->peer_chain_len < 16 ? q->peer_chain_len : 16, got = 0, status = 1;
	int ok = 0;

	*leaf = NULL;
	for (i = 0; i < n; i++) {
		if (gnutls_x509_crt_init(&crts[i]) < 0)
			goto out;
		got++;
		if (gnutls_x509_crt_import(crts[i], &q->peer_chain[i], GNUTLS_X509_FMT_DER) < 0)
			goto out;
	}
	ok = n > 0 && gnutls_x509_trust_list_verify_crt2(tl, crts, n, &purpose, 1, 0, &status,
							  NULL) >= 0 && status == 0;
out:
	for (i = 0; i < got; i++)
		if (ok && i == 0)
			*leaf = crts[0];
		else
			gnutls_x509_crt_deinit(crts[i]);
	return ok ? 0 : -1;
}

static int
auth_sealed(struct ctx *c)
{
	struct est_error e;
	char *keyid = NULL;
	int rc;

	if (!est_env_is_sealed(c->raw.data, c->raw.size)) {
		reply_text(c->resp, 400, "the body is not a sealed CSR (CMS AuthEnvelopedData)");
		return -1;
	}
	rc = est_env_open(c->raw.data, c->raw.size, est_keystore_lookup, &c->st->keys, &c->plain,
			  &keyid, &e);
	if (rc == -EST_EREFUSED)
		return refuse(c, 401, "the sealed CSR names an unknown enrollment key");
	if (rc < 0) {
		note(c->resp, "%s", e.msg);
		return refuse(c, 401, "the sealed CSR does not open under its enrollment key");
	}
	snprintf(c->auth, sizeof(c->auth), "sealed:%.64s", keyid != NULL ? keyid : "");
	free(keyid);
	return 0;
}

/* simplereenroll: a current, unrevoked certificate of this CA over mutual TLS. */
static int
auth_reenroll(struct ctx *c)
{
	struct est_reg_cert cert;
	struct est_reg_device dev;
	enum est_dev_status status;
	struct est_error e;
	char why[200];

	if (c->req->peer_chain_len == 0) {
		reply_401(c->resp, "simplereenroll needs the current certificate (mutual TLS)");
		return -1;
	}
	if (chain_verify(c->st->ca_trust, c->req, &c->peer) < 0)
		return refuse(c, 401, "the client certificate is not a valid certificate of this CA");
	if (hex_serial(c->peer, c->serial) < 0)
		return refuse(c, 401, "the client certificate's serial number is not one of ours");
	snprintf(c->auth, sizeof(c->auth), "reenroll:%s", c->serial);
	if (c->srv->reg.ops->cert_get(c->srv->reg.ctx, c->serial, &cert, &e) < 0)
		return fail_internal(c, &e);
	if (cert.status != EST_CERT_ACTIVE) {
		snprintf(why, sizeof(why), "the client certificate is %s, not current",
			 cert.status == EST_CERT_NONE ? "unknown to the registry"
			 : est_cert_status_names[cert.status]);
		return refuse(c, 403, why);
	}
	if (c->srv->reg.ops->device_get(c->srv->reg.ctx, cert.thing_name, &dev, &e) < 0)
		return fail_internal(c, &e);
	status = dev.status;
	est_reg_device_clear(&dev);
	if (status != EST_DEV_ACTIVE) {
		snprintf(why, sizeof(why), "thing '%s' is %s", cert.thing_name,
			 est_dev_status_names[status]);
		return refuse(c, 403, why);
	}
	return 0;
}

/* Basic or a bootstrap client certificate, when the body was not sealed. */
static int
authenticate(struct ctx *c)
{
	const struct est_srv_request *q = c->req;
	char user[EST_USER_MAX + 1];
	struct est_error e;
	int rc;

	user[0] = '\0';
	if (c->op == OP_REENROLL)
		return auth_reenroll(c);
	if (c->sealed)
		return auth_sealed(c);
	if (q->authorization != NULL && (c->label->auth & EST_AUTH_BASIC)) {
		rc = est_passwd_check(c->st->passwd, q->authorization, user, &e);
		if (rc == 0) {
			snprintf(c->auth, sizeof(c->auth), "basic:%s", user);
			return 0;
		}
		if (rc == -EST_EREFUSED && est_passwd_user_valid(user))
			snprintf(c->auth, sizeof(c->auth), "basic:%s", user);
		return refuse(c, 401, "wrong user name or password");
	}
	if (q->peer_chain_len > 0 && (c->label->auth & EST_AUTH_CERT)) {
		if (chain_verify(c->ls->anchors, q, &c->peer) == 0) {
			snprintf(c->auth, sizeof(c->auth), "cert");
			return 0;
		}
		return refuse(c, 401, "the client certificate is not from a bootstrap anchor");
	}
	/* The usual first leg of HTTP Basic: not worth an audit line. */
	reply_401(c->resp, "authentication required");
	return -1;
}

static int
body_decode(struct ctx *c)
{
	const struct est_srv_request *q = c->req;
	struct est_error e;

	if (media_is(q->content_type, "application/pkcs7-mime", "authEnveloped-data"))
		c->sealed = 1;
	else if (!media_is(q->content_type, "application/pkcs10", NULL)) {
		reply_text(c->resp, 415, "expected Content-Type application/pkcs10");
		return -1;
	}
	if (c->sealed && (c->op == OP_REENROLL || !(c->label->auth & EST_AUTH_SEALED))) {
		reply_text(c->resp, 415, "sealed CSRs are not accepted here");
		return -1;
	}
	if (q->body_len == 0 || est_b64_decode(q->body, q->body_len, &c->raw, &e) < 0) {
		reply_text(c->resp, 400, "the body is not base64");
		return -1;
	}
	return 0;
}

static int
csr_parse(struct ctx *c)
{
	const unsigned char *der = c->sealed ? c->plain.data : c->raw.data;
	size_t len = c->sealed ? c->plain.len : c->raw.size;
	struct est_error e;
	int found = 0;

	if (est_csr_parse(der, len, "csr", &c->crq, &e) < 0) {
		note(c->resp, "%s", e.msg);
		reply_text(c->resp, 400, "the body is not a PKCS#10 request");
		return -1;
	}
	if (est_csr_profile(c->crq, &c->profile, &found, &e) < 0) {
		note(c->resp, "%s", e.msg);
		reply_text(c->resp, 400, "the CSR's device profile is malformed");
		return -1;
	}
	if (!found) {
		reply_text(c->resp, 400, "the CSR carries no device profile");
		return -1;
	}
	c->have_profile = 1;
	c->kt = est_policy_crq_key_type(c->crq);
	return 0;
}

/* GnuTLS returns the challengePassword escaped as an RFC 4514 value ("\\+"
 * for '+', or "\\2B"): undo that in place. */
static void
unescape_4514(char *s)
{
	char *w = s;
	unsigned v;

	for (; *s; s++) {
		if (*s == '\\' && isxdigit((unsigned char)s[1]) && isxdigit((unsigned char)s[2]) &&
		    sscanf(s + 1, "%2x", &v) == 1) {
			*w++ = (char)v;
			s += 2;
		} else if (*s == '\\' && s[1] != '\0') {
			*w++ = *++s;
		} else {
			*w++ = *s;
		}
	}
	*w = '\0';
}

/* RFC 7030 3.5: the challengePassword carries the channel binding, base64. */
static int
pop_check(struct ctx *c)
{
	gnutls_datum_t want = { NULL, 0 };
	char pw[512];
	size_t n = sizeof(pw) - 1;
	struct est_error e;
	int ok;

	if (!c->label->pop)
		return 0;
	if (c->req->channel_binding_len == 0) {
		reply_text(c->resp, 403, "proof of possession needs a TLS channel binding");
		return -1;
	}
	if (gnutls_x509_crq_get_challenge_password(c->crq, pw, &n) < 0)
		return refuse(c, 403, "proof of possession: the CSR has no challengePassword "
			      "carrying the TLS channel binding (RFC 7030 3.5)");
	pw[n] = '\0';
	unescape_4514(pw);
	if (est_b64_encode(c->req->channel_binding, c->req->channel_binding_len, 0, &want, &e) < 0)
		return fail_internal(c, &e);
	ok = strlen(pw) == want.size && memeql_sec(pw, want.data, want.size);
	gnutls_free(want.data);
	if (!ok)
		return refuse(c, 403, "proof of possession: the challengePassword does not match "
			      "this TLS connection's channel binding");
	return 0;
}

/* The CSR's extension OID (read with est_csr_extension: GnuTLS cannot read
 * the extensions of a request holding the profile OID) equals the
 * certificate's, or both lack it. */
static int
ext_equal(gnutls_x509_crq_t crq, gnutls_x509_crt_t crt, const char *oid)
{
	gnutls_datum_t a = { NULL, 0 }, b = { NULL, 0 };
	unsigned crit;
	int ra, rb, eq;

	ra = est_csr_extension(crq, oid, &a, NULL, NULL);
	rb = gnutls_x509_crt_get_extension_by_oid2(crt, oid, 0, &b, &crit);
	eq = ra >= 0 && ((ra == 0 && rb < 0) ||
			 (ra == 1 && rb >= 0 && a.size == b.size && memcmp(a.data, b.data, a.size) == 0));
	gnutls_free(a.data);
	gnutls_free(b.data);
	return eq;
}

/* RFC 7030 4.2.2: subject and subjectAltName identical to the certificate's. */
static int
reenroll_check(struct ctx *c)
{
	gnutls_datum_t a = { NULL, 0 }, b = { NULL, 0 };
	char cn[EST_THING_NAME_MAX + 2];
	size_t n = sizeof(cn);
	int same;

	if (c->op != OP_REENROLL)
		return 0;
	same = gnutls_x509_crq_get_dn3(c->crq, &a, 0) >= 0 &&
	       gnutls_x509_crt_get_dn3(c->peer, &b, 0) >= 0 && a.size == b.size &&
	       memcmp(a.data, b.data, a.size) == 0;
	gnutls_free(a.data);
	gnutls_free(b.data);
	if (!same)
		return refuse(c, 403, "re-enrollment: the CSR's subject differs from the "
			      "certificate's (RFC 7030 4.2.2)");
	if (!ext_equal(c->crq, c->peer, "2.5.29.17"))
		return refuse(c, 403, "re-enrollment: the CSR's subjectAltName differs from the "
			      "certificate's (RFC 7030 4.2.2)");
	if (gnutls_x509_crt_get_dn_by_oid(c->peer, GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn, &n) < 0 ||
	    strcmp(cn, c->profile.thing_name) != 0)
		return refuse(c, 403, "re-enrollment: the profile's ThingName differs from the "
			      "certificate's");
	return 0;
}

static int
policy_check(struct ctx *c)
{
	struct est_error e;

	if (est_policy_check(&c->ls->policy, &c->profile, c->kt, &e) < 0) {
		if (e.code != EST_EREFUSED)
			return fail_internal(c, &e);
		return refuse(c, 403, e.msg);
	}
	return 0;
}

/* The CSR holds the key CUR certifies, and its signature proves that the
 * sender holds that key; and the stored certificate (into *CRT) has the
 * CSR's subject. */
static int
retry_matches(struct ctx *c, const struct est_reg_cert *cur, gnutls_x509_crt_t *crt)
{
	gnutls_pubkey_t pub = NULL;
	gnutls_datum_t pem = { NULL, 0 }, a = { NULL, 0 }, b = { NULL, 0 };
	char sha[EST_SHA256_HEX + 1], *text = NULL;
	struct est_error e;
	int ok;

	ok = gnutls_pubkey_init(&pub) >= 0 && gnutls_pubkey_import_x509_crq(pub, c->crq, 0) >= 0 &&
	     est_pubkey_sha256_hex(pub, sha, &e) >= 0 && strcmp(sha, cur->key_sha256) == 0 &&
	     gnutls_x509_crq_verify(c->crq, 0) >= 0 &&
	     c->srv->reg.ops->cert_pem(c->srv->reg.ctx, cur->serial_hex, &text, &e) >= 0;
	if (ok) {
		pem.data = (unsigned char *)text;
		pem.size = (unsigned)strlen(text);
		ok = gnutls_x509_crt_init(crt) >= 0 &&
		     gnutls_x509_crt_import(*crt, &pem, GNUTLS_X509_FMT_PEM) >= 0 &&
		     gnutls_x509_crq_get_dn3(c->crq, &a, 0) >= 0 &&
		     gnutls_x509_crt_get_dn3(*crt, &b, 0) >= 0 && a.size == b.size &&
		     memcmp(a.data, b.data, a.size) == 0;
	}
	free(text);
	gnutls_free(a.data);
	gnutls_free(b.data);
	gnutls_pubkey_deinit(pub);
	return ok;
}

/* A new enrollment of an active thing from the holder of its current key,
 * for its registered profile, is the retry of a client that lost the reply
 * (killed before it kept it): answer with the current certificate again. It
 * grants nothing new. The committer checks device, certificate, key and
 * profile again, atomically, and audits "certificate_returned_again".
 * 1: not such a retry; otherwise replied (200, or a refusal). */
static int
return_again(struct ctx *c, const struct est_reg_cert *cur)
{
	struct est_commit_rec rec = { .mode = EST_COMMIT_RETURN };
	gnutls_x509_crt_t crt = NULL;
	gnutls_datum_t der = { NULL, 0 };
	json_t *pj = NULL;
	char *pjs = NULL;
	struct est_error e;
	int rc = 1;

	if (c->op != OP_ENROLL || cur->serial_hex[0] == '\0' || !retry_matches(c, cur, &crt) ||
	    (pj = est_profile_to_json(&c->profile)) == NULL ||
	    (pjs = json_dumps(pj, JSON_COMPACT)) == NULL ||
	    gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der) < 0)
		goto out;
	rec.thing_name = c->profile.thing_name;
	rec.profile_json = pjs;
	rec.cert.serial_hex = cur->serial_hex;
	rec.cert.key_sha256 = cur->key_sha256;
	rec.current_serial = cur->serial_hex;
	rec.remote = c->req->remote;
	rec.label = c->label->name;
	rec.auth = c->auth;
	expect_end(c);
	rc = est_commit_issue(c->srv->committer, &rec, &e);
	if (rc == -EST_EREFUSED)
		reply_text(c->resp, 403, e.msg);        /* audited by the committer */
	else if (rc < 0 || reply_cert(c->resp, &der, &e) < 0)
		reply_internal(c->resp, &e);
	rc = 0;
out:
	gnutls_free(der.data);
	free(pjs);
	json_decref(pj);
	if (crt != NULL)
		gnutls_x509_crt_deinit(crt);
	return rc;
}

/* A new enrollment of a registered thing would be a takeover: refuse it
 * early (the committer checks again, atomically), unless it is a retry
 * answered by return_again. */
static int
registry_check(struct ctx *c)
{
	struct est_reg_device dev;
	enum est_dev_status status;
	struct est_error e;
	char why[300];
	int again = 1;

	if (c->op == OP_REENROLL)
		return 0;
	if (c->srv->reg.ops->device_get(c->srv->reg.ctx, c->profile.thing_name, &dev, &e) < 0)
		return fail_internal(c, &e);
	status = dev.status;
	if (status == EST_DEV_ACTIVE)
		again = return_again(c, &dev.cert);
	est_reg_device_clear(&dev);
	if (again <= 0)
		return -1;
	if (status == EST_DEV_ACTIVE) {
		snprintf(why, sizeof(why), "thing '%s' is already registered: only its current "
			 "certificate (simplereenroll) or an operator can replace it",
			 c->profile.thing_name);
		return refuse(c, 403, why);
	}
	if (status == EST_DEV_REVOKED) {
		snprintf(why, sizeof(why), "thing '%s' is revoked", c->profile.thing_name);
		return refuse(c, 403, why);
	}
	return 0;
}

/* Manual-approval labels: 202 + Retry-After until `server approve`. */
static int
approval_check(struct ctx *c, int *consume)
{
	struct est_audit_event ev;
	enum est_approval before, after;
	struct est_error e;
	char why[300];
	void *rctx = c->srv->reg.ctx;

	*consume = 0;
	if (!c->label->manual || c->op == OP_REENROLL)
		return 0;
	if (c->srv->reg.ops->approval_state(rctx, c->profile.thing_name, &before, &e) < 0)
		return fail_internal(c, &e);
	if (before == EST_APPROVAL_APPROVED) {
		*consume = 1;
		return 0;
	}
	if (c->srv->reg.ops->approval_request(rctx, c->profile.thing_name, &after, &e) < 0)
		return fail_internal(c, &e);
	if (before == EST_APPROVAL_NONE) {
		memset(&ev, 0, sizeof(ev));
		ev.kind = EST_AUDIT_APPROVAL_REQUESTED;
		ev.thing = c->profile.thing_name;
		ev.remote = c->req->remote;
		ev.label = c->label->name;
		ev.auth = c->auth;
		expect_end(c);
		if (est_commit_event(c->srv->committer, &ev, &e) < 0)
			return fail_internal(c, &e);
	}
	snprintf(why, sizeof(why), "enrollment of '%s' awaits an operator's approval",
		 c->profile.thing_name);
	reply_text(c->resp, 202, why);
	snprintf(c->resp->extra_name, sizeof(c->resp->extra_name), "Retry-After");
	snprintf(c->resp->extra_value, sizeof(c->resp->extra_value), "%u",
		 c->st->conf.retry_after);
	return -1;
}

static int
commit(struct ctx *c, const struct est_issued *iss, int consume)
{
	struct est_commit_rec rec;
	json_t *pj = est_profile_to_json(&c->profile), *ij = est_policy_iot_document(&c->profile);
	char *pjs = pj != NULL ? json_dumps(pj, JSON_COMPACT) : NULL;
	char *ijs = ij != NULL ? json_dumps(ij, JSON_COMPACT) : NULL;
	struct est_error e;
	int rc;

	json_decref(pj);
	json_decref(ij);
	if (pjs == NULL || ijs == NULL) {
		est_fail(&e, EST_EINTERNAL, "out of memory");
		rc = fail_internal(c, &e);
		goto out;
	}
	memset(&rec, 0, sizeof(rec));
	rec.mode = c->op == OP_REENROLL ? EST_COMMIT_REENROLL : EST_COMMIT_NEW;
	rec.thing_name = c->profile.thing_name;
	rec.profile_json = pjs;
	rec.iot_policy_json = ijs;
	rec.cert.serial_hex = iss->serial_hex;
	rec.cert.not_before = iss->not_before;
	rec.cert.not_after = iss->not_after;
	rec.cert.key_sha256 = iss->key_sha256;
	rec.cert.pem = (const char *)iss->pem.data;
	rec.current_serial = c->op == OP_REENROLL ? c->serial : NULL;
	rec.consume_approval = consume;
	rec.remote = c->req->remote;
	rec.label = c->label->name;
	rec.auth = c->auth;
	expect_end(c);
	rc = est_commit_issue(c->srv->committer, &rec, &e);
	if (rc == -EST_EREFUSED) {
		/* The committer already audited it; its reason is client-safe. */
		reply_text(c->resp, 403, e.msg);
		rc = -1;
	} else if (rc < 0) {
		rc = fail_internal(c, &e);
	}
out:
	free(pjs);
	free(ijs);
	return rc;
}

static int
issue(struct ctx *c, gnutls_x509_crq_t crq, struct est_issued *iss)
{
	struct est_issue_req ir;
	struct est_error e;
	int rc;

	memset(&ir, 0, sizeof(ir));
	ir.crq = crq;
	ir.profile = &c->profile;
	ir.validity = c->ls->policy.default_validity;
	rc = est_signer_issue(&c->st->signer, &ir, iss, &e);
	if (rc == -EST_EDATA) {
		note(c->resp, "%s", e.msg);
		reply_text(c->resp, 400, "the CSR's signature does not verify, or its subject is "
			   "not CN=<ThingName>");
		return -1;
	}
	if (rc < 0)
		return fail_internal(c, &e);
	return 0;
}

/* A CSR for the server-made key: the same ThingName and profile (the CA
 * issues to CN=<ThingName> and copies only the validated profile). */
static int
keygen_crq(struct ctx *c, gnutls_x509_privkey_t key, gnutls_privkey_t *pk,
	   gnutls_x509_crq_t *out, struct est_error *e)
{
	int r;

	if ((r = gnutls_privkey_init(pk)) < 0 || (r = gnutls_privkey_import_x509(*pk, key, 0)) < 0)
		return est_fail(e, EST_EINTERNAL, "serverkeygen key: %s", gnutls_strerror(r));
	return est_csr_build(*pk, &c->profile, NULL, 0, NULL, out, e);
}

/* RFC 7030 4.4.2: multipart/mixed, the PKCS#8 key then the certs-only reply. */
static int
keygen_reply(struct ctx *c, gnutls_x509_privkey_t key, const gnutls_datum_t *cert,
	     struct est_error *e)
{
	static const char boundary[] = "estctl-serverkeygen-boundary";
	gnutls_datum_t p8 = { NULL, 0 }, k64 = { NULL, 0 }, p7 = { NULL, 0 }, c64 = { NULL, 0 };
	gnutls_datum_t *b = &c->resp->body;
	char head[160];
	int r, rc;

	if ((r = gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_DER, NULL,
						   GNUTLS_PKCS_PLAIN, &p8)) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "pkcs8: %s", gnutls_strerror(r));
		goto out;
	}
	if ((rc = est_b64_encode(p8.data, p8.size, 1, &k64, e)) < 0 ||
	    (rc = est_pkcs7_build(cert, 1, &p7, e)) < 0 ||
	    (rc = est_b64_encode(p7.data, p7.size, 1, &c64, e)) < 0)
		goto out;
	snprintf(head, sizeof(head), "--%s\r\nContent-Type: application/pkcs8\r\n\r\n", boundary);
	if ((rc = datum_append(b, head, strlen(head), e)) < 0 ||
	    (rc = datum_append(b, k64.data, k64.size, e)) < 0)
		goto out;
	snprintf(head, sizeof(head), "\r\n--%s\r\nContent-Type: " CT_CERTS "\r\n\r\n", boundary);
	if ((rc = datum_append(b, head, strlen(head), e)) < 0 ||
	    (rc = datum_append(b, c64.data, c64.size, e)) < 0)
		goto out;
	snprintf(head, sizeof(head), "\r\n--%s--\r\n", boundary);
	if ((rc = datum_append(b, head, strlen(head), e)) < 0)
		goto out;
	c->resp->status = 200;
	c->resp->content_type = "multipart/mixed; boundary=" "estctl-serverkeygen-boundary";
out:
	if (p8.data != NULL)
		gnutls_memset(p8.data, 0, p8.size);
	if (k64.data != NULL)
		gnutls_memset(k64.data, 0, k64.size);
	gnutls_free(p8.data);
	gnutls_free(k64.data);
	gnutls_free(p7.data);
	gnutls_free(c64.data);
	return rc;
}

/* serverkeygen: the client's CSR (signature checked here, since it is not
 * the one the CA signs) names the thing; the server makes the key. */
static int
keygen(struct ctx *c, int consume)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_privkey_t pk = NULL;
	gnutls_x509_crq_t crq = NULL;
	struct est_issued iss;
	struct est_error e;
	int rc = -1;

	memset(&iss, 0, sizeof(iss));
	if (est_csr_verify(c->crq, &e) < 0) {
		note(c->resp, "%s", e.msg);
		reply_text(c->resp, 400, "the CSR's signature does not verify");
		return -1;
	}
	if ((rc = est_key_generate(c->label->key_type, &key, &e)) < 0) {
		rc = fail_internal(c, &e);
		goto out;
	}
	if (keygen_crq(c, key, &pk, &crq, &e) < 0) {
		rc = fail_internal(c, &e);
		goto out;
	}
	if ((rc = issue(c, crq, &iss)) < 0 || (rc = commit(c, &iss, consume)) < 0)
		goto out;
	if ((rc = keygen_reply(c, key, &iss.der, &e)) < 0)
		rc = fail_internal(c, &e);
out:
	if (iss.crt != NULL)
		est_issued_free(&iss);
	gnutls_x509_crq_deinit(crq);
	gnutls_privkey_deinit(pk);
	gnutls_x509_privkey_deinit(key);
	return rc;
}

static void
ctx_free(struct ctx *c)
{
	expect_end(c);
	gnutls_free(c->raw.data);
	est_secret_free(&c->plain);
	if (c->crq != NULL)
		gnutls_x509_crq_deinit(c->crq);
	if (c->have_profile)
		est_profile_free(&c->profile);
	if (c->peer != NULL)
		gnutls_x509_crt_deinit(c->peer);
}

static void
enroll(struct ctx *c)
{
	struct est_issued iss;
	struct est_error e;
	int consume = 0;

	memset(&iss, 0, sizeof(iss));
	/* Most enrollments end in a commit: let the committer wait for this
	 * one when it is about to commit those of concurrent requests. */
	est_commit_expect(c->srv->committer);
	c->expecting = 1;
	if (body_decode(c) < 0 || authenticate(c) < 0 || csr_parse(c) < 0 || pop_check(c) < 0 ||
	    reenroll_check(c) < 0 || policy_check(c) < 0 || registry_check(c) < 0 ||
	    approval_check(c, &consume) < 0)
		return;
	if (c->op == OP_KEYGEN) {
		keygen(c, consume);
		return;
	}
	if (issue(c, c->crq, &iss) < 0)
		return;
	if (commit(c, &iss, consume) == 0 && reply_cert(c->resp, &iss.der, &e) < 0)
		reply_internal(c->resp, &e);
	est_issued_free(&iss);
}

/* ---- dispatch ---- */

static size_t
label_index(const struct state *st, const struct est_label *l)
{
	return (size_t)(l - st->conf.labels);
}

static void
handle(struct est_srv *srv, struct state *st, const struct est_label *l, enum op op,
       const struct est_srv_request *q, struct est_srv_response *r)
{
	struct ctx c;

	if (op == OP_CACERTS) {
		reply_body(r, CT_CERTS, &st->cacerts);
		return;
	}
	if (op == OP_CSRATTRS) {
		reply_body(r, "application/csrattrs", &st->labels[label_index(st, l)].csrattrs);
		return;
	}
	if ((op == OP_KEYGEN && !l->serverkeygen) || (op == OP_REENROLL && !l->reenroll)) {
		reply_text(r, 404, "this operation is not enabled here");
		return;
	}
	memset(&c, 0, sizeof(c));
	c.srv = srv;
	c.st = st;
	c.label = l;
	c.ls = &st->labels[label_index(st, l)];
	c.req = q;
	c.resp = r;
	c.op = op;
	enroll(&c);
	ctx_free(&c);
}

void
est_srv_handle(struct est_srv *srv, const struct est_srv_request *q, struct est_srv_response *r)
{
	const struct est_label *l;
	struct state *st;
	char label[80];
	enum op op;

	memset(r, 0, sizeof(*r));
	if (route(q->path, label, &op) < 0) {
		reply_text(r, 404, "not an EST resource");
		return;
	}
	if (q->method == NULL || strcmp(q->method, ops[op].method) != 0) {
		reply_text(r, 405, "method not allowed");
		snprintf(r->extra_name, sizeof(r->extra_name), "Allow");
		snprintf(r->extra_value, sizeof(r->extra_value), "%s", ops[op].method);
		return;
	}
	st = state_get(srv);
	if ((l = est_srvconf_label(&st->conf, label)) == NULL)
		reply_text(r, 404, "unknown EST label");
	else
		handle(srv, st, l, op, q, r);
	state_put(srv, st);
	if (r->body.data == NULL && r->status != 0) {
		/* reply_text could not allocate: still a well-formed reply */
		r->status = 500;
		r->content_type = CT_TEXT;
	}
}

/* ---- life cycle ---- */

static int
store_open(struct est_srv *srv, const struct state *st, struct est_error *e)
{
	struct est_audit_event ev;
	int rc;

	if ((rc = est_reg_sqlite_open(st->conf.registry, 0, &srv->reg, e)) < 0 ||
	    (rc = est_reg_sqlite_open(st->conf.registry, 0, &srv->reg_commit, e)) < 0 ||
	    (rc = est_audit_open_file(st->conf.audit_log, 0, &srv->audit, e)) < 0 ||
	    (rc = est_commit_start(&srv->reg_commit, &srv->audit, &srv->committer, e)) < 0)
		return rc;
	memset(&ev, 0, sizeof(ev));
	ev.kind = EST_AUDIT_SERVER_STARTED;
	return est_commit_event(srv->committer, &ev, e);
}

int
est_srv_open(const char *dir, struct est_srv **out, struct est_error *e)
{
	struct est_srv *srv;
	int rc;

	*out = NULL;
	if ((srv = calloc(1, sizeof(*srv))) == NULL || (srv->dir = strdup(dir)) == NULL) {
		free(srv);
		return est_fail(e, EST_EINTERNAL, "out of memory");
	}
	pthread_mutex_init(&srv->lock, NULL);
	if ((rc = state_load(dir, &srv->cur, e)) < 0 || (rc = store_open(srv, srv->cur, e)) < 0) {
		est_srv_close(srv);
		return rc;
	}
	*out = srv;
	return 0;
}

int
est_srv_reload(struct est_srv *srv, struct est_error *e)
{
	struct state *st, *old;
	int rc;

	if ((rc = state_load(srv->dir, &st, e)) < 0)
		return rc;
	pthread_mutex_lock(&srv->lock);
	old = srv->cur;
	srv->cur = st;
	pthread_mutex_unlock(&srv->lock);
	state_put(srv, old);
	return 0;
}

void
est_srv_transport(struct est_srv *srv, struct est_srv_transport *t)
{
	struct state *st = state_get(srv);

	memset(t, 0, sizeof(*t));
	snprintf(t->tls_cert, sizeof(t->tls_cert), "%s", st->conf.tls_cert);
	snprintf(t->tls_key, sizeof(t->tls_key), "%s", st->conf.tls_key);
	snprintf(t->priorities, sizeof(t->priorities), "%s", st->conf.priorities);
	snprintf(t->listen, sizeof(t->listen), "%s", st->conf.listen);
	t->max_body = st->conf.max_body;
	t->timeout = st->conf.timeout;
	t->request_timeout = st->conf.request_timeout;
	t->max_connections = st->conf.max_connections;
	state_put(srv, st);
}

int
est_srv_client_cas(struct est_srv *srv, gnutls_datum_t *pem, struct est_error *e)
{
	struct state *st = state_get(srv);
	int rc;

	pem->data = NULL;
	pem->size = 0;
	rc = datum_append(pem, st->client_cas.data, st->client_cas.size, e);
	state_put(srv, st);
	return rc;
}

void
est_srv_close(struct est_srv *srv)
{
	struct est_audit_event ev;
	struct est_error e;

	if (srv == NULL)
		return;
	if (srv->committer != NULL) {
		memset(&ev, 0, sizeof(ev));
		ev.kind = EST_AUDIT_SERVER_STOPPED;
		est_commit_event(srv->committer, &ev, &e);
		est_commit_stop(srv->committer);
	}
	est_audit_close(&srv->audit);
	est_reg_close(&srv->reg_commit);
	est_reg_close(&srv->reg);
	if (srv->cur != NULL)
		state_put(srv, srv->cur);
	pthread_mutex_destroy(&srv->lock);
	free(srv->dir);
	free(srv);
}
