/* estctl server: serve a state directory over HTTPS (RFC 7030), and the
 * operator's verbs on it: init, passwd, approve, list, show, revoke, reset.
 * The EST logic is in lib/srv.c, the HTTP in lib/httpd.c; this file parses
 * arguments, prints, handles signals and chooses exit codes. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <jansson.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "audit.h"
#include "ca.h"
#include "cli.h"
#include "commands.h"
#include "file.h"
#include "httpd.h"
#include "key.h"
#include "keystore.h"
#include "passwd.h"
#include "reg.h"
#include "secret.h"
#include "srv.h"
#include "srvconf.h"

#define DEFAULT_DIR "/var/lib/estctl/server"

/* cli_next, but operands may come before options too ("init DIR --json"):
 * operands are collected into OPS (at most MAX; more is a usage error). */
static int
next_opt(struct cli *c, const char **ops, int *nops, int max)
{
	int id;

	for (;;) {
		id = cli_next(c);
		if (id != CLI_END)
			return id;
		if (c->optind >= c->argc)
			return CLI_END;
		if (strcmp(c->argv[c->optind - 1], "--") == 0) {
			/* everything after "--" is an operand */
			while (c->optind < c->argc && *nops < max)
				ops[(*nops)++] = c->argv[c->optind++];
			if (c->optind < c->argc) {
				c->status = cli_usage_error(c->verb, "'%s' is one operand too many",
							    c->argv[c->optind]);
				return CLI_EXIT;
			}
			return CLI_END;
		}
		if (*nops == max) {
			c->status = cli_usage_error(c->verb, "'%s' is one operand too many",
						    c->argv[c->optind]);
			return CLI_EXIT;
		}
		ops[(*nops)++] = c->argv[c->optind];
		optind = c->optind + 1;
	}
}

/* ---- serve ---- */

static const struct cli_opt serve_opts[] = {
	{ 'd', "dir", "DIR", "the state directory (default " DEFAULT_DIR ")" },
	{ 'l', "listen", "ADDR:PORT", "listen there instead of the config's (default "
	  "127.0.0.1:8443; port 0 picks a free one)" },
	{ 't', "threads", "N", "request worker threads (default 8 per CPU)" },
	{ 0, NULL, NULL, NULL }
};

static const struct cli_verb serve_verb = {
	"server", "[--dir DIR] [--listen ADDR:PORT] [--threads N]\n"
	"       estctl server init|passwd|approve|list|show|revoke|reset DIR ...",
	"run the EST server on a state directory (SIGHUP reloads, SIGTERM stops);\n"
	"'estctl server init DIR' makes one. Subcommands: init, passwd, approve, list,\n"
	"show, revoke, reset (estctl server SUBCOMMAND --help)",
	serve_opts, "sub:init passwd approve list show revoke reset"
};

static int
serve_loop(struct est_httpd *h, const sigset_t *set)
{
	struct est_error e;
	int sig;

	for (;;) {
		if (sigwait(set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			if (est_httpd_reload(h, &e) < 0)
				fprintf(stderr, "estctl server: reload failed, keeping the old "
					"configuration: %s\n", e.msg);
			else
				fprintf(stderr, "estctl server: reloaded\n");
			continue;
		}
		fprintf(stderr, "estctl server: %s: finishing requests in flight\n",
			sig == SIGTERM ? "SIGTERM" : "SIGINT");
		return 0;
	}
}

static int
serve(int argc, char **argv)
{
	struct est_httpd_opts o = { NULL, 0, stderr };
	const char *dir = DEFAULT_DIR;
	struct est_httpd *h = NULL;
	struct est_srv *srv = NULL;
	struct est_srv_transport t;
	struct est_error e;
	sigset_t set;
	struct cli c;
	char *end;
	int id, rc;

	cli_init(&c, &serve_verb, argc, argv);
	while ((id = cli_next(&c)) != CLI_END) {
		switch (id) {
		case CLI_EXIT: return c.status;
		case 'd': dir = c.arg; break;
		case 'l': o.listen = c.arg; break;
		case 't':
			o.threads = (unsigned)strtoul(c.arg, &end, 10);
			if (*end || o.threads < 1 || o.threads > 256)
				return cli_usage_error(&serve_verb, "--threads: 1 to 256");
			break;
		}
	}
	if (c.optind < argc)
		return cli_usage_error(&serve_verb, "unknown subcommand '%s'", argv[c.optind]);
#ifdef M_ARENA_MAX
	/* glibc gives each of many worker threads its own malloc arena, and every
	 * arena keeps its freed memory: the server's RSS would creep up. Two
	 * arenas per CPU keep it flat; one made the workers queue for the
	 * arena locks (10% more CPU per enrollment). */
	mallopt(M_ARENA_MAX, (int)(sysconf(_SC_NPROCESSORS_ONLN) > 0
				  ? 2 * sysconf(_SC_NPROCESSORS_ONLN) : 2));
#endif
	/* Block the signals before any thread exists, so only sigwait sees them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if ((rc = est_srv_open(dir, &srv, &e)) < 0 || (rc = est_httpd_start(srv, &o, &h, &e)) < 0) {
		est_srv_close(srv);
		return cli_fail(&serve_verb, &e);
	}
	est_srv_transport(srv, &t);
	fprintf(stderr, "estctl server: serving %s on port %u\n", dir, est_httpd_port(h));
	serve_loop(h, &set);
	est_httpd_stop(h, 10);
	est_srv_close(srv);
	fprintf(stderr, "estctl server: stopped\n");
	return 0;
}

/* ---- init ---- */

enum { OPT_CA_KEY_TYPE = CLI_LONG, OPT_CA_SUBJECT, OPT_VALIDITY, OPT_CA_VALIDITY, OPT_CA_KEY,
       OPT_CA_CERT, OPT_KEY_ID, OPT_JSON, OPT_TLS_HOST, OPT_EXPIRING, OPT_PASSWORD_FILE };

static const struct cli_opt init_opts[] = {
	{ OPT_CA_KEY_TYPE, "ca-key-type", "TYPE", "key type of a new CA (default ec-p256)" },
	{ OPT_CA_SUBJECT, "ca-subject", "DN", "subject of a new CA (default \"CN=estctl CA\")" },
	{ OPT_CA_VALIDITY, "ca-validity", "DURATION", "validity of a new CA (default 3650d)" },
	{ OPT_CA_KEY, "ca-key", "FILE", "import this CA key (file or pkcs11: URI) instead" },
	{ OPT_CA_CERT, "ca-cert", "FILE", "with --ca-key: the CA certificate (PEM)" },
	{ OPT_VALIDITY, "validity", "DURATION", "default validity of device certificates (365d)" },
	{ OPT_KEY_ID, "key-id", "ID", "id of the enrollment key made (default fleet-key-1)" },
	{ OPT_TLS_HOST, "tls-host", "NAME", "a name or address for the TLS certificate, "
	  "repeatable (default localhost, 127.0.0.1, ::1)" },
	{ OPT_JSON, "json", NULL, "print the paths made as one JSON object" },
	{ 0, NULL, NULL, NULL }
};

static const struct cli_verb init_verb = {
	"server init", "DIR [--ca-key-type TYPE] [--ca-subject DN] [--ca-validity D] "
	"[--ca-key FILE --ca-cert FILE] [--validity D] [--key-id ID] [--tls-host NAME]... [--json]",
	"create a server state directory: CA, TLS key and certificate, an enrollment key,\n"
	"registry, audit log and a commented config (refuses an existing DIR)",
	init_opts, "dir"
};

struct init_args {
	const char *dir, *ca_subject, *ca_key, *ca_cert, *key_id;
	enum est_key_type ca_type;
	long long validity, ca_validity;
	const char *hosts[16];
	size_t nhosts;
	int json;
};

static int
init_parse(struct init_args *a, int argc, char **argv, int *status)
{
	struct est_error e;
	const char *ops[1];
	struct cli c;
	int id, nops = 0;

	memset(a, 0, sizeof(*a));
	a->ca_type = EST_KEY_EC_P256;
	a->validity = EST_CA_DEFAULT_VALIDITY;
	a->ca_validity = EST_CA_DEFAULT_CA_VALIDITY;
	a->key_id = "fleet-key-1";
	*status = 64;
	cli_init(&c, &init_verb, argc, argv);
	while ((id = next_opt(&c, ops, &nops, 1)) != CLI_END) {
		switch (id) {
		case CLI_EXIT: *status = c.status; return -1;
		case OPT_CA_KEY_TYPE:
			if (est_key_type_parse(c.arg, &a->ca_type, &e) < 0 ||
			    a->ca_type == EST_KEY_AES256)
				return cli_usage_error(&init_verb, "--ca-key-type: expected ec-p256, "
						       "ec-p384, ed25519 or rsa2048..4096"), -1;
			break;
		case OPT_CA_SUBJECT: a->ca_subject = c.arg; break;
		case OPT_CA_KEY: a->ca_key = c.arg; break;
		case OPT_CA_CERT: a->ca_cert = c.arg; break;
		case OPT_KEY_ID: a->key_id = c.arg; break;
		case OPT_JSON: a->json = 1; break;
		case OPT_VALIDITY:
		case OPT_CA_VALIDITY:
			if (cli_parse_duration(c.arg, id == OPT_VALIDITY ? &a->validity
					       : &a->ca_validity) < 0 ||
			    (id == OPT_VALIDITY ? a->validity : a->ca_validity) < 3600)
				return cli_usage_error(&init_verb, "%s: expected a duration of at "
						       "least 1h such as 365d", argv[0]), -1;
			break;
		case OPT_TLS_HOST:
			if (a->nhosts == 16)
				return cli_usage_error(&init_verb, "--tls-host: 16 at most"), -1;
			a->hosts[a->nhosts++] = c.arg;
			break;
		}
	}
	if (nops != 1)
		return cli_usage_error(&init_verb, "expected one DIR"), -1;
	a->dir = ops[0];
	if ((a->ca_key == NULL) != (a->ca_cert == NULL))
		return cli_usage_error(&init_verb, "--ca-key and --ca-cert go together"), -1;
	if (!est_keyid_valid(a->key_id))
		return cli_usage_error(&init_verb, "--key-id: 1-64 of [A-Za-z0-9._-]"), -1;
	if (a->nhosts == 0) {
		a->hosts[0] = "localhost";
		a->hosts[1] = "127.0.0.1";
		a->hosts[2] = "::1";
		a->nhosts = 3;
	}
	return 0;
}

static int
write_crt(const char *path, gnutls_x509_crt_t crt, struct est_error *e)
{
	gnutls_datum_t pem = { NULL, 0 };
	int r, rc;

	if ((r = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem)) < 0)
		return est_fail(e, EST_EINTERNAL, "%s: %s", path, gnutls_strerror(r));
	rc = est_file_write(path, pem.data, pem.size, EST_WRITE_EXCL, e);
	gnutls_free(pem.data);
	return rc;
}

static int
write_key(const char *path, gnutls_x509_privkey_t key, struct est_error *e)
{
	struct est_secret pem = { NULL, 0 };
	int rc;

	if ((rc = est_key_export_pem(key, &pem, e)) < 0)
		return rc;
	rc = est_file_write(path, pem.data, pem.len, EST_WRITE_EXCL | EST_WRITE_PRIVATE, e);
	est_secret_free(&pem);
	return rc;
}

/* A new CA in TMP/ca, or a copy of the imported one; its key and
 * certificate in *KEY and *CRT for signing the TLS certificate. */
static int
init_ca(const struct init_args *a, const char *tmp, gnutls_privkey_t *key,
	gnutls_x509_crt_t *crt, struct est_error *e)
{
	char kp[PATH_MAX], cp[PATH_MAX];
	gnutls_x509_privkey_t xk = NULL;
	struct est_signer probe = { NULL, NULL };
	struct est_secret bytes = { NULL, 0 };
	gnutls_datum_t pem = { NULL, 0 };
	int rc;

	snprintf(kp, sizeof(kp), "%s/ca/key.pem", tmp);
	snprintf(cp, sizeof(cp), "%s/ca/cert.pem", tmp);
	if (a->ca_key == NULL) {
		if ((rc = est_ca_create(a->ca_type, a->ca_subject, a->ca_validity, &xk, crt, e)) < 0 ||
		    (rc = write_key(kp, xk, e)) < 0 || (rc = write_crt(cp, *crt, e)) < 0)
			goto out;
		if ((rc = gnutls_privkey_init(key)) < 0 ||
		    (rc = gnutls_privkey_import_x509(*key, xk, GNUTLS_PRIVKEY_IMPORT_COPY)) < 0)
			rc = est_fail(e, EST_EINTERNAL, "CA key: %s", gnutls_strerror(rc));
		goto out;
	}
	/* Import: est_ca_open checks it is a CA and the key is its key. */
	if ((rc = est_ca_open(a->ca_key, a->ca_cert, &probe, e)) < 0 ||
	    (rc = est_key_load(a->ca_key, key, e)) < 0 ||
	    (rc = est_file_read(a->ca_cert, EST_FILE_MAX, &pem, e)) < 0)
		goto out;
	if (gnutls_x509_crt_init(crt) < 0 || gnutls_x509_crt_import(*crt, &pem, GNUTLS_X509_FMT_PEM) < 0) {
		rc = est_fail(e, EST_EDATA, "%s: not a PEM certificate", a->ca_cert);
		goto out;
	}
	if ((rc = est_file_write(cp, pem.data, pem.size, EST_WRITE_EXCL, e)) < 0)
		goto out;
	if (strncmp(a->ca_key, "pkcs11:", 7) != 0 &&
	    ((rc = est_file_read_secret(a->ca_key, EST_FILE_MAX, &bytes, e)) < 0 ||
	     (rc = est_file_write(kp, bytes.data, bytes.len, EST_WRITE_EXCL | EST_WRITE_PRIVATE,
				  e)) < 0))
		goto out;
out:
	est_signer_close(&probe);
	est_secret_free(&bytes);
	gnutls_free(pem.data);
	gnutls_x509_privkey_deinit(xk);
	return rc;
}

static int
init_tls(const struct init_args *a, const char *tmp, gnutls_privkey_t cakey,
	 gnutls_x509_crt_t cacrt, struct est_error *e)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	char kp[PATH_MAX], cp[PATH_MAX];
	int rc;

	snprintf(kp, sizeof(kp), "%s/tls/key.pem", tmp);
	snprintf(cp, sizeof(cp), "%s/tls/cert.pem", tmp);
	if ((rc = est_tls_cert_create(cakey, cacrt, EST_KEY_EC_P256, a->hosts, a->nhosts,
				      a->ca_validity, &key, &crt, e)) < 0 ||
	    (rc = write_key(kp, key, e)) < 0 || (rc = write_crt(cp, crt, e)) < 0)
		goto out;
out:
	gnutls_x509_privkey_deinit(key);
	gnutls_x509_crt_deinit(crt);
	return rc;
}

static int
init_config(const struct init_args *a, const char *tmp, struct est_error *e)
{
	json_t *conf = est_srvconf_default(a->key_id, a->validity);
	char path[PATH_MAX], *text = NULL, *nl;
	int rc;

	if (conf == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	if (a->ca_key != NULL && strncmp(a->ca_key, "pkcs11:", 7) == 0)
		json_object_set_new(json_object_get(conf, "ca"), "key", json_string(a->ca_key));
	if ((text = json_dumps(conf, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) == NULL ||
	    (nl = realloc(text, strlen(text) + 2)) == NULL) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	text = nl;
	strcat(text, "\n");
	snprintf(path, sizeof(path), "%s/%s", tmp, EST_SRVCONF_FILE);
	/* 0600: ca.key may be a pkcs11: URI with the token's PIN in it. */
	rc = est_file_write(path, text, strlen(text), EST_WRITE_EXCL | EST_WRITE_PRIVATE, e);
out:
	free(text);
	json_decref(conf);
	return rc;
}

static int
init_stores(const struct init_args *a, const char *tmp, struct est_error *e)
{
	struct est_secret hex = { NULL, 0 };
	struct est_registry reg = { NULL, NULL };
	struct est_audit audit = { NULL, NULL };
	char path[PATH_MAX];
	int rc;

	snprintf(path, sizeof(path), "%s/keys/%s.key", tmp, a->key_id);
	if ((rc = est_enrkey_generate(&hex, e)) < 0 ||
	    (rc = est_file_write(path, hex.data, hex.len, EST_WRITE_EXCL | EST_WRITE_PRIVATE, e)) < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/passwd", tmp);
	if ((rc = est_file_write(path, "", 0, EST_WRITE_EXCL | EST_WRITE_PRIVATE, e)) < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/registry.db", tmp);
	if ((rc = est_reg_sqlite_open(path, 1, &reg, e)) < 0)
		goto out;
	snprintf(path, sizeof(path), "%s/audit.log", tmp);
	rc = est_audit_open_file(path, 1, &audit, e);
out:
	est_reg_close(&reg);
	est_audit_close(&audit);
	est_secret_free(&hex);
	return rc;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
init_report(const struct init_args *a)
{
	const char *d = a->dir;
	json_t *j;

	if (!a->json) {
		printf("ca_cert: %s/ca/cert.pem\ntls_cert: %s/tls/cert.pem\n"
		       "enrollment_key: %s/keys/%s.key\nenrollment_key_id: %s\n"
		       "registry: %s/registry.db\naudit_log: %s/audit.log\nconfig: %s/%s\n",
		       d, d, d, a->key_id, a->key_id, d, d, d, EST_SRVCONF_FILE);
		return;
	}
	j = json_pack("{s:s+, s:s+, s:s+++, s:s, s:s+, s:s+, s:s+}",
		      "ca_cert", d, "/ca/cert.pem", "tls_cert", d, "/tls/cert.pem",
		      "enrollment_key", d, "/keys/", a->key_id, ".key", "enrollment_key_id", a->key_id,
		      "registry", d, "/registry.db", "audit_log", d, "/audit.log",
		      "config", d, "/" EST_SRVCONF_FILE);
	if (j != NULL)
		json_dumpf(j, stdout, JSON_PRESERVE_ORDER);
	putchar('\n');
	json_decref(j);
}

/* Everything is made in a temporary directory beside DIR and renamed into
 * place at the end: DIR either does not exist or is complete. */
static int
init(int argc, char **argv)
{
	struct init_args a;
	char tmp[PATH_MAX], sub[PATH_MAX];
	const char *subs[] = { "ca", "tls", "keys" };
	gnutls_privkey_t cakey = NULL;
	gnutls_x509_crt_t cacrt = NULL;
	struct est_error e;
	struct stat st;
	size_t i;
	int rc, status;

	if (init_parse(&a, argc, argv, &status) < 0)
		return status;
	if (stat(a.dir, &st) == 0 || errno != ENOENT) {
		est_fail(&e, EST_EEXIST, "%s: exists; init never touches an existing state "
			 "directory", a.dir);
		return cli_fail(&init_verb, &e);
	}
	snprintf(tmp, sizeof(tmp), "%s.init-XXXXXX", a.dir);
	if (mkdtemp(tmp) == NULL) {
		est_fail(&e, EST_EIO, "%s: cannot create: %s", a.dir, strerror(errno));
		return cli_fail(&init_verb, &e);
	}
	rc = 0;
	for (i = 0; i < 3 && rc == 0; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", tmp, subs[i]);
		if (mkdir(sub, 0700) < 0)
			rc = est_fail(&e, EST_EIO, "%s: %s", sub, strerror(errno));
	}
	if (rc == 0 && (rc = init_ca(&a, tmp, &cakey, &cacrt, &e)) == 0 &&
	    (rc = init_tls(&a, tmp, cakey, cacrt, &e)) == 0 &&
	    (rc = init_stores(&a, tmp, &e)) == 0 && (rc = init_config(&a, tmp, &e)) == 0 &&
	    rename(tmp, a.dir) < 0)
		rc = est_fail(&e, errno == EEXIST || errno == ENOTEMPTY ? EST_EEXIST : EST_EIO,
			      "%s: %s", a.dir, strerror(errno));
	gnutls_privkey_deinit(cakey);
	gnutls_x509_crt_deinit(cacrt);
	if (rc < 0) {
		nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		return cli_fail(&init_verb, &e);
	}
	init_report(&a);
	return 0;
}

/* ---- the operator's verbs on a state directory ---- */

static const struct cli_opt passwd_opts[] = {
	{ OPT_PASSWORD_FILE, "password-file", "FILE", "read the password from FILE's first "
	  "line (default: standard input, or the terminal, asked twice)" },
	{ 0, NULL, NULL, NULL }
};
static const struct cli_opt json_opts[] = {
	{ OPT_JSON, "json", NULL, "print one JSON object" },
	{ 0, NULL, NULL, NULL }
};
static const struct cli_opt list_opts[] = {
	{ OPT_JSON, "json", NULL, "print one JSON object" },
	{ OPT_EXPIRING, "expiring", "DURATION", "only active devices whose certificate expires "
	  "within DURATION (30d)" },
	{ 0, NULL, NULL, NULL }
};
static const struct cli_opt no_opts[] = { { 0, NULL, NULL, NULL } };

static const struct cli_verb passwd_verb = {
	"server passwd", "DIR USER [--password-file FILE]",
	"add or change an HTTP Basic user (salted PBKDF2-SHA256, never plaintext)",
	passwd_opts, "dir"
};
static const struct cli_verb approve_verb = {
	"server approve", "DIR THING", "approve a waiting enrollment on a manual-approval label",
	no_opts, "dir"
};
static const struct cli_verb list_verb = {
	"server list", "DIR [--json] [--expiring DURATION]",
	"list the registered devices and their current certificates", list_opts, "dir"
};
static const struct cli_verb show_verb = {
	"server show", "DIR THING [--json]",
	"show a device: status, profile, IoT policy and every certificate", json_opts, "dir"
};
static const struct cli_verb revoke_verb = {
	"server revoke", "DIR THING",
	"revoke a device and its certificates (it cannot re-enroll until reset)", no_opts, "dir"
};
static const struct cli_verb reset_verb = {
	"server reset", "DIR THING",
	"let a new key enroll THING (its certificates are revoked, its history kept)",
	no_opts, "dir"
};

struct op_args {
	const char *dir, *arg, *password_file;
	int json;
	long long expiring;
};

/* Options, then DIR and NARGS more operands (NARGS 0 or 1). */
static int
op_parse(const struct cli_verb *v, int nargs, struct op_args *a, int argc, char **argv,
	 int *status)
{
	const char *ops[2];
	struct cli c;
	int id, nops = 0;

	memset(a, 0, sizeof(*a));
	*status = 64;
	cli_init(&c, v, argc, argv);
	while ((id = next_opt(&c, ops, &nops, 1 + nargs)) != CLI_END) {
		switch (id) {
		case CLI_EXIT: *status = c.status; return -1;
		case OPT_JSON: a->json = 1; break;
		case OPT_PASSWORD_FILE: a->password_file = c.arg; break;
		case OPT_EXPIRING:
			if (cli_parse_duration(c.arg, &a->expiring) < 0 || a->expiring <= 0)
				return cli_usage_error(v, "--expiring: expected a duration such "
						       "as 30d"), -1;
			break;
		}
	}
	if (nops != 1 + nargs)
		return cli_usage_error(v, "expected %s", nargs ? "DIR and one more operand"
				       : "DIR"), -1;
	a->dir = ops[0];
	a->arg = nargs ? ops[1] : NULL;
	if (nargs && strcmp(v->name, "server passwd") != 0 && !est_thing_name_valid(a->arg))
		return cli_usage_error(v, "'%s' is not a ThingName", a->arg), -1;
	return 0;
}

struct store {
	struct est_srvconf conf;
	struct est_registry reg;
	struct est_audit audit;
};

static int
store_open(const char *dir, int audit, struct store *s, struct est_error *e)
{
	int rc;

	memset(s, 0, sizeof(*s));
	if ((rc = est_srvconf_load(dir, &s->conf, e)) < 0 ||
	    (rc = est_reg_sqlite_open(s->conf.registry, 0, &s->reg, e)) < 0)
		return rc;
	if (audit && (rc = est_audit_open_file(s->conf.audit_log, 0, &s->audit, e)) < 0)
		return rc;
	return 0;
}

static void
store_close(struct store *s)
{
	est_audit_close(&s->audit);
	est_reg_close(&s->reg);
	est_srvconf_free(&s->conf);
}

static const char *
operator_name(void)
{
	const char *u = getenv("SUDO_USER");

	if (u == NULL || !est_passwd_user_valid(u))
		u = getenv("USER");
	return u != NULL && est_passwd_user_valid(u) ? u : "operator";
}

/* approve, revoke, reset: one registry change and its audit line. */
static int
change(const struct cli_verb *v, enum est_audit_kind kind, int argc, char **argv)
{
	struct est_audit_event ev;
	struct op_args a;
	struct store s;
	struct est_error e;
	int rc, status;

	if (op_parse(v, 1, &a, argc, argv, &status) < 0)
		return status;
	if ((rc = store_open(a.dir, 1, &s, &e)) < 0)
		goto out;
	if (kind == EST_AUDIT_APPROVED)
		rc = s.reg.ops->approve(s.reg.ctx, a.arg, operator_name(), &e);
	else if (kind == EST_AUDIT_DEVICE_REVOKED)
		rc = s.reg.ops->revoke(s.reg.ctx, a.arg, &e);
	else
		rc = s.reg.ops->reset(s.reg.ctx, a.arg, &e);
	if (rc < 0)
		goto out;
	memset(&ev, 0, sizeof(ev));
	ev.kind = kind;
	ev.thing = a.arg;
	ev.approver = operator_name();
	rc = est_audit_append(&s.audit, &ev, 1, &e);
out:
	store_close(&s);
	if (rc < 0)
		return cli_fail(v, &e);
	fprintf(stderr, "estctl %s: %s\n", v->name, a.arg);
	return 0;
}

static const char *
utc(time_t t, char buf[32])
{
	struct tm tm;

	if (t == 0)
		return "-";
	gmtime_r(&t, &tm);
	strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

static json_t *
cert_json(const struct est_reg_cert *c)
{
	char a[32], b[32], i[32];

	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "serial", c->serial_hex,
			 "status", est_cert_status_names[c->status], "not_before",
			 utc(c->not_before, a), "not_after", utc(c->not_after, b),
			 "issued_at", utc(c->issued_at, i), "key_sha256", c->key_sha256,
			 "supersedes", c->supersedes);
}

static json_t *
device_json(const struct est_reg_device *d)
{
	char a[32], b[32];
	json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "thing", d->thing_name, "status",
			      est_dev_status_names[d->status], "created", utc(d->created, a),
			      "updated", utc(d->updated, b));

	if (j != NULL && d->cert.serial_hex[0])
		json_object_set_new(j, "certificate", cert_json(&d->cert));
	return j;
}

static int
list_one(const struct est_reg_device *d, void *arg)
{
	json_t *arr = arg;
	char buf[32];

	if (arr != NULL)
		return json_array_append_new(arr, device_json(d)) < 0 ? -1 : 0;
	printf("%-32s %-8s %-40s %s\n", d->thing_name, est_dev_status_names[d->status],
	       d->cert.serial_hex[0] ? d->cert.serial_hex : "-", utc(d->cert.not_after, buf));
	return 0;
}

static int
list(int argc, char **argv)
{
	struct op_args a;
	struct store s;
	struct est_error e;
	json_t *arr = NULL;
	int rc, status;

	if (op_parse(&list_verb, 0, &a, argc, argv, &status) < 0)
		return status;
	if ((rc = store_open(a.dir, 0, &s, &e)) < 0)
		goto out;
	if (a.json)
		arr = json_array();
	else
		printf("%-32s %-8s %-40s %s\n", "THING", "STATUS", "SERIAL", "NOT_AFTER");
	rc = s.reg.ops->list(s.reg.ctx, a.expiring ? time(NULL) + a.expiring : 0, list_one, arr,
			     &e);
	if (rc == 0 && arr != NULL) {
		json_t *j = json_pack("{s:O}", "devices", arr);

		json_dumpf(j, stdout, 0);
		putchar('\n');
		json_decref(j);
	}
out:
	json_decref(arr);
	store_close(&s);
	return rc < 0 ? cli_fail(&list_verb, &e) : 0;
}

static int
show_cert(const struct est_reg_cert *c, void *arg)
{
	json_t *arr = arg;
	char a[32], b[32];

	if (arr != NULL)
		return json_array_append_new(arr, cert_json(c)) < 0 ? -1 : 0;
	printf("certificate %s %s %s..%s key sha256:%s\n", c->serial_hex,
	       est_cert_status_names[c->status], utc(c->not_before, a), utc(c->not_after, b),
	       c->key_sha256);
	return 0;
}

static int
show(int argc, char **argv)
{
	struct est_reg_device d;
	struct op_args a;
	struct store s;
	struct est_error e;
	json_t *certs = NULL, *j;
	int rc, status;

	memset(&d, 0, sizeof(d));
	if (op_parse(&show_verb, 1, &a, argc, argv, &status) < 0)
		return status;
	if ((rc = store_open(a.dir, 0, &s, &e)) < 0)
		goto out;
	if (a.json)
		certs = json_array();
	else
		printf("thing %s\n", a.arg);
	if ((rc = s.reg.ops->show(s.reg.ctx, a.arg, &d, show_cert, certs, &e)) < 0)
		goto out;
	if (a.json) {
		j = device_json(&d);
		json_object_set_new(j, "profile", json_loads(d.profile_json ? d.profile_json
							   : "null", JSON_DECODE_ANY, NULL));
		json_object_set_new(j, "iot_policy", json_loads(d.iot_policy_json ?
				    d.iot_policy_json : "null", JSON_DECODE_ANY, NULL));
		json_object_set(j, "certificates", certs);
		json_dumpf(j, stdout, JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(j);
	} else {
		printf("status %s\nprofile %s\niot_policy %s\n", est_dev_status_names[d.status],
		       d.profile_json ? d.profile_json : "-",
		       d.iot_policy_json ? d.iot_policy_json : "-");
	}
out:
	json_decref(certs);
	est_reg_device_clear(&d);
	store_close(&s);
	return rc < 0 ? cli_fail(&show_verb, &e) : 0;
}

/* One line from FD (the newline dropped) into PW. */
static int
read_line(int fd, struct est_secret *pw, struct est_error *e)
{
	char c;
	ssize_t n;

	if (est_secret_alloc(pw, 1024) < 0)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	pw->len = 0;
	while ((n = read(fd, &c, 1)) == 1 && c != '\n') {
		if (pw->len == 1023)
			return est_fail(e, EST_EDATA, "password longer than 1023 bytes");
		pw->data[pw->len++] = (unsigned char)c;
	}
	if (n < 0)
		return est_fail(e, EST_EIO, "reading the password: %s", strerror(errno));
	if (pw->len > 0 && pw->data[pw->len - 1] == '\r')
		pw->len--;
	pw->data[pw->len] = '\0';
	return 0;
}

static int
ask(int fd, const char *prompt, struct est_secret *pw, struct est_error *e)
{
	struct termios old, quiet;
	int rc;

	if (write(fd, prompt, strlen(prompt)) < 0 || tcgetattr(fd, &old) < 0)
		return est_fail(e, EST_EIO, "terminal: %s", strerror(errno));
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(fd, TCSAFLUSH, &quiet);
	rc = read_line(fd, pw, e);
	tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0)
		rc = rc < 0 ? rc : 0;
	return rc;
}

static int
read_password(const char *file, struct est_secret *pw, struct est_error *e)
{
	struct est_secret again = { NULL, 0 };
	int fd = 0, rc;

	if (file != NULL && !est_path_is_std(file)) {
		if ((fd = open(file, O_RDONLY | O_CLOEXEC)) < 0)
			return est_fail(e, errno == ENOENT ? EST_ENOINPUT : EST_EIO, "%s: %s", file,
					strerror(errno));
		rc = read_line(fd, pw, e);
		close(fd);
		return rc;
	}
	if (!isatty(0))
		return read_line(0, pw, e);
	if ((rc = ask(0, "password: ", pw, e)) < 0 || (rc = ask(0, "again: ", &again, e)) < 0)
		goto out;
	if (pw->len != again.len || memcmp(pw->data, again.data, pw->len) != 0)
		rc = est_fail(e, EST_EDATA, "the two passwords differ");
out:
	est_secret_free(&again);
	return rc;
}

static int
passwd(int argc, char **argv)
{
	struct est_secret pw = { NULL, 0 };
	struct est_srvconf conf;
	struct op_args a;
	struct est_error e;
	int rc, status;

	memset(&conf, 0, sizeof(conf));
	if (op_parse(&passwd_verb, 1, &a, argc, argv, &status) < 0)
		return status;
	if (!est_passwd_user_valid(a.arg))
		return cli_usage_error(&passwd_verb, "a user name is 1-64 of [A-Za-z0-9._@-]");
	if ((rc = est_srvconf_load(a.dir, &conf, &e)) < 0 ||
	    (rc = read_password(a.password_file, &pw, &e)) < 0)
		goto out;
	if (pw.len == 0) {
		rc = est_fail(&e, EST_EDATA, "empty password");
		goto out;
	}
	rc = est_passwd_set(conf.passwd, a.arg, &pw, EST_PASSWD_ITERATIONS, &e);
out:
	est_secret_free(&pw);
	est_srvconf_free(&conf);
	if (rc < 0)
		return cli_fail(&passwd_verb, &e);
	fprintf(stderr, "estctl server passwd: %s: set (SIGHUP the server to use it)\n", a.arg);
	return 0;
}

static int
sub_approve(int argc, char **argv)
{
	return change(&approve_verb, EST_AUDIT_APPROVED, argc, argv);
}

static int
sub_revoke(int argc, char **argv)
{
	return change(&revoke_verb, EST_AUDIT_DEVICE_REVOKED, argc, argv);
}

static int
sub_reset(int argc, char **argv)
{
	return change(&reset_verb, EST_AUDIT_DEVICE_RESET, argc, argv);
}

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
} subs[] = {    /* sorted */
	{ "approve", sub_approve },
	{ "init", init },
	{ "list", list },
	{ "passwd", passwd },
	{ "reset", sub_reset },
	{ "revoke", sub_revoke },
	{ "show", show },
};

int
cmd_server(int argc, char **argv)
{
	const char *names[sizeof(subs) / sizeof(subs[0]) + 1], *s;
	size_t i, n = sizeof(subs) / sizeof(subs[0]);

	if (argc < 2 || argv[1][0] == '-')
		return serve(argc, argv);
	for (i = 0; i < n; i++) {
		names[i] = subs[i].name;
		if (strcmp(argv[1], subs[i].name) == 0)
			return subs[i].fn(argc - 1, argv + 1);
	}
	names[n] = NULL;
	if ((s = cli_suggest(argv[1], names)) != NULL)
		return cli_usage_error(&serve_verb, "'%s' is not a subcommand (did you mean "
				       "'%s'?)", argv[1], s);
	return cli_usage_error(&serve_verb, "'%s' is not a subcommand", argv[1]);
}
