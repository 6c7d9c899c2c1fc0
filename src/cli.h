/* The command-line layer shared by every verb: one options table per verb
 * feeds getopt_long, --help, --list-options (for completion) and the
 * "did you mean" hint. Only src/ and commands/ print or choose exit codes. */
#ifndef EST_CLI_H
#define EST_CLI_H

#include <stdio.h>

#include "err.h"

/* One option. ID is the value cli_next() returns: a printable character is
 * also the short option -ID; long-only options use ids from CLI_LONG up. */
struct cli_opt {
	int id;
	const char *name;   /* long name, without "--" */
	const char *arg;    /* argument placeholder, or NULL for a flag */
	const char *help;
};

#define CLI_LONG 256

struct cli_verb {
	const char *name;       /* "keygen", or "server init" */
	const char *synopsis;   /* after "usage: estctl NAME " */
	const char *summary;    /* one line, for estctl --help */
	const struct cli_opt *opts;  /* ends with { 0 } */
	const char *operands;   /* completion hint for operands: "file", "dir", "" */
};

struct cli {
	const struct cli_verb *verb;
	int argc;
	char **argv;
	const char *arg;        /* the current option's argument */
	int optind;             /* first operand once cli_next() returned CLI_END */
	int status;             /* exit status after CLI_EXIT */
	void *priv;
};

enum { CLI_END = -1, CLI_EXIT = -2 };

/* Start parsing ARGV (argv[0] is the verb's name). */
void cli_init(struct cli *c, const struct cli_verb *verb, int argc, char **argv);

/* The next option's id; CLI_END when only operands remain (from c->optind);
 * CLI_EXIT when the command should return c->status now (--help was printed,
 * or a usage error was reported). */
int cli_next(struct cli *c);

/* Report a usage problem (printf-style) with the verb's usage line; returns 64. */
int cli_usage_error(const struct cli_verb *verb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Print "estctl VERB: MESSAGE" for E on stderr; returns E's exit status. */
int cli_fail(const struct cli_verb *verb, const struct est_error *e);

/* Print the full help of VERB to F. */
void cli_help(const struct cli_verb *verb, FILE *f);

/* The closest of CANDIDATES (NULL-terminated) to WORD, or NULL if none is close. */
const char *cli_suggest(const char *word, const char *const *candidates);

/* Parse a duration such as 30d, 12h, 90m, 45s (a bare number is seconds). */
int cli_parse_duration(const char *s, long long *seconds);

#endif
