/* estctl mkcsr: make a CSR carrying a device profile, from a config's device,
 * from an IoTDetails file, or from a bare ThingName. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

/* "config.h" above is autoconf's; the client config header shares its name. */
#include "../lib/config.h"
#include "cli.h"
#include "commands.h"
#include "csr.h"
#include "file.h"
#include "key.h"
#include "profile.h"
#include "secret.h"

enum {
	OPT_SAN = CLI_LONG, OPT_CHALLENGE, OPT_DER,
};

static const struct cli_opt opts[] = {
	{ 'k', "key", "FILE", "the device's private key (PEM or DER, - for stdin)" },
	{ 'c', "config", "FILE", "client config (the seed's client_config.json format)" },
	{ 'd', "device", "NAME", "the config's device to use (needed with several)" },
	{ 't', "thing", "NAME", "ThingName, without a config" },
	{ 'p', "profile", "FILE", "JSON file holding an IoTDetails object" },
	{ OPT_SAN, "san", "dns:NAME|uri:URI|ip:ADDR", "add a subjectAltName (repeatable)" },
	{ OPT_CHALLENGE, "challenge-file", "FILE", "challengePassword from FILE's first line" },
	{ 'o', "output", "FILE", "write the CSR to FILE instead of stdout" },
	{ OPT_DER, "der", NULL, "write DER instead of PEM" },
	{ 0 }
};

static const struct cli_verb verb = {
	"mkcsr",
	"--key FILE (--config FILE [--device NAME] | --thing NAME [--profile FILE] | "
	"--profile FILE) [--san SAN]... [--challenge-file FILE] [-o FILE] [--der]",
	"make a CSR carrying a device profile",
	opts,
	"",
};

#define MAX_SANS 32

struct args {
	const char *key, *config, *device, *thing, *profile, *challenge, *output;
	const char *sans[MAX_SANS];
	size_t nsans;
	int der;
};

static int
check_args(const struct args *a)
{
	const char *std[4] = { a->key, a->config, a->profile, a->challenge };
	int i, nstd = 0;

	if (a->key == NULL)
		return cli_usage_error(&verb, "--key is required");
	if (a->config != NULL && (a->thing != NULL || a->profile != NULL))
		return cli_usage_error(&verb, "--config cannot be combined with --thing or "
				       "--profile");
	if (a->config == NULL && a->thing == NULL && a->profile == NULL)
		return cli_usage_error(&verb, "one of --config, --thing or --profile is required");
	if (a->device != NULL && a->config == NULL)
		return cli_usage_error(&verb, "--device needs --config");
	for (i = 0; i < 4; i++)
		nstd += std[i] != NULL && est_path_is_std(std[i]);
	if (nstd > 1)
		return cli_usage_error(&verb, "only one input can be standard input");
	return 0;
}

/* -1 to go on, else the exit status (0 after --help). */
static int
parse_args(struct cli *c, struct args *a)
{
	int id;

	while ((id = cli_next(c)) != CLI_END) {
		switch (id) {
		case CLI_EXIT: return c->status;
		case 'k': a->key = c->arg; break;
		case 'c': a->config = c->arg; break;
		case 'd': a->device = c->arg; break;
		case 't': a->thing = c->arg; break;
		case 'p': a->profile = c->arg; break;
		case 'o': a->output = c->arg; break;
		case OPT_CHALLENGE: a->challenge = c->arg; break;
		case OPT_DER: a->der = 1; break;
		case OPT_SAN:
			if (a->nsans == MAX_SANS)
				return cli_usage_error(&verb, "at most %d --san", MAX_SANS);
			a->sans[a->nsans++] = c->arg;
			break;
		}
	}
	if (c->optind < c->argc)
		return cli_usage_error(&verb, "unexpected operand '%s'", c->argv[c->optind]);
	return check_args(a) == 0 ? -1 : 64;
}

/* The device NAME of the config, or its only device when NAME is NULL. */
static int
pick_device(struct est_client_config *cfg, const char *name, struct est_profile *p,
	    struct est_error *e)
{
	const char **names, *hint;
	size_t i;

	if (name == NULL && cfg->ndevices > 1)
		return est_fail(e, EST_EUSAGE, "%s has %zu devices: choose one with --device",
				cfg->path, cfg->ndevices);
	for (i = 0; i < cfg->ndevices; i++) {
		if (name != NULL && strcmp(cfg->devices[i].profile.thing_name, name) != 0)
			continue;
		/* Moved out: the config no longer owns it. */
		*p = cfg->devices[i].profile;
		memset(&cfg->devices[i].profile, 0, sizeof(*p));
		return 0;
	}
	if ((names = calloc(cfg->ndevices + 1, sizeof(char *))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	for (i = 0; i < cfg->ndevices; i++)
		names[i] = cfg->devices[i].profile.thing_name;
	hint = cli_suggest(name, names);
	if (hint != NULL)
		est_fail(e, EST_EDATA, "%s: no device '%s' (did you mean '%s'?)", cfg->path, name,
			 hint);
	else
		est_fail(e, EST_EDATA, "%s: no device '%s'", cfg->path, name);
	free(names);
	return -EST_EDATA;
}

static int
profile_from_config(const struct args *a, struct est_profile *p, struct est_error *e)
{
	struct est_client_config cfg;
	size_t i;
	int rc;

	if ((rc = est_config_load(a->config, &cfg, e)) < 0)
		return rc;
	for (i = 0; i < cfg.nwarnings; i++)
		fprintf(stderr, "estctl mkcsr: warning: %s: %s\n",
			est_path_is_std(a->config) ? "standard input" : a->config, cfg.warnings[i]);
	rc = pick_device(&cfg, a->device, p, e);
	est_config_free(&cfg);
	return rc;
}

/* --profile FILE: an IoTDetails object whose ThingName may be left to --thing. */
static int
profile_from_file(const struct args *a, struct est_profile *p, struct est_error *e)
{
	const char *name = est_path_is_std(a->profile) ? "standard input" : a->profile;
	char **warnings = NULL;
	json_t *iot = NULL, *tn;
	size_t nw = 0, i;
	int rc;

	if ((rc = est_json_load_file(a->profile, &iot, e)) < 0)
		return rc;
	tn = json_is_object(iot) ? json_object_get(iot, "ThingName") : NULL;
	if (a->thing != NULL && tn == NULL && json_is_object(iot))
		json_object_set_new(iot, "ThingName", json_string(a->thing));
	else if (a->thing != NULL && json_is_string(tn) &&
		 strcmp(json_string_value(tn), a->thing) != 0) {
		rc = est_fail(e, EST_EDATA, "%s: IoTDetails.ThingName does not match --thing '%s'",
			      name, a->thing);
		goto out;
	}
	if ((rc = est_profile_from_iotdetails(iot, "IoTDetails", p, e)) < 0) {
		est_error_prefix(e, "%s", name);
		goto out;
	}
	if (est_profile_iotdetails_warnings(iot, "IoTDetails", &warnings, &nw) < 0)
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
	for (i = 0; i < nw; i++) {
		fprintf(stderr, "estctl mkcsr: warning: %s: %s\n", name, warnings[i]);
		free(warnings[i]);
	}
	free(warnings);
out:
	json_decref(iot);
	if (rc < 0)
		est_profile_free(p);
	return rc;
}

static int
make_profile(const struct args *a, struct est_profile *p, struct est_error *e)
{
	memset(p, 0, sizeof(*p));
	if (a->thing != NULL && !est_thing_name_valid(a->thing))
		return est_fail(e, EST_EDATA, "--thing: not a valid ThingName (1-128 characters of "
				"A-Z a-z 0-9 : _ -)");
	if (a->config != NULL)
		return profile_from_config(a, p, e);
	if (a->profile != NULL)
		return profile_from_file(a, p, e);
	p->version = 1;
	if ((p->thing_name = strdup(a->thing)) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	return 0;
}

/* The first line of FILE, without its line end, in a wiped buffer. */
static int
read_challenge(const char *path, struct est_secret *s, struct est_error *e)
{
	const char *name = est_path_is_std(path) ? "standard input" : path;
	int rc;

	if ((rc = est_file_read_secret(path, 4096, s, e)) < 0)
		return rc;
	s->len = strcspn((char *)s->data, "\r\n");
	if (memchr(s->data, '\0', s->len) != NULL || s->len == 0)
		return est_fail(e, EST_EDATA, "%s: expected the challenge password on its first "
				"line", name);
	s->data[s->len] = '\0';
	return 0;
}

static int
run(const struct args *a, struct est_error *e)
{
	struct est_secret challenge = { NULL, 0 };
	struct est_profile p = { 0 };
	gnutls_privkey_t key = NULL;
	gnutls_x509_crq_t crq = NULL;
	gnutls_datum_t out = { NULL, 0 };
	int rc;

	if ((rc = make_profile(a, &p, e)) < 0 ||
	    (a->challenge != NULL && (rc = read_challenge(a->challenge, &challenge, e)) < 0) ||
	    (rc = est_key_load(a->key, &key, e)) < 0 ||
	    (rc = est_csr_build(key, &p, a->sans, a->nsans,
				challenge.data ? (const char *)challenge.data : NULL, &crq, e)) < 0 ||
	    (rc = est_csr_export(crq, a->der, &out, e)) < 0)
		goto out;
	rc = est_file_write(a->output ? a->output : "-", out.data, out.size, 0, e);
out:
	gnutls_free(out.data);
	gnutls_x509_crq_deinit(crq);
	gnutls_privkey_deinit(key);
	est_secret_free(&challenge);
	est_profile_free(&p);
	return rc;
}

int
cmd_mkcsr(int argc, char **argv)
{
	struct args a = { 0 };
	struct est_error e;
	struct cli c;
	int rc;

	cli_init(&c, &verb, argc, argv);
	if ((rc = parse_args(&c, &a)) >= 0)
		return rc;
	if (run(&a, &e) < 0)
		return e.code == EST_EUSAGE ? cli_usage_error(&verb, "%s", e.msg)
			: cli_fail(&verb, &e);
	return 0;
}
