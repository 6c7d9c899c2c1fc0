/* estctl enroll: send a CSR (or a sealed CSR) to an EST server, wait out its
 * 202s, check the certificate it returns (key, subject, chain to the CA from
 * cacerts) and print it. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "b64.h"
#include "cert.h"
#include "cli.h"
#include "client.h"
#include "commands.h"
#include "../lib/config.h"
#include "csr.h"
#include "devdir.h"
#include "env.h"
#include "file.h"
#include "key.h"

enum { OPT_CSR = CLI_LONG, OPT_CACERT, OPT_PIN, OPT_USER, OPT_PASSWORD_FILE, OPT_CERT, OPT_KEY,
       OPT_MAX_WAIT, OPT_REENROLL, OPT_FORCE, OPT_JSON };

#define MAX_DEVICE_ARGS 64

static const struct cli_opt opts[] = {
	{ 'u', "url", "URL", "the EST server (ESTAPIURL); /.well-known/est/ is appended unless present" },
	{ 'l', "label", "LABEL", "the CA label: requests go to /.well-known/est/LABEL/" },
	{ OPT_CSR, "csr", "FILE", "the CSR (PEM, DER or base64) or sealed CSR (DER or base64); - for stdin" },
	{ OPT_CACERT, "cacert", "FILE", "trust anchors for the server's TLS certificate "
	  "(default: the system's store)" },
	{ OPT_PIN, "pin", "SHA256:HEX", "bootstrap: trust the CA certificate with this fingerprint" },
	{ OPT_USER, "user", "USER", "HTTP Basic user name" },
	{ OPT_PASSWORD_FILE, "password-file", "FILE", "HTTP Basic password: the file's first line" },
	{ OPT_CERT, "cert", "FILE", "client certificate for mutual TLS (with --key)" },
	{ OPT_KEY, "key", "FILE", "the client certificate's private key (file or pkcs11: URI)" },
	{ OPT_MAX_WAIT, "max-wait", "DURATION", "wait out 202 answers this long at most "
	  "(default 5m; 0: do not wait)" },
	{ OPT_REENROLL, "reenroll", NULL, "use simplereenroll (with --cert/--key: renew that certificate)" },
	{ 'c', "config", "FILE", "enroll the devices of this client config instead of one CSR" },
	{ 'o', "out", "DIR", "with --config: where <ThingName>/ directories go (default: OutDir, .)" },
	{ 'j', "jobs", "N", "with --config: enrollments in flight at once (default 8)" },
	{ 'd', "device", "NAME", "with --config: only this device (repeatable)" },
	{ OPT_FORCE, "force", NULL, "with --config: enroll again, with a new key, over existing devices" },
	{ OPT_JSON, "json", NULL, "with --config: one JSON object per device on standard output" },
	{ 0, NULL, NULL, NULL }
};

static const struct cli_verb verb = {
	"enroll", "--url URL [--label L] --csr FILE|- [--cacert F | --pin SHA256:HEX] "
	"[--user U --password-file F | --cert F --key F] [--max-wait DURATION]\n"
	"       estctl enroll --config FILE [--out DIR] [--jobs N] [--device NAME]... [--force] [--json]",
	"enroll with an EST server: send a CSR, print the certificate", opts, ""
};

struct args {
	struct est_client_opts client;
	const char *csr;
	const char *password_file;
	long long max_wait;
	bool reenroll;
	const char *config;
	const char *out;
	long jobs;
	const char *devices[MAX_DEVICE_ARGS];
	size_t ndevices;
	bool force, json;
};

/* The CSR to send: DER, the content type it goes with, and (when it is not
 * sealed) the parsed request to check the reply against. */
struct input {
	gnutls_datum_t der;
	int sealed;
	gnutls_x509_crq_t crq;
};

static int
check_args(struct args *a)
{
	struct est_error e;

	if (a->config != NULL && (a->client.url != NULL || a->csr != NULL || a->reenroll))
		return cli_usage_error(&verb, "--config takes the URL from the config and makes the CSRs: "
				       "no --url, --csr or --reenroll with it");
	if (a->config == NULL && (a->out != NULL || a->ndevices > 0 || a->force || a->json))
		return cli_usage_error(&verb, "--out, --device, --force and --json go with --config");
	if (a->config != NULL)
		return 0;
	if (est_client_target_check(&a->client, &e) < 0)
		return cli_usage_error(&verb, "%s", e.msg);
	if (a->csr == NULL)
		return cli_usage_error(&verb, "--csr is required");
	if ((a->client.user == NULL) != (a->password_file == NULL))
		return cli_usage_error(&verb, "--user and --password-file go together");
	if ((a->client.cert == NULL) != (a->client.key == NULL))
		return cli_usage_error(&verb, "--cert and --key go together");
	if (a->client.user != NULL && strchr(a->client.user, ':') != NULL)
		return cli_usage_error(&verb, "--user: a user name cannot hold ':'");
	return 0;
}

static bool
parse_args(int argc, char **argv, struct args *a, int *status)
{
	struct cli c;
	int id;

	memset(a, 0, sizeof(*a));
	a->max_wait = 300;
	a->jobs = 8;
	cli_init(&c, &verb, argc, argv);
	while ((id = cli_next(&c)) != CLI_END) {
		switch (id) {
		case CLI_EXIT:
			*status = c.status;
			return false;
		case 'u': a->client.url = c.arg; break;
		case 'l': a->client.label = c.arg; break;
		case OPT_CSR: a->csr = c.arg; break;
		case OPT_CACERT: a->client.cacert = c.arg; break;
		case OPT_PIN: a->client.pin = c.arg; break;
		case OPT_USER: a->client.user = c.arg; break;
		case OPT_PASSWORD_FILE: a->password_file = c.arg; break;
		case OPT_CERT: a->client.cert = c.arg; break;
		case OPT_KEY: a->client.key = c.arg; break;
		case OPT_REENROLL: a->reenroll = true; break;
		case 'c': a->config = c.arg; break;
		case 'o': a->out = c.arg; break;
		case OPT_FORCE: a->force = true; break;
		case OPT_JSON: a->json = true; break;
		case 'j':
			a->jobs = strtol(c.arg, NULL, 10);
			if (a->jobs < 1 || a->jobs > 1024) {
				*status = cli_usage_error(&verb, "--jobs %s: expected 1 to 1024", c.arg);
				return false;
			}
			break;
		case 'd':
			if (a->ndevices == MAX_DEVICE_ARGS) {
				*status = cli_usage_error(&verb, "--device: at most %d", MAX_DEVICE_ARGS);
				return false;
			}
			a->devices[a->ndevices++] = c.arg;
			break;
		case OPT_MAX_WAIT:
			if (cli_parse_duration(c.arg, &a->max_wait) < 0) {
				*status = cli_usage_error(&verb, "--max-wait %s: expected a duration "
							  "such as 90s, 10m or 1h", c.arg);
				return false;
			}
			break;
		}
	}
	if (c.optind < argc) {
		*status = cli_usage_error(&verb, "unexpected argument '%s'", argv[c.optind]);
		return false;
	}
	a->client.system_store = a->client.cacert == NULL && a->client.pin == NULL;
	*status = check_args(a);
	return *status == 0;
}

/* The password is the file's first line; it never goes on the command line. */
static int
read_password(const char *path, struct est_secret *pw, struct est_error *e)
{
	size_t n;
	int rc;

	if ((rc = est_file_read_secret(path, 4096, pw, e)) < 0)
		return rc;
	n = strcspn((char *)pw->data, "\r\n");
	gnutls_memset(pw->data + n, 0, pw->len - n);
	pw->len = n;
	if (pw->len == 0)
		return est_fail(e, EST_EDATA, "%s: the password is empty", path);
	return 0;
}

static void
input_free(struct input *in)
{
	gnutls_free(in->der.data);
	in->der.data = NULL;
	if (in->crq != NULL)
		gnutls_x509_crq_deinit(in->crq);
	in->crq = NULL;
}

/* A sealed CSR comes as DER or base64 of it; anything else must be a CSR. */
static int
sealed_der(const gnutls_datum_t *raw, gnutls_datum_t *der)
{
	gnutls_datum_t tmp = { NULL, 0 };

	if (raw->size > 0 && raw->data[0] == 0x30 && est_env_is_sealed(raw->data, raw->size)) {
		if ((der->data = gnutls_malloc(raw->size)) == NULL)
			return -1;
		memcpy(der->data, raw->data, raw->size);
		der->size = raw->size;
		return 1;
	}
	if (!est_b64_looks_like(raw->data, raw->size) ||
	    est_b64_decode(raw->data, raw->size, &tmp, NULL) < 0)
		return 0;
	if (!est_env_is_sealed(tmp.data, tmp.size)) {
		gnutls_free(tmp.data);
		return 0;
	}
	*der = tmp;
	return 1;
}

static int
read_input(const char *path, struct input *in, struct est_error *e)
{
	const char *name = est_path_is_std(path) ? "standard input" : path;
	gnutls_datum_t raw = { NULL, 0 };
	int rc;

	memset(in, 0, sizeof(*in));
	if ((rc = est_file_read(path, EST_FILE_MAX, &raw, e)) < 0)
		return rc;
	if ((rc = sealed_der(&raw, &in->der)) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	if (rc == 1) {
		in->sealed = 1;
		rc = 0;
		goto out;
	}
	if ((rc = est_csr_parse(raw.data, raw.size, name, &in->crq, e)) < 0 ||
	    (rc = est_csr_verify(in->crq, e)) < 0 ||
	    (rc = est_csr_export(in->crq, 1, &in->der, e)) < 0) {
		est_error_prefix(e, "%s", name);
		input_free(in);
	}
out:
	gnutls_free(raw.data);
	return rc;
}

static void
sleep_s(long s)
{
	struct timespec ts = { s, 0 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* E holds the 202's "come back in N s (reason)": say why we do not. */
static int
past_max_wait(struct est_error *e, long long max_wait)
{
	char msg[sizeof(e->msg)];

	snprintf(msg, sizeof(msg), "%s", e->msg);
	return est_fail(e, EST_ETEMPFAIL, "%s, past --max-wait (%lld s); run again later", msg,
			max_wait);
}

/* POST the request until the server answers other than 202, or waiting
 * longer would pass MAX_WAIT seconds. */
static int
post(struct est_client *c, const struct est_request *r, long long max_wait,
     struct est_result *res, struct est_error *e)
{
	time_t start = time(NULL);
	long long spent;
	int rc;

	for (;;) {
		if ((rc = est_client_do(c, r, res, e)) != -(int)EST_ETEMPFAIL)
			return rc;
		spent = (long long)(time(NULL) - start);
		if (spent + res->retry_after > max_wait)
			return past_max_wait(e, max_wait);
		sleep_s(res->retry_after);
		est_result_free(res);
	}
}

static int
print_crt(gnutls_x509_crt_t crt, struct est_error *e)
{
	gnutls_datum_t pem = { NULL, 0 };
	int rc;

	if ((rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem)) < 0)
		return est_fail(e, EST_EINTERNAL, "exporting the certificate: %s", gnutls_strerror(rc));
	if (fwrite(pem.data, 1, pem.size, stdout) != pem.size)
		rc = est_fail(e, EST_EIO, "standard output: %s", strerror(errno));
	gnutls_free(pem.data);
	return rc < 0 ? rc : 0;
}

static int
enroll_one(const struct args *a, struct est_error *e)
{
	struct est_client_opts o = a->client;
	struct est_secret pw = { NULL, 0 };
	struct est_client *c = NULL;
	struct est_result res = { 0 };
	struct input in = { { NULL, 0 }, 0, NULL };
	struct est_request r = { .op = a->reenroll ? EST_OP_SIMPLEREENROLL : EST_OP_SIMPLEENROLL };
	unsigned leaf;
	int rc;

	if (a->password_file != NULL && (rc = read_password(a->password_file, &pw, e)) < 0)
		goto out;
	o.password = a->password_file != NULL ? &pw : NULL;
	if ((rc = read_input(a->csr, &in, e)) < 0 || (rc = est_client_new(&o, &c, e)) < 0 ||
	    (rc = est_client_cacerts(c, NULL, e)) < 0)
		goto out;
	r.body = in.der.data;
	r.len = in.der.size;
	r.sealed = in.sealed;
	if ((rc = post(c, &r, a->max_wait, &res, e)) < 0 ||
	    (rc = est_client_check_issued(&res.certs, in.crq, est_client_ca(c), &leaf, e)) < 0)
		goto out;
	rc = print_crt(res.certs.crt[leaf], e);
out:
	est_result_free(&res);
	est_client_free(c);
	input_free(&in);
	est_secret_free(&pw);
	return rc;
}

/* ---- The fleet form: every device of a config, N in flight. ---- */

enum outcome { OUT_PENDING, OUT_ENROLLED, OUT_SKIPPED, OUT_FAILED };
static const char *const outcome_names[] = { "pending", "enrolled", "already enrolled", "failed" };

struct dev {
	const char *name;
	const struct est_profile *profile;
	char *dir, *tmp;
	gnutls_x509_crq_t crq;
	gnutls_datum_t body;
	int sealed;
	time_t retry_at, started;
	int in_flight;
	bool had_dir;                   /* before this run: for refusal_hint() */
	/* Whose key: an interrupted run's, or one made by this run; and
	 * whether an answer left it unknown if the server registered it. */
	bool reused_key, made_key, uncertain;
	enum outcome outcome;
	struct est_error err;
};

struct fleet {
	const struct args *a;
	struct est_client_config cfg;
	struct est_client *client;
	struct est_secret kek;
	enum est_key_type key_type;
	const char *out;
	struct est_client_opts trust;   /* label and trust as resolved, for est.json */
	struct dev *devs;
	size_t ndevs, done, failed;
	int progress;
};

static char *
path_join(const char *dir, const char *name)
{
	size_t n = strlen(dir) + strlen(name) + 2;
	char *p = malloc(n);

	if (p != NULL)
		snprintf(p, n, "%s/%s", dir, name);
	return p;
}

/* Remove DIR and the regular files in it (only ours are ever there). */
static void
remove_dir(const char *dir)
{
	struct dirent *d;
	DIR *dp;
	int fd;

	if ((dp = opendir(dir)) == NULL)
		return;
	fd = dirfd(dp);
	while ((d = readdir(dp)) != NULL)
		if (strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0)
			unlinkat(fd, d->d_name, 0);
	closedir(dp);
	rmdir(dir);
}

static void
dev_fail(struct fleet *f, struct dev *d, const struct est_error *e)
{
	d->outcome = OUT_FAILED;
	d->err = *e;
	f->failed++;
	f->done++;
	/* Keep a key the server may hold a certificate for: the next run asks
	 * again with it (see dev_key). Others had nothing, or a plain refusal. */
	if (d->made_key && !d->uncertain)
		remove_dir(d->tmp);
}

/* A device whose directory already holds a valid certificate for its key,
 * chaining to the server's CA, is done. */
static int
already_enrolled(struct fleet *f, struct dev *d, struct est_error *e)
{
	struct est_cert_list crt = { NULL, 0 };
	struct est_certs one;
	gnutls_privkey_t key = NULL;
	char *cp = path_join(d->dir, "cert.pem"), *kp = path_join(d->dir, "key.pem");
	bool match = false;
	unsigned leaf;
	int rc = 0;

	if (cp == NULL || kp == NULL || est_cert_load_bundle(cp, &crt, e) < 0 ||
	    est_key_load(kp, &key, e) < 0 || est_cert_key_match(crt.crts[0], key, &match, e) < 0)
		goto out;
	one.crt = crt.crts;
	one.n = 1;
	rc = match && gnutls_x509_crt_get_expiration_time(crt.crts[0]) > time(NULL) &&
	     est_client_check_issued(&one, NULL, est_client_ca(f->client), &leaf, e) == 0;
out:
	if (key != NULL)
		gnutls_privkey_deinit(key);
	est_cert_list_free(&crt);
	free(cp);
	free(kp);
	return rc;
}

/* Remove the files of the partial directory DIR but its key.pem. */
static void
clean_partial(const char *dir)
{
	struct dirent *d;
	DIR *dp;

	if ((dp = opendir(dir)) == NULL)
		return;
	while ((d = readdir(dp)) != NULL)
		if (strcmp(d->d_name, ".") != 0 && strcmp(d->d_name, "..") != 0 &&
		    strcmp(d->d_name, "key.pem") != 0)
			unlinkat(dirfd(dp), d->d_name, 0);
	closedir(dp);
}

/* The key an interrupted run left in the partial directory, when it is one
 * of the configured type: that run's request may have been registered, and
 * a server then hands the certificate out again only to that key. */
static bool
reuse_key(struct fleet *f, struct dev *d, const char *kp, gnutls_privkey_t *key)
{
	struct est_error ignored;
	struct stat st;

	if (lstat(d->tmp, &st) != 0 || !S_ISDIR(st.st_mode) || lstat(kp, &st) != 0 ||
	    !S_ISREG(st.st_mode) || est_key_load(kp, key, &ignored) < 0)
		return false;
	if (est_key_type_of(*key) == f->key_type) {
		clean_partial(d->tmp);
		return true;
	}
	gnutls_privkey_deinit(*key);
	*key = NULL;
	return false;
}

/* The device's key, kept (0600) in its partial directory until the device
 * is complete: an interrupted run's, or a new one. */
static int
dev_key(struct fleet *f, struct dev *d, gnutls_privkey_t *key, struct est_error *e)
{
	gnutls_x509_privkey_t x = NULL;
	struct est_secret pem = { NULL, 0 };
	char *kp = path_join(d->tmp, "key.pem");
	int rc;

	if (kp == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	if ((d->reused_key = reuse_key(f, d, kp, key))) {
		rc = 0;
		goto out;
	}
	remove_dir(d->tmp);     /* what a killed run left behind, if unusable */
	if (mkdir(d->tmp, 0700) != 0) {
		rc = est_fail(e, EST_EIO, "%s: %s", d->tmp, strerror(errno));
		goto out;
	}
	d->made_key = true;
	if ((rc = est_key_generate(f->key_type, &x, e)) < 0 ||
	    (rc = est_key_export_pem(x, &pem, e)) < 0 ||
	    (rc = est_file_write(kp, pem.data, pem.len, EST_WRITE_EXCL | EST_WRITE_PRIVATE, e)) < 0)
		goto out;
	/* From here on *KEY owns X. */
	if ((rc = gnutls_privkey_init(key)) < 0 ||
	    (rc = gnutls_privkey_import_x509(*key, x, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE)) < 0)
		rc = est_fail(e, EST_EINTERNAL, "key: %s", gnutls_strerror(rc));
	else
		x = NULL;
out:
	if (x != NULL)
		gnutls_x509_privkey_deinit(x);
	est_secret_free(&pem);
	free(kp);
	return rc;
}

/* The device's key and the (sealed) CSR for it, with the config's profile. */
static int
dev_request(struct fleet *f, struct dev *d, struct est_error *e)
{
	gnutls_privkey_t key = NULL;
	gnutls_datum_t der = { NULL, 0 };
	int rc;

	if ((rc = dev_key(f, d, &key, e)) < 0 ||
	    (rc = est_csr_build(key, d->profile, NULL, 0, NULL, &d->crq, e)) < 0 ||
	    (rc = est_csr_export(d->crq, 1, &der, e)) < 0)
		goto out;
	if (f->kek.data != NULL) {
		rc = est_env_seal(&f->kek, f->cfg.kv_name, der.data, der.size, &d->body, e);
		d->sealed = 1;
	} else {
		d->body = der;
		der.data = NULL;
	}
out:
	gnutls_free(der.data);
	if (key != NULL)
		gnutls_privkey_deinit(key);
	return rc;
}

static int
write_pems(const char *dir, const char *name, gnutls_x509_crt_t *crts, unsigned n,
	   struct est_error *e)
{
	struct est_certs l = { crts, n };
	gnutls_datum_t pem = { NULL, 0 };
	char *p = path_join(dir, name);
	int rc;

	if (p == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	if ((rc = est_certs_pem(&l, &pem, e)) >= 0)
		rc = est_file_write(p, pem.data, pem.size, EST_WRITE_EXCL, e);
	free(pem.data);
	free(p);
	return rc;
}

/* est.json: what estctl rotate needs to renew the device later (server,
 * label, trust in the server, profile), with a copy of the trust anchors
 * given for this enrollment, so the directory can move to the device whole. */
static int
write_meta(struct fleet *f, struct dev *d, struct est_error *e)
{
	struct est_devdir_meta m = { .url = f->cfg.url, .label = (char *)f->trust.label,
				     .system_store = f->trust.system_store, .have_profile = true,
				     .profile = *d->profile };
	gnutls_datum_t ca = { NULL, 0 };
	char *p = NULL;
	int rc = 0;

	if (f->trust.cacert != NULL) {
		m.cacert = EST_DEVDIR_SERVER_CA;
		if ((p = est_devdir_path(d->tmp, EST_DEVDIR_SERVER_CA)) == NULL)
			return est_fail(e, EST_EINTERNAL, "out of memory");
		if ((rc = est_file_read(f->trust.cacert, EST_FILE_MAX, &ca, e)) == 0)
			rc = est_file_write(p, ca.data, ca.size, EST_WRITE_EXCL, e);
	}
	if (rc == 0)
		rc = est_devdir_meta_write(d->tmp, &m, e);
	gnutls_free(ca.data);
	free(p);
	return rc;
}

/* Files into the partial directory, then the directory into place in one
 * rename (an exchange with --force), so a reader sees all or nothing. */
static int
dev_commit(struct fleet *f, struct dev *d, struct est_certs *reply, unsigned leaf,
	   struct est_error *e)
{
	const struct est_certs *ca = est_client_ca(f->client);
	gnutls_x509_crt_t chain[16];
	unsigned i, n = 0;
	int rc;

	chain[n++] = reply->crt[leaf];
	for (i = 0; i < reply->n && n < 16; i++)
		if (i != leaf)
			chain[n++] = reply->crt[i];
	if ((rc = write_pems(d->tmp, "cert.pem", &reply->crt[leaf], 1, e)) < 0 ||
	    (rc = write_pems(d->tmp, "chain.pem", chain, n, e)) < 0 ||
	    (rc = write_pems(d->tmp, "ca.pem", ca->crt, ca->n, e)) < 0 ||
	    (rc = write_meta(f, d, e)) < 0)
		return rc;
	if (rename(d->tmp, d->dir) == 0)
		return 0;
	if ((errno == ENOTEMPTY || errno == EEXIST) && f->a->force &&
	    renameat2(AT_FDCWD, d->tmp, AT_FDCWD, d->dir, RENAME_EXCHANGE) == 0) {
		remove_dir(d->tmp);     /* now the previous pair */
		return 0;
	}
	return est_fail(e, EST_EIO, "%s: %s", d->dir, strerror(errno));
}

/* A refusal of a device this client already had something for is most likely
 * the server protecting the thing's registration (DESIGN.md 4.2); say what
 * can be done, for any server. */
static void
refusal_hint(const struct fleet *f, const struct dev *d, struct est_error *e)
{
	char msg[sizeof(e->msg)];

	snprintf(msg, sizeof(msg), "%s", e->msg);
	if (d->had_dir && f->a->force)
		snprintf(e->msg, sizeof(e->msg), "%s (a registered device renews with its current "
			 "certificate: estctl rotate %s --force; or the server's operator resets it)",
			 msg, d->dir);
	else if (d->reused_key)
		snprintf(e->msg, sizeof(e->msg), "%s (the request reused the key an interrupted run "
			 "left in %s: a server that registered that run's request but does not hand "
			 "its certificate out again, or whose device profile changed, needs its "
			 "operator to reset the device; remove %s to start over with a new key)",
			 msg, d->tmp, d->tmp);
}

static void
dev_result(struct fleet *f, struct dev *d, struct est_result *res)
{
	struct est_error e = { 0 };
	unsigned leaf;

	d->in_flight = 0;
	if (res->rc == -(int)EST_ETEMPFAIL &&
	    (long long)(time(NULL) - d->started) + res->retry_after <= f->a->max_wait) {
		d->retry_at = time(NULL) + res->retry_after;
		return;
	}
	/* Only a 4xx or a 202 says that nothing was issued for this request. */
	if (res->status != 202 && (res->status < 400 || res->status >= 500))
		d->uncertain = true;
	if (res->rc == -(int)EST_ETEMPFAIL)
		past_max_wait(&res->err, f->a->max_wait);
	if (res->rc == -(int)EST_EREFUSED)
		refusal_hint(f, d, &res->err);
	if (res->rc < 0) {
		dev_fail(f, d, &res->err);
		return;
	}
	if (est_client_check_issued(&res->certs, d->crq, est_client_ca(f->client), &leaf, &e) < 0 ||
	    dev_commit(f, d, &res->certs, leaf, &e) < 0) {
		dev_fail(f, d, &e);
		return;
	}
	d->outcome = OUT_ENROLLED;
	f->done++;
}

/* Decide what DEV needs: nothing (skip), a refusal, or a request. */
static void
dev_start(struct fleet *f, struct dev *d)
{
	struct est_error e = { 0 };
	struct stat st;

	if (stat(d->dir, &st) == 0) {
		d->had_dir = true;
		if (!f->a->force && already_enrolled(f, d, &e)) {
			d->outcome = OUT_SKIPPED;
			f->done++;
			return;
		}
		if (!f->a->force) {
			est_fail(&e, EST_EEXIST, "%s holds no valid certificate for its key; "
				 "--force enrolls a new key over it", d->dir);
			dev_fail(f, d, &e);
			return;
		}
	}
	if (dev_request(f, d, &e) < 0) {
		dev_fail(f, d, &e);
		return;
	}
	d->started = time(NULL);
	d->retry_at = d->started;
}

static int
dev_submit(struct fleet *f, struct dev *d, struct est_error *e)
{
	struct est_request r = { .op = EST_OP_SIMPLEENROLL, .body = d->body.data, .len = d->body.size,
				 .sealed = d->sealed, .user = d };

	d->in_flight = 1;
	return est_client_submit(f->client, &r, e);
}

static void
show_progress(const struct fleet *f)
{
	if (f->progress)
		fprintf(stderr, "\r\033[Kenroll: %zu/%zu done, %zu in flight, %zu failed", f->done,
			f->ndevs, est_client_pending(f->client), f->failed);
}

/* Start what may start, submit what is due, wait for one answer. */
static int
fleet_step(struct fleet *f, struct est_error *e)
{
	struct est_result res;
	time_t now = time(NULL), next = now + 1;
	size_t i;
	int rc;

	for (i = 0; i < f->ndevs; i++) {
		struct dev *d = &f->devs[i];

		if (d->outcome != OUT_PENDING || d->in_flight)
			continue;
		if (d->body.data == NULL && d->started == 0 &&
		    est_client_pending(f->client) < (size_t)f->a->jobs)
			dev_start(f, d);
		if (d->outcome != OUT_PENDING || d->body.data == NULL)
			continue;
		if (d->retry_at <= now && est_client_pending(f->client) < (size_t)f->a->jobs) {
			if ((rc = dev_submit(f, d, e)) < 0)
				return rc;
		} else if (d->retry_at > now && d->retry_at < next) {
			next = d->retry_at;
		}
	}
	show_progress(f);
	if ((rc = est_client_wait(f->client, (int)(next - now) * 1000, &res, e)) < 0)
		return rc;
	if (rc == 1) {
		dev_result(f, res.user, &res);
		est_result_free(&res);
	}
	return 0;
}

static void
report(const struct fleet *f)
{
	size_t i, n[4] = { 0 };
	json_t *o;
	char *s;

	if (f->progress)
		fputs("\r\033[K", stderr);
	for (i = 0; i < f->ndevs; i++) {
		const struct dev *d = &f->devs[i];

		n[d->outcome]++;
		if (f->a->json) {
			o = json_pack("{s:s, s:s, s:s}", "device", d->name, "result",
				      d->outcome == OUT_SKIPPED ? "skipped" : outcome_names[d->outcome],
				      "dir", d->dir);
			if (d->outcome == OUT_FAILED) {
				json_object_set_new(o, "error", json_string(est_err_name(d->err.code)));
				json_object_set_new(o, "reason", json_string(d->err.msg));
			}
			if ((s = json_dumps(o, JSON_COMPACT)) != NULL)
				printf("%s\n", s);
			free(s);
			json_decref(o);
		} else if (d->outcome == OUT_FAILED) {
			fprintf(stderr, "estctl enroll: %s: %s\n", d->name, d->err.msg);
		}
	}
	fprintf(stderr, "estctl enroll: %zu enrolled, %zu already enrolled, %zu failed\n",
		n[OUT_ENROLLED], n[OUT_SKIPPED], n[OUT_FAILED]);
}

static int
fleet_devices(struct fleet *f, struct est_error *e)
{
	const struct args *a = f->a;
	const struct est_device *dv;
	size_t i, n = a->ndevices > 0 ? a->ndevices : f->cfg.ndevices;
	char hidden[EST_THING_NAME_MAX + 16];

	if ((f->devs = calloc(n, sizeof(*f->devs))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	for (i = 0; i < n; i++) {
		dv = a->ndevices > 0 ? est_config_device(&f->cfg, a->devices[i]) : &f->cfg.devices[i];
		if (dv == NULL)
			return est_fail(e, EST_EUSAGE, "--device %s: no such device in %s",
					a->devices[i], f->cfg.path);
		if (!est_thing_name_valid(dv->profile.thing_name))
			return est_fail(e, EST_EDATA, "%s: ThingName %s cannot be a directory name",
					f->cfg.path, dv->profile.thing_name);
		f->devs[f->ndevs].name = dv->profile.thing_name;
		f->devs[f->ndevs].profile = &dv->profile;
		snprintf(hidden, sizeof(hidden), ".%s.partial", dv->profile.thing_name);
		f->devs[f->ndevs].dir = path_join(f->out, dv->profile.thing_name);
		f->devs[f->ndevs].tmp = path_join(f->out, hidden);
		if (f->devs[f->ndevs++].tmp == NULL || f->devs[f->ndevs - 1].dir == NULL)
			return est_fail(e, EST_EINTERNAL, "out of memory");
	}
	return 0;
}

static int
fleet_setup(struct fleet *f, struct est_secret *pw, struct est_error *e)
{
	struct est_client_opts o = f->a->client;
	int rc;

	if ((rc = est_config_load(f->a->config, &f->cfg, e)) < 0)
		return rc;
	for (size_t i = 0; i < f->cfg.nwarnings; i++)
		fprintf(stderr, "estctl enroll: warning: %s\n", f->cfg.warnings[i]);
	f->out = f->a->out != NULL ? f->a->out : f->cfg.out_dir != NULL ? f->cfg.out_dir : ".";
	if ((rc = est_key_type_parse(f->cfg.key_type != NULL ? f->cfg.key_type : "ec-p256",
				     &f->key_type, e)) < 0)
		return est_fail(e, EST_ECONFIG, "%s: KeyType: %s", f->cfg.path, e->msg);
	if (f->cfg.enrollment_key_file != NULL &&
	    (rc = est_enrkey_load(f->cfg.enrollment_key_file, &f->kek, e)) < 0)
		return rc;
	if (f->kek.data != NULL && f->cfg.kv_name == NULL)
		return est_fail(e, EST_ECONFIG, "%s: EnrollmentKeyFile needs KV_Name", f->cfg.path);
	if (mkdir(f->out, 0755) != 0 && errno != EEXIST)
		return est_fail(e, EST_EIO, "%s: %s", f->out, strerror(errno));
	if ((rc = fleet_devices(f, e)) < 0)
		return rc;
	o.url = f->cfg.url;
	o.label = o.label != NULL ? o.label : f->cfg.label;
	o.cacert = o.cacert != NULL ? o.cacert : f->cfg.cacert;
	o.system_store = o.cacert == NULL && o.pin == NULL;
	o.password = f->a->password_file != NULL ? pw : NULL;
	f->trust = o;
	if ((rc = est_client_new(&o, &f->client, e)) < 0)
		return rc;
	return est_client_cacerts(f->client, NULL, e);
}

static void
fleet_free(struct fleet *f)
{
	size_t i;

	for (i = 0; f->devs != NULL && i < f->ndevs; i++) {
		if (f->devs[i].crq != NULL)
			gnutls_x509_crq_deinit(f->devs[i].crq);
		gnutls_free(f->devs[i].body.data);
		free(f->devs[i].dir);
		free(f->devs[i].tmp);
	}
	free(f->devs);
	est_client_free(f->client);
	est_secret_free(&f->kek);
	est_config_free(&f->cfg);
}

static int
enroll_fleet(const struct args *a, struct est_error *e)
{
	struct fleet f;
	struct est_secret pw = { NULL, 0 };
	size_t i;
	int rc, status = 0;

	memset(&f, 0, sizeof(f));
	f.a = a;
	f.progress = isatty(STDERR_FILENO) && !a->json;
	if ((a->password_file != NULL && (rc = read_password(a->password_file, &pw, e)) < 0) ||
	    (rc = fleet_setup(&f, &pw, e)) < 0)
		goto out;
	while (f.done < f.ndevs)
		if ((rc = fleet_step(&f, e)) < 0)
			goto out;
	report(&f);
	for (i = 0; i < f.ndevs && status == 0; i++)
		if (f.devs[i].outcome == OUT_FAILED)
			status = est_exit_code(f.devs[i].err.code);
	rc = status;
out:
	fleet_free(&f);
	est_secret_free(&pw);
	return rc;
}

int
cmd_enroll(int argc, char **argv)
{
	struct est_error e = { 0 };
	struct args a;
	int status;

	if (!parse_args(argc, argv, &a, &status))
		return status;
	if (a.config != NULL) {
		status = enroll_fleet(&a, &e);
		return status < 0 ? cli_fail(&verb, &e) : status;
	}
	if (enroll_one(&a, &e) < 0)
		return cli_fail(&verb, &e);
	return 0;
}
