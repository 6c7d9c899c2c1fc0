/* estctl verify: is this certificate good (chain at a time, key match,
 * expiry window, profile), or is this CSR well signed, and what does it ask. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "audit.h"
#include "cert.h"
#include "cli.h"
#include "commands.h"
#include "csr.h"
#include "file.h"
#include "key.h"
#include "profile.h"

enum { OPT_CACERT = CLI_LONG, OPT_KEY, OPT_AT, OPT_EXPIRES, OPT_CSR, OPT_JSON, OPT_AUDIT };

static const struct cli_opt opts[] = {
	{ OPT_CACERT, "cacert", "BUNDLE",
	  "trusted CAs (self-signed) and intermediates, PEM or DER" },
	{ OPT_KEY, "key", "FILE", "check that this private key belongs to CERT" },
	{ OPT_AT, "at", "TIME", "verify at this RFC 3339 time instead of now" },
	{ OPT_EXPIRES, "expires-within", "DURATION",
	  "exit 1 when CERT expires within DURATION (30d, 12h, 90m)" },
	{ OPT_CSR, "csr", "FILE", "check a CSR's signature and show its profile instead" },
	{ OPT_AUDIT, "audit", "FILE", "check the hash chain of a server audit log instead "
	  "(exit 1 naming the first broken line)" },
	{ OPT_JSON, "json", NULL, "print one JSON object instead of text" },
	{ 0 }
};

static const struct cli_verb verb = {
	"verify",
	"CERT --cacert BUNDLE [--key FILE] [--at TIME] [--expires-within DURATION] [--json]\n"
	"   or: estctl verify --csr FILE [--json]\n"
	"   or: estctl verify --audit FILE [--json]",
	"Check a certificate against a CA bundle at a time, its private key, its expiry\n"
	"and its device profile; or check a CSR's signature and show its profile.",
	opts,
	"file",
};

struct args {
	const char *cert, *cacert, *key, *csr, *within_arg, *audit;
	time_t at;
	long long within;
	bool json, at_set;
};

/* What was found out, for either output form. */
struct result {
	struct est_cert_info info;
	struct est_profile profile;
	bool have_profile;
	bool valid;             /* chain, key and profile all good */
	int key_match;          /* 1, 0, or -1 without --key */
	int due;                /* 1, 0, or -1 without --expires-within */
	char chain[sizeof(((struct est_error *)0)->msg)];       /* why not, "" when valid */
	char reason[sizeof(((struct est_error *)0)->msg)];      /* why exit 1, "" for 0 */
};

static const char *
display(const char *path)
{
	return est_path_is_std(path) ? "standard input" : path;
}

/* 64 for a usage error, -1 when the combination makes sense. */
static int
check_combination(const struct args *a)
{
	if (a->audit != NULL && (a->csr != NULL || a->cert != NULL || a->cacert != NULL ||
				 a->key != NULL || a->at_set || a->within_arg != NULL))
		return cli_usage_error(&verb, "--audit takes no other input or check");
	if (a->audit != NULL)
		return -1;
	if (a->csr != NULL && (a->cert != NULL || a->cacert != NULL || a->key != NULL ||
			       a->at_set || a->within_arg != NULL))
		return cli_usage_error(&verb, "--csr takes no CERT, --cacert, --key, --at or "
				       "--expires-within");
	if (a->csr == NULL && a->cert == NULL)
		return cli_usage_error(&verb, "no certificate given");
	if (a->csr == NULL && a->cacert == NULL)
		return cli_usage_error(&verb, "--cacert is required to verify a certificate");
	return -1;
}

/* One option into A: 0, or the exit status of a usage error. */
static int
apply(struct args *a, int o, const char *arg)
{
	switch (o) {
	case OPT_CACERT: a->cacert = arg; break;
	case OPT_KEY: a->key = arg; break;
	case OPT_CSR: a->csr = arg; break;
	case OPT_AUDIT: a->audit = arg; break;
	case OPT_JSON: a->json = true; break;
	case OPT_AT:
		if (est_cert_time_parse(arg, &a->at) < 0)
			return cli_usage_error(&verb, "--at: '%s' is not an RFC 3339 time "
					       "(2026-01-02T03:04:05Z)", arg);
		a->at_set = true;
		break;
	case OPT_EXPIRES:
		if (cli_parse_duration(arg, &a->within) < 0)
			return cli_usage_error(&verb, "--expires-within: '%s' is not a duration "
					       "(30d, 12h, 90m)", arg);
		a->within_arg = arg;
		break;
	}
	return 0;
}

/* The exit status when the command is over (help, usage error), else -1.
 * Options may follow CERT (as in the synopsis): on reaching an operand the
 * parser restarts on the rest of the vector, the operand in argv[0]'s place. */
static int
parse_args(int argc, char **argv, struct args *a)
{
	struct cli c;
	int o, rc;

	memset(a, 0, sizeof(*a));
	cli_init(&c, &verb, argc, argv);
	for (;;) {
		if ((o = cli_next(&c)) == CLI_EXIT)
			return c.status;
		if (o != CLI_END && (rc = apply(a, o, c.arg)) != 0)
			return rc;
		if (o != CLI_END)
			continue;
		if (c.optind >= c.argc)
			break;
		if (a->cert != NULL)
			return cli_usage_error(&verb, "one certificate at a time");
		a->cert = c.argv[c.optind];
		cli_init(&c, &verb, c.argc - c.optind, c.argv + c.optind);
	}
	if (!a->at_set)
		a->at = time(NULL);
	return check_combination(a);
}

static json_t *
json_time(time_t t)
{
	char buf[EST_CERT_TIME_LEN];

	est_cert_time_format(t, buf);
	return json_string(buf);
}

static json_t *
json_tristate(int v)
{
	return v < 0 ? json_null() : json_boolean(v);
}

static json_t *
json_profile(const struct result *r)
{
	return r->have_profile ? est_profile_to_json(&r->profile) : json_null();
}

static json_t *
json_reason(const char *reason)
{
	return reason[0] != '\0' ? json_string(reason) : json_null();
}

static void
print_json(json_t *o)
{
	json_dumpf(o, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
	json_decref(o);
}

static void
cert_json(const struct result *r)
{
	json_t *o = json_object();

	json_object_set_new(o, "valid", json_boolean(r->valid));
	json_object_set_new(o, "reason", json_reason(r->reason));
	json_object_set_new(o, "subject", json_string(r->info.subject));
	json_object_set_new(o, "issuer", json_string(r->info.issuer));
	json_object_set_new(o, "serial", json_string(r->info.serial));
	json_object_set_new(o, "not_before", json_time(r->info.not_before));
	json_object_set_new(o, "not_after", json_time(r->info.not_after));
	json_object_set_new(o, "key_type", json_string(r->info.key_type));
	json_object_set_new(o, "sha256", json_string(r->info.sha256));
	json_object_set_new(o, "chain_error", json_reason(r->chain));
	json_object_set_new(o, "key_match", json_tristate(r->key_match));
	json_object_set_new(o, "profile", json_profile(r));
	json_object_set_new(o, "expires_within", json_tristate(r->due));
	print_json(o);
}

static void
print_profile(const struct result *r)
{
	if (!r->have_profile) {
		printf("profile:    none\n");
		return;
	}
	est_profile_print(&r->profile, stdout);
}

static void
cert_text(const struct args *a, const struct result *r)
{
	char nb[EST_CERT_TIME_LEN], na[EST_CERT_TIME_LEN];

	est_cert_time_format(r->info.not_before, nb);
	est_cert_time_format(r->info.not_after, na);
	printf("subject:    %s\nissuer:     %s\nserial:     %s\n", r->info.subject,
	       r->info.issuer, r->info.serial);
	printf("validity:   %s to %s\nkey type:   %s\nsha256:     %s\n", nb, na,
	       r->info.key_type, r->info.sha256);
	printf("chain:      %s\n", r->chain[0] == '\0' ? "valid" : r->chain);
	printf("key match:  %s\n", r->key_match < 0 ? "not checked" : r->key_match ? "yes" : "no");
	if (r->due >= 0)
		printf("expires within %s: %s\n", a->within_arg, r->due ? "yes" : "no");
	print_profile(r);
	printf("valid:      %s\n", r->valid ? "yes" : "no");
}

/* The first problem becomes the reason; later ones are still shown. */
static void
note(struct result *r, const char *why)
{
	if (r->reason[0] == '\0')
		snprintf(r->reason, sizeof(r->reason), "%s", why);
}

static int
check_key(const struct args *a, gnutls_x509_crt_t crt, struct result *r, struct est_error *e)
{
	gnutls_privkey_t key = NULL;
	bool match;
	int rc;

	r->key_match = -1;
	if (a->key == NULL)
		return 0;
	if ((rc = est_key_load(a->key, &key, e)) < 0)
		return rc;
	rc = est_cert_key_match(crt, key, &match, e);
	gnutls_privkey_deinit(key);
	if (rc < 0) {
		est_error_prefix(e, "%s", display(a->key));
		return rc;
	}
	r->key_match = match;
	return 0;
}

/* Chain first, then key, then profile: the reason is the most basic fault. */
static int
check_cert(const struct args *a, const struct est_cert_list *cert,
	   const struct est_cert_list *bundle, struct result *r, struct est_error *e)
{
	struct est_cert_list extra = { cert->crts + 1, cert->n - 1 };
	struct est_error why = { 0 };
	char msg[sizeof(r->reason)];
	int rc;

	if ((rc = est_cert_info(cert->crts[0], &r->info, e)) < 0)
		return rc;
	if ((rc = check_key(a, cert->crts[0], r, e)) < 0)
		return rc;
	rc = est_cert_verify(cert->crts[0], &extra, bundle, a->at, display(a->cert),
			     display(a->cacert), &why);
	if (rc < 0 && rc != -EST_ENEGATIVE) {
		*e = why;
		return rc;
	}
	if (rc < 0)
		snprintf(r->chain, sizeof(r->chain), "%s", why.msg);
	note(r, r->chain);
	if (r->key_match == 0) {
		snprintf(msg, sizeof(msg), "%s: key %s does not match the certificate",
			 display(a->cert), display(a->key));
		note(r, msg);
	}
	if ((rc = est_cert_profile(cert->crts[0], &r->profile, &r->have_profile, &why)) < 0) {
		snprintf(msg, sizeof(msg), "%s: %s", display(a->cert), why.msg);
		note(r, msg);
	}
	r->valid = r->reason[0] == '\0';
	return 0;
}

/* Renewal is due when the certificate ends before AT + the window. */
static void
check_due(const struct args *a, struct result *r)
{
	char na[EST_CERT_TIME_LEN], msg[sizeof(r->reason)];

	r->due = -1;
	if (a->within_arg == NULL)
		return;
	r->due = (long long)r->info.not_after - (long long)a->at < a->within;
	if (!r->due)
		return;
	est_cert_time_format(r->info.not_after, na);
	snprintf(msg, sizeof(msg), "%s: renewal due: expires on %s, within %s",
		 display(a->cert), na, a->within_arg);
	note(r, msg);
}

static int
verify_cert(const struct args *a)
{
	struct est_cert_list cert = { NULL, 0 }, bundle = { NULL, 0 };
	struct result r = { .key_match = -1, .due = -1 };
	struct est_error e = { 0 };
	int rc;

	if ((rc = est_cert_load_bundle(a->cert, &cert, &e)) < 0 ||
	    (rc = est_cert_load_bundle(a->cacert, &bundle, &e)) < 0 ||
	    (rc = check_cert(a, &cert, &bundle, &r, &e)) < 0) {
		rc = cli_fail(&verb, &e);
		goto out;
	}
	check_due(a, &r);
	if (a->json)
		cert_json(&r);
	else
		cert_text(a, &r);
	if (r.reason[0] != '\0')
		fprintf(stderr, "estctl verify: %s\n", r.reason);
	rc = r.reason[0] != '\0' ? 1 : 0;
out:
	if (r.have_profile)
		est_profile_free(&r.profile);
	est_cert_info_free(&r.info);
	est_cert_list_free(&cert);
	est_cert_list_free(&bundle);
	return rc;
}

static char *
crq_subject(gnutls_x509_crq_t crq)
{
	gnutls_datum_t d = { NULL, 0 };
	char *s;

	if (gnutls_x509_crq_get_dn3(crq, &d, 0) < 0)
		return strdup("");
	s = strndup((const char *)d.data, d.size);
	gnutls_free(d.data);
	return s;
}

static void
csr_output(const struct args *a, const char *subject, const struct result *r)
{
	json_t *o;

	if (!a->json) {
		printf("subject:    %s\n", subject);
		printf("signature:  %s\n", r->chain[0] == '\0' ? "valid" : "invalid");
		print_profile(r);
		printf("valid:      %s\n", r->valid ? "yes" : "no");
		return;
	}
	o = json_object();
	json_object_set_new(o, "valid", json_boolean(r->valid));
	json_object_set_new(o, "reason", json_reason(r->reason));
	json_object_set_new(o, "subject", json_string(subject));
	json_object_set_new(o, "profile", json_profile(r));
	print_json(o);
}

/* A bad signature or profile is a negative answer (1); only a file that is
 * no CSR at all is bad data (65). */
static int
verify_csr(const struct args *a)
{
	gnutls_datum_t d = { NULL, 0 };
	gnutls_x509_crq_t crq = NULL;
	struct result r = { .key_match = -1, .due = -1 };
	struct est_error e = { 0 }, why = { 0 };
	char *subject = NULL;
	int found = 0, rc;

	if ((rc = est_file_read(a->csr, EST_FILE_MAX, &d, &e)) < 0 ||
	    (rc = est_csr_parse(d.data, d.size, display(a->csr), &crq, &e)) < 0) {
		rc = cli_fail(&verb, &e);
		goto out;
	}
	if ((subject = crq_subject(crq)) == NULL) {
		rc = cli_fail(&verb, &(struct est_error){ EST_EINTERNAL, "out of memory" });
		goto out;
	}
	if (est_csr_verify(crq, &why) < 0) {
		snprintf(r.chain, sizeof(r.chain), "%s", why.msg);
		note(&r, why.msg);
	}
	if (est_csr_profile(crq, &r.profile, &found, &why) < 0)
		note(&r, why.msg);
	else
		r.have_profile = found != 0;
	r.valid = r.reason[0] == '\0';
	csr_output(a, subject, &r);
	if (!r.valid)
		fprintf(stderr, "estctl verify: %s\n", r.reason);
	rc = r.valid ? 0 : 1;
out:
	if (r.have_profile)
		est_profile_free(&r.profile);
	free(subject);
	if (crq != NULL)
		gnutls_x509_crq_deinit(crq);
	gnutls_free(d.data);
	return rc;
}

/* The server's audit log: every line's "prev" is the SHA-256 of the line before. */
static int
verify_audit(const struct args *a)
{
	struct est_error e;
	unsigned long lines = 0;
	int rc = est_audit_verify(a->audit, &lines, &e);

	if (rc < 0 && rc != -EST_ENEGATIVE)
		return cli_fail(&verb, &e);
	if (a->json) {
		json_t *j = json_pack("{s:s, s:b, s:I}", "audit", a->audit, "valid", rc == 0,
				      rc == 0 ? "lines" : "bad_line", (json_int_t)lines);

		if (rc < 0)
			json_object_set_new(j, "reason", json_string(e.msg));
		json_dumpf(j, stdout, JSON_PRESERVE_ORDER);
		putchar('\n');
		json_decref(j);
	} else if (rc == 0) {
		printf("%s: audit chain valid, %lu lines\n", a->audit, lines);
	} else {
		printf("%s: audit chain broken: %s\n", a->audit, e.msg);
	}
	return rc == 0 ? 0 : 1;
}

int
cmd_verify(int argc, char **argv)
{
	struct args a;
	int rc;

	if ((rc = parse_args(argc, argv, &a)) >= 0)
		return rc;
	if (a.audit != NULL)
		return verify_audit(&a);
	return a.csr != NULL ? verify_csr(&a) : verify_cert(&a);
}
