/* estctl cacerts: the EST server's current CA certificates (RFC 7030 4.1),
 * as a PEM bundle. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "client.h"
#include "commands.h"
#include "file.h"

enum { OPT_CACERT = CLI_LONG, OPT_PIN };

static const struct cli_opt opts[] = {
	{ 'u', "url", "URL", "the EST server (ESTAPIURL); /.well-known/est/ is appended unless present" },
	{ 'l', "label", "LABEL", "the CA label: requests go to /.well-known/est/LABEL/" },
	{ OPT_CACERT, "cacert", "FILE", "trust anchors for the server's TLS certificate "
	  "(default: the system's store)" },
	{ OPT_PIN, "pin", "SHA256:HEX", "bootstrap: trust the CA certificate with this fingerprint" },
	{ 'o', "out", "FILE", "write the PEM bundle to FILE (default: standard output)" },
	{ 0, NULL, NULL, NULL }
};

static const struct cli_verb verb = {
	"cacerts", "--url URL [--label L] [--cacert F | --pin SHA256:HEX] [-o FILE]",
	"get the EST server's CA certificates", opts, ""
};

static bool
parse_args(int argc, char **argv, struct est_client_opts *o, const char **out, int *status)
{
	struct est_error e;
	struct cli c;
	int id;

	memset(o, 0, sizeof(*o));
	*out = "-";
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
		case 'o': *out = c.arg; break;
		}
	}
	*status = 0;
	if (c.optind < argc)
		*status = cli_usage_error(&verb, "unexpected argument '%s'", argv[c.optind]);
	else if (est_client_target_check(o, &e) < 0)
		*status = cli_usage_error(&verb, "%s", e.msg);
	return *status == 0;
}

int
cmd_cacerts(int argc, char **argv)
{
	struct est_client_opts o;
	struct est_client *c = NULL;
	struct est_certs certs = { NULL, 0 };
	gnutls_datum_t pem = { NULL, 0 };
	struct est_error e = { 0 };
	const char *out;
	int status, rc;

	if (!parse_args(argc, argv, &o, &out, &status))
		return status;
	if ((rc = est_client_new(&o, &c, &e)) >= 0 && (rc = est_client_cacerts(c, &certs, &e)) >= 0 &&
	    (rc = est_certs_pem(&certs, &pem, &e)) >= 0)
		rc = est_file_write(out, pem.data, pem.size, 0, &e);
	free(pem.data);
	est_certs_free(&certs);
	est_client_free(c);
	return rc < 0 ? cli_fail(&verb, &e) : 0;
}
