/* estctl csrattrs: what the EST server asks CSRs to carry (RFC 7030 4.5),
 * one OID per line; an attribute's value OIDs follow it on its line. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "commands.h"

enum { OPT_CACERT = CLI_LONG, OPT_PIN };

static const struct cli_opt opts[] = {
	{ 'u', "url", "URL", "the EST server (ESTAPIURL); /.well-known/est/ is appended unless present" },
	{ 'l', "label", "LABEL", "the CA label: requests go to /.well-known/est/LABEL/" },
	{ OPT_CACERT, "cacert", "FILE", "trust anchors for the server's TLS certificate "
	  "(default: the system's store)" },
	{ OPT_PIN, "pin", "SHA256:HEX", "bootstrap: trust the CA certificate with this fingerprint" },
	{ 0, NULL, NULL, NULL }
};

static const struct cli_verb verb = {
	"csrattrs", "--url URL [--label L] [--cacert F | --pin SHA256:HEX]",
	"list the attributes the EST server wants in CSRs", opts, ""
};

static bool
parse_args(int argc, char **argv, struct est_client_opts *o, int *status)
{
	struct est_error e;
	struct cli c;
	int id;

	memset(o, 0, sizeof(*o));
	cli_init(&c, &verb, argc, argv);
	while ((id = cli_next(&c)) != CLI_END) {
		switch (id) {
		case CLI_EXIT:
			*status = c.status;
			return false;
		case 'u': o->url = c.arg; break;
		case 'l': o->label = c.arg; break;
		case OPT_CACERT: o->cacert = c.arg; break;
		case OPT_PIN: o->pin = c.arg; break;
		}
	}
	*status = 0;
	if (c.optind < argc)
		*status = cli_usage_error(&verb, "unexpected argument '%s'", argv[c.optind]);
	else if (est_client_target_check(o, &e) < 0)
		*status = cli_usage_error(&verb, "%s", e.msg);
	return *status == 0;
}

static int
fetch(struct est_client *c, char ***oids, size_t *n, struct est_error *e)
{
	struct est_request r = { .op = EST_OP_CSRATTRS };
	struct est_result res;
	int rc;

	*oids = NULL;
	*n = 0;
	/* With a pin, trust comes from cacerts first (RFC 7030 4.1.1). */
	if (est_client_ca(c) == NULL && (rc = est_client_cacerts(c, NULL, e)) < 0)
		return rc;
	if ((rc = est_client_do(c, &r, &res, e)) >= 0)
		rc = est_client_csrattrs_parse(res.der.data, res.der.size, oids, n, e);
	est_result_free(&res);
	return rc;
}

int
cmd_csrattrs(int argc, char **argv)
{
	struct est_client_opts o;
	struct est_client *c = NULL;
	struct est_error e = { 0 };
	char **oids = NULL;
	size_t i, n = 0;
	int status, rc;

	if (!parse_args(argc, argv, &o, &status))
		return status;
	if ((rc = est_client_new(&o, &c, &e)) >= 0 && (rc = fetch(c, &oids, &n, &e)) >= 0)
		for (i = 0; i < n; i++)
			printf("%s\n", oids[i]);
	for (i = 0; i < n; i++)
		free(oids[i]);
	free(oids);
	est_client_free(c);
	return rc < 0 ? cli_fail(&verb, &e) : 0;
}
