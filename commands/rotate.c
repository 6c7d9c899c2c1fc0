/* estctl rotate: renew a device directory's certificate over mutual TLS
 * (simplereenroll, RFC 7030 4.2.2) once it is due, swap the new pair in
 * crash-safely keeping the previous one, and say which happened; --all does
 * it for a tree of devices, --watch keeps doing it for one. */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <jansson.h>

#include "cert.h"
#include "cli.h"
#include "client.h"
#include "commands.h"
#include "csr.h"
#include "devdir.h"
#include "file.h"
#include "key.h"

enum { OPT_BEFORE = CLI_LONG, OPT_AT, OPT_KEEP_KEY, OPT_FORCE, OPT_JSON, OPT_CACERT };

#define MAX_SANS 32
#define WATCH_MAX_SLEEP 86400           /* re-read DIR at least daily */
#define BACKOFF_MIN 60
#define BACKOFF_MAX (6 * 3600)

static const struct cli_opt opts[] = {
	{ OPT_AT, "at", "FRACTION", "due once this part of the lifetime has passed "
	  "(default 2/3; also 0.5, 3/4)" },
	{ OPT_BEFORE, "before", "DURATION", "due when this much validity is left (30d, 12h) "
	  "instead of --at" },
	{ OPT_KEEP_KEY, "keep-key", NULL, "renew the certificate of the current key "
	  "(default: a new key of the same type)" },
	{ OPT_FORCE, "force", NULL, "renew now, due or not (with --watch: the first time)" },
	{ OPT_JSON, "json", NULL, "one JSON object per device directory on standard output" },
	{ 'u', "url", "URL", "the EST server (default: the url in DIR/est.json)" },
	{ 'l', "label", "LABEL", "the CA label (default: the label in DIR/est.json)" },
	{ OPT_CACERT, "cacert", "FILE", "trust anchors for the server's TLS certificate "
	  "(default: DIR/est.json's, else DIR/ca.pem)" },
	{ 'a', "all", "ROOT", "rotate every device directory directly under ROOT" },
	{ 'j', "jobs", "N", "with --all: directories renewed at once (default 1)" },
	{ 'w', "watch", NULL, "keep running: sleep until due, renew, back off after failures" },
	{ 0, NULL, NULL, NULL }
};

static const struct cli_verb verb = {
	"rotate", "DIR [--at FRACTION | --before DURATION] [--keep-key] [--force] [--json] "
	"[--url URL] [--label L] [--cacert F] [--watch]\n"
	"       estctl rotate --all ROOT [--jobs N] [same options]",
	"renew a device's certificate over mutual TLS when it is due", opts, "dir"
};

struct args {
	const char *dir, *root, *url, *label, *cacert;
	double at;
	long long before;               /* -1: use AT */
	long jobs;
	bool keep_key, force, json, watch;
};

enum action { ACT_RENEWED, ACT_NOT_DUE, ACT_FAILED };
static const char *const action_names[] = { "renewed", "not_due", "failed" };

struct result {
	enum action action;
	char thing[EST_THING_NAME_MAX + 1];
	char serial[2 * 32 + 1], prev_serial[2 * 32 + 1];
	time_t not_after, due_at;       /* 0 when unknown */
	long retry_after;               /* from a 202 */
	bool finished_swap;             /* an interrupted renewal was completed first */
	struct est_error err;
};

/* The current pair of a device directory. */
struct device {
	const char *dir;
	struct est_cert_list crt;       /* cert.pem */
	gnutls_privkey_t key;
	struct est_cert_info info;
	char *client_cert;              /* chain.pem when it starts with cert.pem, else cert.pem */
	char *key_path;
};

/* "2/3", "0.5", "0": a fraction of the lifetime in [0, 1). */
static int
parse_at(const char *s, double *out)
{
	char *end;
	double v, d;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno != 0)
		return -1;
	if (*end == '/') {
		d = strtod(end + 1, &end);
		if (d <= 0)
			return -1;
		v /= d;
	}
	if (*end != '\0' || !(v >= 0 && v < 1))
		return -1;
	*out = v;
	return 0;
}

static int
check_args(const struct args *a, bool at_set)
{
	if (at_set && a->before >= 0)
		return cli_usage_error(&verb, "--at and --before are two ways to say when: give one");
	if ((a->dir == NULL) == (a->root == NULL))
		return cli_usage_error(&verb, "give one device directory, or --all ROOT");
	if (a->watch && a->root != NULL)
		return cli_usage_error(&verb, "--watch keeps one directory: run one per device "
				       "(estctl-rotate@.service), or --all from a timer");
	if (a->jobs != 1 && a->root == NULL)
		return cli_usage_error(&verb, "--jobs goes with --all");
	return 0;
}

/* One option; 0, or the usage error's status. */
static int
apply(struct args *a, int id, const char *arg, bool *at_set)
{
	switch (id) {
	case OPT_KEEP_KEY: a->keep_key = true; break;
	case OPT_FORCE: a->force = true; break;
	case OPT_JSON: a->json = true; break;
	case 'u': a->url = arg; break;
	case 'l': a->label = arg; break;
	case OPT_CACERT: a->cacert = arg; break;
	case 'a': a->root = arg; break;
	case 'w': a->watch = true; break;
	case OPT_AT:
		*at_set = true;
		if (parse_at(arg, &a->at) < 0)
			return cli_usage_error(&verb, "--at %s: expected a fraction from 0 up to 1 "
					       "(excluded), such as 2/3 or 0.5", arg);
		break;
	case OPT_BEFORE:
		if (cli_parse_duration(arg, &a->before) < 0)
			return cli_usage_error(&verb, "--before %s: expected a duration such as 30d "
					       "or 12h", arg);
		break;
	case 'j':
		a->jobs = strtol(arg, NULL, 10);
		if (a->jobs < 1 || a->jobs > 256)
			return cli_usage_error(&verb, "--jobs %s: expected 1 to 256", arg);
		break;
	}
	return 0;
}

/* Options may come before and after DIR (cli stops at the first operand). */
static bool
parse_args(int argc, char **argv, struct args *a, int *status)
{
	bool at_set = false;
	struct cli c;
	int id;

	memset(a, 0, sizeof(*a));
	a->at = 2.0 / 3.0;
	a->before = -1;
	a->jobs = 1;
	cli_init(&c, &verb, argc, argv);
	for (;;) {
		if ((id = cli_next(&c)) == CLI_EXIT) {
			*status = c.status;
			return false;
		}
		if (id != CLI_END && (*status = apply(a, id, c.arg, &at_set)) != 0)
			return false;
		if (id != CLI_END)
			continue;
		if (c.optind >= c.argc)
			break;
		if (a->dir != NULL) {
			*status = cli_usage_error(&verb, "unexpected argument '%s': one directory "
						  "at a time, or --all ROOT", c.argv[c.optind]);
			return false;
		}
		a->dir = c.argv[c.optind];
		cli_init(&c, &verb, c.argc - c.optind, c.argv + c.optind);
	}
	*status = check_args(a, at_set);
	return *status == 0;
}

static void
device_free(struct device *d)
{
	if (d->key != NULL)
		gnutls_privkey_deinit(d->key);
	est_cert_list_free(&d->crt);
	est_cert_info_free(&d->info);
	free(d->client_cert);
	free(d->key_path);
	memset(d, 0, sizeof(*d));
}

/* Mutual TLS presents chain.pem (intermediates included) when its first
 * certificate is cert.pem's, which enroll and rotate always write. */
static int
pick_client_cert(struct device *d, struct est_error *e)
{
	struct est_cert_list chain = { NULL, 0 };
	char *path = est_devdir_path(d->dir, "chain.pem");

	if (path == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	if (est_cert_load_bundle(path, &chain, NULL) == 0 &&
	    gnutls_x509_crt_equals(chain.crts[0], d->crt.crts[0])) {
		d->client_cert = path;
		path = NULL;
	} else {
		d->client_cert = est_devdir_path(d->dir, "cert.pem");
	}
	free(path);
	est_cert_list_free(&chain);
	return d->client_cert == NULL ? est_fail(e, EST_EINTERNAL, "out of memory") : 0;
}

static int
device_load(const char *dir, struct device *d, struct result *res, struct est_error *e)
{
	char *cp = est_devdir_path(dir, "cert.pem");
	size_t n = sizeof(res->thing);
	bool match = false;
	int rc, did;

	memset(d, 0, sizeof(*d));
	d->dir = dir;
	d->key_path = est_devdir_path(dir, "key.pem");
	if (cp == NULL || d->key_path == NULL) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	if ((rc = est_devdir_recover(dir, &did, e)) < 0)
		goto out;
	res->finished_swap = did == 1;
	if ((rc = est_cert_load_bundle(cp, &d->crt, e)) < 0 ||
	    (rc = est_key_load(d->key_path, &d->key, e)) < 0 ||
	    (rc = est_cert_key_match(d->crt.crts[0], d->key, &match, e)) < 0 ||
	    (rc = est_cert_info(d->crt.crts[0], &d->info, e)) < 0)
		goto out;
	if (!match) {
		rc = est_fail(e, EST_EDATA, "key.pem is not the key of cert.pem");
		goto out;
	}
	if (gnutls_x509_crt_get_dn_by_oid(d->crt.crts[0], GNUTLS_OID_X520_COMMON_NAME, 0, 0,
					  res->thing, &n) < 0)
		res->thing[0] = '\0';
	snprintf(res->serial, sizeof(res->serial), "%s", d->info.serial);
	res->not_after = d->info.not_after;
	rc = pick_client_cert(d, e);
out:
	free(cp);
	return rc;
}

static time_t
due_of(const struct args *a, gnutls_x509_crt_t crt)
{
	unsigned char serial[64];
	size_t n = sizeof(serial);

	if (gnutls_x509_crt_get_serial(crt, serial, &n) < 0)
		n = 0;
	return est_devdir_due(gnutls_x509_crt_get_activation_time(crt),
			      gnutls_x509_crt_get_expiration_time(crt), a->at, a->before, serial, n);
}

/* The subjectAltNames of CRT as est_csr_build takes them ("dns:...").
 * RFC 7030 4.2.2 wants them identical in the renewal request. */
static int
cert_sans(gnutls_x509_crt_t crt, char *sans[MAX_SANS], size_t *n, struct est_error *e)
{
	char buf[1024], ip[INET6_ADDRSTRLEN];
	size_t size;
	unsigned i;
	int rc;

	for (i = 0, *n = 0;; i++) {
		size = sizeof(buf) - 1;
		rc = gnutls_x509_crt_get_subject_alt_name(crt, i, buf, &size, NULL);
		if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
			return 0;
		if (rc < 0 || *n == MAX_SANS)
			return est_fail(e, EST_EDATA, "cert.pem: subjectAltName %u: %s", i + 1,
					rc < 0 ? gnutls_strerror(rc) : "too many");
		buf[size] = '\0';
		if (rc == GNUTLS_SAN_IPADDRESS &&
		    inet_ntop(size == 4 ? AF_INET : AF_INET6, buf, ip, sizeof(ip)) == NULL)
			return est_fail(e, EST_EDATA, "cert.pem: subjectAltName %u: a bad address", i + 1);
		if (rc == GNUTLS_SAN_DNSNAME || rc == GNUTLS_SAN_URI || rc == GNUTLS_SAN_IPADDRESS)
			rc = asprintf(&sans[*n], "%s:%s", rc == GNUTLS_SAN_DNSNAME ? "dns" :
				      rc == GNUTLS_SAN_URI ? "uri" : "ip",
				      rc == GNUTLS_SAN_IPADDRESS ? ip : buf);
		else
			return est_fail(e, EST_EDATA, "cert.pem: subjectAltName %u is of a kind "
					"estctl cannot request again (only DNS, URI and IP)", i + 1);
		if (rc < 0)
			return est_fail(e, EST_EINTERNAL, "out of memory");
		(*n)++;
	}
}

/* The profile to carry again: est.json's (the enrollment's), else the one
 * in the certificate; the server decides on it anew (policy may have changed). */
static int
pick_profile(const struct device *d, struct est_devdir_meta *m, const struct result *res,
	     struct est_profile *tmp, const struct est_profile **out, struct est_error *e)
{
	bool found = false;
	int rc;

	if (m->have_profile) {
		*out = &m->profile;
	} else {
		if ((rc = est_cert_profile(d->crt.crts[0], tmp, &found, e)) < 0)
			return rc;
		if (!found)
			return est_fail(e, EST_ECONFIG, "no device profile to carry: %s has no "
					"IoTDetails and the certificate holds none", EST_DEVDIR_META);
		*out = tmp;
	}
	if (strcmp((*out)->thing_name, res->thing) != 0)
		return est_fail(e, EST_EDATA, "the profile is for %s, the certificate for CN=%s",
				(*out)->thing_name, res->thing);
	return 0;
}

static int
same_subject(gnutls_x509_crt_t crt, gnutls_x509_crq_t crq, struct est_error *e)
{
	gnutls_datum_t a = { NULL, 0 }, b = { NULL, 0 };
	int rc = 0;

	if (gnutls_x509_crt_get_dn3(crt, &a, 0) < 0 || gnutls_x509_crq_get_dn3(crq, &b, 0) < 0)
		rc = est_fail(e, EST_EDATA, "cert.pem: the subject cannot be read");
	else if (a.size != b.size || memcmp(a.data, b.data, a.size) != 0)
		rc = est_fail(e, EST_EDATA, "cert.pem: subject %s cannot be requested again "
			      "(estctl requests CN=<ThingName>, RFC 7030 4.2.2 wants it identical)",
			      (char *)a.data);
	gnutls_free(a.data);
	gnutls_free(b.data);
	return rc;
}

/* The renewal request: a new key of the current key's type (its PEM in
 * KEY_PEM), or the current key with --keep-key (KEY_PEM left empty). */
struct request {
	struct est_secret key_pem;
	gnutls_x509_crq_t crq;
	gnutls_datum_t der;
};

static void
request_free(struct request *q)
{
	est_secret_free(&q->key_pem);
	if (q->crq != NULL)
		gnutls_x509_crq_deinit(q->crq);
	gnutls_free(q->der.data);
	memset(q, 0, sizeof(*q));
}

static int
new_key(const struct device *d, struct request *q, gnutls_privkey_t *key, struct est_error *e)
{
	enum est_key_type t = est_key_type_of(d->key);
	gnutls_x509_privkey_t x = NULL;
	int rc;

	if (t == EST_KEY__MAX || t == EST_KEY_AES256)
		t = EST_KEY_EC_P256;
	if ((rc = est_key_generate(t, &x, e)) < 0 || (rc = est_key_export_pem(x, &q->key_pem, e)) < 0)
		goto out;
	if ((rc = gnutls_privkey_init(key)) < 0 ||
	    (rc = gnutls_privkey_import_x509(*key, x, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE)) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "key: %s", gnutls_strerror(rc));
		goto out;
	}
	x = NULL;       /* *KEY owns it now */
out:
	if (x != NULL)
		gnutls_x509_privkey_deinit(x);
	return rc < 0 ? rc : 0;
}

static int
make_request(const struct args *a, const struct device *d, const struct est_profile *p,
	     struct request *q, struct est_error *e)
{
	gnutls_privkey_t fresh = NULL;
	char *sans[MAX_SANS];
	size_t i, n = 0;
	int rc;

	memset(q, 0, sizeof(*q));
	if ((rc = cert_sans(d->crt.crts[0], sans, &n, e)) < 0 ||
	    (!a->keep_key && (rc = new_key(d, q, &fresh, e)) < 0))
		goto out;
	if ((rc = est_csr_build(fresh != NULL ? fresh : d->key, p, (const char *const *)sans, n,
				NULL, &q->crq, e)) < 0 ||
	    (rc = same_subject(d->crt.crts[0], q->crq, e)) < 0 ||
	    (rc = est_csr_export(q->crq, 1, &q->der, e)) < 0)
		goto out;
out:
	for (i = 0; i < n; i++)
		free(sans[i]);
	if (fresh != NULL)
		gnutls_privkey_deinit(fresh);
	return rc;
}

/* Server and trust: the command line, else est.json, else DIR/ca.pem. */
static int
client_new(const struct args *a, const struct device *d, const struct est_devdir_meta *m,
	   struct est_client **c, struct est_error *e)
{
	struct est_client_opts o = { 0 };
	const char *ca = a->cacert != NULL ? a->cacert : m->cacert;
	char *path = NULL;
	int rc;

	o.url = a->url != NULL ? a->url : m->url;
	o.label = a->label != NULL ? a->label : m->label;
	if (o.url == NULL)
		return est_fail(e, EST_ECONFIG, "no server: %s is missing (written by estctl "
				"enroll --config); give --url", EST_DEVDIR_META);
	if (ca == NULL && !m->system_store)
		ca = "ca.pem";
	if (ca != NULL && a->cacert == NULL && ca[0] != '/' &&
	    (path = est_devdir_path(d->dir, ca)) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	o.cacert = path != NULL ? path : ca;
	o.system_store = o.cacert == NULL;
	o.cert = d->client_cert;
	o.key = d->key_path;
	rc = est_client_new(&o, c, e);
	free(path);
	return rc;
}

static int
export_pems(const struct est_certs *reply, unsigned leaf, gnutls_datum_t *cert,
	    gnutls_datum_t *chain, struct est_error *e)
{
	gnutls_datum_t pem;
	unsigned char *p;
	unsigned i, k;

	if (gnutls_x509_crt_export2(reply->crt[leaf], GNUTLS_X509_FMT_PEM, cert) < 0)
		return est_fail(e, EST_EINTERNAL, "exporting the certificate");
	for (k = 0; k < reply->n; k++) {
		i = k == 0 ? leaf : k <= leaf ? k - 1 : k;      /* the leaf first */
		if (gnutls_x509_crt_export2(reply->crt[i], GNUTLS_X509_FMT_PEM, &pem) < 0)
			return est_fail(e, EST_EINTERNAL, "exporting certificate %u", i + 1);
		if ((p = gnutls_realloc(chain->data, chain->size + pem.size)) == NULL) {
			gnutls_free(pem.data);
			return est_fail(e, EST_EINTERNAL, "out of memory");
		}
		memcpy(p + chain->size, pem.data, pem.size);
		chain->data = p;
		chain->size += pem.size;
		gnutls_free(pem.data);
	}
	return 0;
}

/* The reply must be for the request, chain to DIR/ca.pem, and then take
 * the place of the current pair. */
static int
accept_reply(const struct args *a, const struct device *d, const struct request *q,
	     struct est_certs *reply, struct result *res, struct est_error *e)
{
	struct est_cert_list ca = { NULL, 0 };
	gnutls_datum_t cert = { NULL, 0 }, chain = { NULL, 0 };
	struct est_cert_info info = { 0 };
	struct est_certs view;
	char *cap = est_devdir_path(d->dir, "ca.pem");
	unsigned leaf;
	int rc;

	if (cap == NULL) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	if ((rc = est_cert_load_bundle(cap, &ca, e)) < 0)
		goto out;
	view.crt = ca.crts;
	view.n = ca.n;
	if ((rc = est_client_check_issued(reply, q->crq, &view, &leaf, e)) < 0 ||
	    (rc = export_pems(reply, leaf, &cert, &chain, e)) < 0 ||
	    (rc = est_cert_info(reply->crt[leaf], &info, e)) < 0 ||
	    (rc = est_devdir_swap(d->dir, a->keep_key ? NULL : &q->key_pem, &cert, &chain, e)) < 0)
		goto out;
	snprintf(res->prev_serial, sizeof(res->prev_serial), "%s", res->serial);
	snprintf(res->serial, sizeof(res->serial), "%s", info.serial);
	res->not_after = info.not_after;
	res->due_at = due_of(a, reply->crt[leaf]);
	res->action = ACT_RENEWED;
out:
	est_cert_info_free(&info);
	gnutls_free(cert.data);
	gnutls_free(chain.data);
	est_cert_list_free(&ca);
	free(cap);
	return rc;
}

static int
renew(const struct args *a, const struct device *d, struct result *res, struct est_error *e)
{
	struct est_devdir_meta m = { 0 };
	struct est_profile tmp = { 0 };
	const struct est_profile *p = NULL;
	struct request q = { { NULL, 0 }, NULL, { NULL, 0 } };
	struct est_client *c = NULL;
	struct est_result r = { 0 };
	struct est_request req = { .op = EST_OP_SIMPLEREENROLL };
	int rc;

	if ((rc = est_devdir_meta_read(d->dir, &m, e)) < 0 || (rc = client_new(a, d, &m, &c, e)) < 0 ||
	    (rc = pick_profile(d, &m, res, &tmp, &p, e)) < 0 || (rc = make_request(a, d, p, &q, e)) < 0)
		goto out;
	req.body = q.der.data;
	req.len = q.der.size;
	if ((rc = est_client_do(c, &req, &r, e)) < 0) {
		if (rc == -(int)EST_ETEMPFAIL) {
			res->retry_after = r.retry_after;
			est_fail(e, EST_ETEMPFAIL, "the server asks to come back in %ld s",
				 r.retry_after);
		}
		goto out;
	}
	rc = accept_reply(a, d, &q, &r.certs, res, e);
out:
	est_result_free(&r);
	est_client_free(c);
	request_free(&q);
	est_profile_free(&tmp);
	est_devdir_meta_free(&m);
	return rc;
}

/* Load DIR, decide, renew when due; everything lands in RES. */
static void
rotate_dir(const struct args *a, const char *dir, bool force, struct result *res)
{
	struct device d;
	char when[EST_CERT_TIME_LEN];
	time_t now = time(NULL);

	memset(res, 0, sizeof(*res));
	if (device_load(dir, &d, res, &res->err) < 0)
		goto failed;
	res->due_at = due_of(a, d.crt.crts[0]);
	if (now >= d.info.not_after) {
		/* mutual TLS with an expired certificate cannot work: not a retry matter */
		est_cert_time_format(d.info.not_after, when);
		est_fail(&res->err, EST_ENEGATIVE, "certificate expired on %s: re-bootstrap with "
			 "estctl enroll --config FILE --device %s --force, or ask an operator to "
			 "reset the device", when, res->thing[0] != '\0' ? res->thing : "NAME");
		goto failed;
	}
	if (!force && now < res->due_at) {
		res->action = ACT_NOT_DUE;
		goto out;
	}
	if (renew(a, &d, res, &res->err) < 0)
		goto failed;
	goto out;
failed:
	res->action = ACT_FAILED;
out:
	device_free(&d);
}

static void
set_time(json_t *o, const char *key, time_t t)
{
	char buf[EST_CERT_TIME_LEN];

	if (t == 0)
		return;
	est_cert_time_format(t, buf);
	json_object_set_new(o, key, json_string(buf));
}

static void
print_json(const char *dir, const struct result *r)
{
	json_t *o = json_pack("{s:s, s:s, s:s}", "dir", dir, "thing", r->thing,
			      "action", action_names[r->action]);
	char *s;

	if (r->serial[0] != '\0')
		json_object_set_new(o, "serial", json_string(r->serial));
	if (r->action == ACT_RENEWED)
		json_object_set_new(o, "previous_serial", json_string(r->prev_serial));
	set_time(o, "not_after", r->not_after);
	set_time(o, "due_at", r->due_at);
	if (r->action == ACT_FAILED) {
		json_object_set_new(o, "error", json_string(est_err_name(r->err.code)));
		json_object_set_new(o, "reason", json_string(r->err.msg));
		if (r->retry_after > 0)
			json_object_set_new(o, "retry_after", json_integer(r->retry_after));
	}
	if ((s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER)) != NULL)
		printf("%s\n", s);
	free(s);
	json_decref(o);
}

/* One line per directory: stdout says what happened, stderr why it failed. */
static void
print_result(const struct args *a, const char *dir, const struct result *r)
{
	char after[EST_CERT_TIME_LEN], due[EST_CERT_TIME_LEN];

	if (r->finished_swap)
		fprintf(stderr, "estctl rotate: %s: completed an interrupted renewal first\n", dir);
	if (r->action == ACT_FAILED)
		fprintf(stderr, "estctl rotate: %s: %s\n", dir, r->err.msg);
	est_cert_time_format(r->not_after, after);
	est_cert_time_format(r->due_at, due);
	if (a->json)
		print_json(dir, r);
	else if (r->action == ACT_RENEWED)
		printf("renewed %s: serial %s, valid until %s\n", dir, r->serial, after);
	else if (r->action == ACT_NOT_DUE)
		printf("not due: %s renews after %s\n", dir, due);
	fflush(stdout);
}

static int
status_of(const struct result *r)
{
	return r->action == ACT_FAILED ? est_exit_code(r->err.code) : 0;
}

/* ---- --all ROOT: every directory directly under ROOT holding cert.pem. ---- */

static int
list_devices(const char *root, char ***dirs, size_t *n, struct est_error *e)
{
	struct dirent **ents = NULL;
	struct stat st;
	char *d, *c;
	int i, m;

	*dirs = NULL;
	*n = 0;
	if ((m = scandir(root, &ents, NULL, alphasort)) < 0)
		return est_fail(e, errno == ENOENT ? EST_ENOINPUT : EST_EIO, "%s: %s", root,
				strerror(errno));
	if ((*dirs = calloc((size_t)m + 1, sizeof(char *))) == NULL)
		m = 0;
	for (i = 0; i < m; i++) {
		d = ents[i]->d_name[0] != '.' ? est_devdir_path(root, ents[i]->d_name) : NULL;
		c = d != NULL ? est_devdir_path(d, "cert.pem") : NULL;
		if (c != NULL && stat(d, &st) == 0 && S_ISDIR(st.st_mode) && access(c, F_OK) == 0)
			(*dirs)[(*n)++] = d;
		else
			free(d);
		free(c);
	}
	for (i = 0; i < (m > 0 ? m : 0); i++)
		free(ents[i]);
	free(ents);
	return *dirs == NULL ? est_fail(e, EST_EINTERNAL, "out of memory") : 0;
}

struct slot {
	enum action action;
	int status;
};

static void
run_one(const struct args *a, const char *dir, struct slot *s)
{
	struct result r;

	rotate_dir(a, dir, a->force, &r);
	print_result(a, dir, &r);
	s->action = r.action;
	s->status = status_of(&r);
}

/* N directories, up to --jobs at once in child processes whose outcomes
 * come back through shared memory. */
static int
run_jobs(const struct args *a, char **dirs, size_t n, struct slot *slots)
{
	size_t i, running = 0;
	pid_t pid;

	for (i = 0; i < n; i++) {
		if (a->jobs == 1) {
			run_one(a, dirs[i], &slots[i]);
			continue;
		}
		for (; running >= (size_t)a->jobs; running--)
			wait(NULL);
		fflush(stdout);
		if ((pid = fork()) < 0) {
			slots[i].action = ACT_FAILED;
			slots[i].status = 70;
			fprintf(stderr, "estctl rotate: %s: fork: %s\n", dirs[i], strerror(errno));
			continue;
		}
		if (pid == 0) {
			run_one(a, dirs[i], &slots[i]);
			_exit(0);
		}
		running++;
	}
	while (running-- > 0)
		wait(NULL);
	return 0;
}

static int
rotate_all(const struct args *a, struct est_error *e)
{
	struct slot *slots = MAP_FAILED;
	char **dirs = NULL;
	size_t i, n = 0, count[3] = { 0 };
	int rc, status = 0;

	if ((rc = list_devices(a->root, &dirs, &n, e)) < 0)
		goto out;
	if (n == 0) {
		rc = est_fail(e, EST_ENOINPUT, "%s: no device directory (one holding cert.pem)",
			      a->root);
		goto out;
	}
	slots = mmap(NULL, n * sizeof(*slots), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
		     -1, 0);
	if (slots == MAP_FAILED) {
		rc = est_fail(e, EST_EINTERNAL, "mmap: %s", strerror(errno));
		goto out;
	}
	for (i = 0; i < n; i++)
		slots[i] = (struct slot){ ACT_FAILED, 70 };     /* a child that died says so */
	run_jobs(a, dirs, n, slots);
	for (i = 0; i < n; i++) {
		count[slots[i].action]++;
		if (status == 0)
			status = slots[i].status;
	}
	fprintf(stderr, "estctl rotate: %zu renewed, %zu not due, %zu failed\n",
		count[ACT_RENEWED], count[ACT_NOT_DUE], count[ACT_FAILED]);
	rc = status;
out:
	if (slots != MAP_FAILED)
		munmap(slots, n * sizeof(*slots));
	for (i = 0; dirs != NULL && i < n; i++)
		free(dirs[i]);
	free(dirs);
	return rc;
}

/* ---- --watch: one directory, for a service manager. ---- */

static volatile sig_atomic_t stopping;

static void
on_stop(int sig)
{
	(void)sig;
	stopping = 1;
}

/* Sleep S seconds or until SIGTERM/SIGINT. They are blocked everywhere
 * else, so one that comes during a renewal is seen here, after the swap,
 * rather than cutting it short. True when told to stop. */
static bool
nap(long s, const sigset_t *open)
{
	time_t end = time(NULL) + s, now;
	struct timespec ts = { s, 0 };

	while (!stopping) {
		if (ppoll(NULL, 0, &ts, open) == 0 || (now = time(NULL)) >= end)
			return false;
		ts.tv_sec = end - now;
	}
	return true;
}

/* 1 min, 2, 4 ... up to 6 h after consecutive failures; each wait is drawn
 * from its upper half so devices that failed together do not retry together. */
static long
backoff(unsigned failures)
{
	long b = BACKOFF_MIN;
	unsigned i, r = 0;

	for (i = 1; i < failures && b < BACKOFF_MAX; i++)
		b *= 2;
	if (b > BACKOFF_MAX)
		b = BACKOFF_MAX;
	(void)gnutls_rnd(GNUTLS_RND_NONCE, &r, sizeof(r));
	return b / 2 + (long)(r % (unsigned)(b / 2 + 1));
}

/* What may get better by waiting: the server, the network, its verdict, the disk. */
static bool
retryable(enum est_err code)
{
	return code == EST_EUNAVAIL || code == EST_ETEMPFAIL || code == EST_EPROTO ||
	       code == EST_EREFUSED || code == EST_EIO;
}

static long
next_wait(const struct result *r, unsigned failures)
{
	time_t now = time(NULL);
	long w;

	if (r->action != ACT_FAILED)
		w = (long)(r->due_at - now);
	else
		w = r->retry_after > 0 ? r->retry_after : backoff(failures);
	if (r->action == ACT_FAILED && r->not_after - 60 > now && w > r->not_after - 60 - now)
		w = (long)(r->not_after - 60 - now);    /* one last try before it expires */
	return w < 1 ? 1 : w > WATCH_MAX_SLEEP ? WATCH_MAX_SLEEP : w;
}

static int
watch(const struct args *a)
{
	struct sigaction sa;
	sigset_t block, open;
	struct result r;
	bool force = a->force;
	unsigned failures = 0;
	long w;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;        /* no SA_RESTART: the wait must end */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &open);
	sigdelset(&open, SIGTERM);
	sigdelset(&open, SIGINT);
	for (;;) {
		rotate_dir(a, a->dir, force, &r);
		force = false;
		print_result(a, a->dir, &r);
		if (r.action == ACT_FAILED && !retryable(r.err.code))
			return status_of(&r);
		failures = r.action == ACT_FAILED ? failures + 1 : 0;
		w = next_wait(&r, failures);
		if (r.action == ACT_FAILED)
			fprintf(stderr, "estctl rotate: %s: trying again in %ld s\n", a->dir, w);
		if (nap(w, &open))
			return 0;
	}
}

int
cmd_rotate(int argc, char **argv)
{
	struct est_error e = { 0 };
	struct result r;
	struct args a;
	int status;

	if (!parse_args(argc, argv, &a, &status))
		return status;
	if (a.root != NULL) {
		status = rotate_all(&a, &e);
		return status < 0 ? cli_fail(&verb, &e) : status;
	}
	if (a.watch)
		return watch(&a);
	rotate_dir(&a, a.dir, a.force, &r);
	print_result(&a, a.dir, &r);
	return status_of(&r);
}
