/* estctl enroll: send a CSR (or a sealed CSR) to an EST server, wait out its
 * 202s, check the certificate it returns (key, subject, chain to the CA from
 * cacerts) and print it. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "b64.h"
#include "cli.h"
#include "client.h"
#include "commands.h"
#include "csr.h"
#include "env.h"
#include "file.h"

enum { OPT_CSR = CLI_LONG, OPT_CACERT, OPT_PIN, OPT_USER, OPT_PASSWORD_FILE, OPT_CERT, OPT_KEY,
       OPT_MAX_WAIT, OPT_REENROLL };

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
	{ 0, NULL, NULL, NULL }
};

static const struct cli_verb verb = {
	"enroll", "--url URL [--label L] --csr FILE|- [--cacert F | --pin SHA256:HEX] "
	"[--user U --password-file F | --cert F --key F] [--max-wait DURATION]",
	"enroll with an EST server: send a CSR, print the certificate", opts, ""
};

struct args {
	struct est_client_opts client;
	const char *csr;
	const char *password_file;
	long long max_wait;
	bool reenroll;
};

/* The CSR to send: DER, the content type it goes with, and (when it is not
 * sealed) the parsed request to check the reply against. */
struct input {
	gnutls_datum_t der;
	int sealed;
	gnutls_x509_crq_t crq;
};

static int
check_args(const struct args *a)
{
	unsigned char sha[32];
	struct est_error e;
	char *base = NULL;

	if (a->client.url == NULL)
		return cli_usage_error(&verb, "--url is required");
	if (est_client_base_url(a->client.url, a->client.label, &base, &e) < 0)
		return cli_usage_error(&verb, "%s", e.msg);
	free(base);
	if (a->client.pin != NULL && est_client_pin_parse(a->client.pin, sha, &e) < 0)
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
			return est_fail(e, EST_ETEMPFAIL, "%s: the server asks to come back in %ld s, "
					"past --max-wait (%lld s); run again later",
					est_op_names[r->op], res->retry_after, max_wait);
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

int
cmd_enroll(int argc, char **argv)
{
	struct est_error e = { 0 };
	struct args a;
	int status;

	if (!parse_args(argc, argv, &a, &status))
		return status;
	if (enroll_one(&a, &e) < 0)
		return cli_fail(&verb, &e);
	return 0;
}
