/* estctl: the command table, global options and the final stdout check. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <gnutls/gnutls.h>

#include "cli.h"
#include "commands.h"

struct est_cmd {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct est_cmd commands[] = {     /* sorted */
	{ "cacerts", cmd_cacerts, "get the CA certificates of an EST server" },
	{ "csrattrs", cmd_csrattrs, "list the attributes an EST server wants in CSRs" },
	{ "encrypt", cmd_encrypt, "seal a CSR under an enrollment key (or open one with -d)" },
	{ "enroll",  cmd_enroll,  "enroll the devices of a config file with an EST server" },
	{ "keygen",  cmd_keygen,  "generate a device key or an enrollment key" },
	{ "mkcsr",   cmd_mkcsr,   "make a CSR carrying a device profile" },
	{ "rotate",  cmd_rotate,  "renew a device certificate before it expires" },
	{ "server",  cmd_server,  "run the EST server and manage its CA, registry and audit log" },
	{ "verify",  cmd_verify,  "check a certificate, a CSR or an audit log" },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *f)
{
	size_t i;

	fputs("usage: estctl [--version] [--help] <command> [<args>]\n\n"
	      "Enrollment over Secure Transport (RFC 7030) for IoT fleets.\n\ncommands:\n", f);
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
	fputs("\n'estctl <command> --help' and estctl-<command>(1) describe each command.\n", f);
}

static const struct est_cmd *
find(const char *name)
{
	size_t i;

	for (i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int
unknown(const char *name)
{
	const char *names[NCOMMANDS + 1], *s;
	size_t i;

	for (i = 0; i < NCOMMANDS; i++)
		names[i] = commands[i].name;
	names[NCOMMANDS] = NULL;
	s = name[0] == '-' ? NULL : cli_suggest(name, names);
	if (name[0] == '-')
		fprintf(stderr, "estctl: unknown option '%s'\n", name);
	else if (s != NULL)
		fprintf(stderr, "estctl: '%s' is not a command (did you mean '%s'?)\n", name, s);
	else
		fprintf(stderr, "estctl: '%s' is not a command\n", name);
	fputs("usage: estctl [--version] [--help] <command> [<args>]\n", stderr);
	return 64;
}

static int
dispatch(int argc, char **argv)
{
	const struct est_cmd *c;
	char *help[] = { NULL, "--help", NULL };
	size_t i;

	if (argc < 2) {
		usage(stderr);
		return 64;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("estctl %s (GnuTLS %s)\n", PACKAGE_VERSION, gnutls_check_version(NULL));
		return 0;
	}
	if (strcmp(argv[1], "--list-commands") == 0) {
		for (i = 0; i < NCOMMANDS; i++)
			printf("%s\n", commands[i].name);
		return 0;
	}
	if (strcmp(argv[1], "help") == 0) {
		if (argc < 3) {
			usage(stdout);
			return 0;
		}
		if ((c = find(argv[2])) == NULL)
			return unknown(argv[2]);
		help[0] = argv[2];
		return c->fn(2, help);
	}
	if ((c = find(argv[1])) == NULL)
		return unknown(argv[1]);
	return c->fn(argc - 1, argv + 1);
}

int
main(int argc, char **argv)
{
	int status;

	/* A closed pipe must be an error we report (exit 74), not a silent death. */
	signal(SIGPIPE, SIG_IGN);
	status = dispatch(argc, argv);
	if (fflush(stdout) != 0 || ferror(stdout) || fclose(stdout) != 0) {
		fprintf(stderr, "estctl: write failure on standard output: %s\n", strerror(errno));
		if (status == 0)
			status = 74;
	}
	return status;
}
