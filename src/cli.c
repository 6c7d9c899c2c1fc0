#include "config.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { OPT_HELP = -100, OPT_LIST = -101 };
#define CLI_MAX_OPTS 48

static size_t
count_opts(const struct cli_opt *o)
{
	size_t n = 0;

	while (o != NULL && o[n].name != NULL)
		n++;
	return n;
}

void
cli_init(struct cli *c, const struct cli_verb *verb, int argc, char **argv)
{
	memset(c, 0, sizeof(*c));
	c->verb = verb;
	c->argc = argc;
	c->argv = argv;
	optind = 0;     /* glibc: 0 reinitialises getopt for a new vector */
	opterr = 0;
}

void
cli_help(const struct cli_verb *v, FILE *f)
{
	const struct cli_opt *o;
	char left[64];

	fprintf(f, "usage: estctl %s %s\n\n%s\n", v->name, v->synopsis, v->summary);
	if (v->opts != NULL && v->opts[0].name != NULL)
		fputs("\noptions:\n", f);
	for (o = v->opts; o != NULL && o->name != NULL; o++) {
		if (o->id > 32 && o->id < 127)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", o->id, o->name,
				 o->arg ? " " : "", o->arg ? o->arg : "");
		else
			snprintf(left, sizeof(left), "    --%s%s%s", o->name, o->arg ? " " : "",
				 o->arg ? o->arg : "");
		fprintf(f, "  %-28s %s\n", left, o->help);
	}
	fprintf(f, "  %-28s %s\n", "-h, --help", "show this help");
	fprintf(f, "\nexit status: 0 success, 1 negative answer, 64 usage, 65 bad data, "
		"66 no input,\n69 unavailable, 70 internal, 73 exists, 74 I/O, 75 try later, "
		"76 protocol,\n77 refused, 78 configuration. See estctl-%.*s(1).\n",
		(int)strcspn(v->name, " "), v->name);
}

int
cli_usage_error(const struct cli_verb *verb, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "estctl %s: ", verb->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: estctl %s %s\n", verb->name, verb->synopsis);
	return 64;
}

int
cli_fail(const struct cli_verb *verb, const struct est_error *e)
{
	fprintf(stderr, "estctl %s: %s\n", verb->name, e->msg);
	return est_exit_code(e->code);
}

/* Levenshtein distance, bounded to short words. */
static size_t
distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), i, j, prev, tmp, row[65];

	if (la > 64 || lb > 64)
		return 99;
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			tmp = row[j];
			row[j] = a[i - 1] == b[j - 1] ? prev
				: 1 + (prev < row[j] ? (prev < row[j - 1] ? prev : row[j - 1])
				       : (row[j] < row[j - 1] ? row[j] : row[j - 1]));
			prev = tmp;
		}
	}
	return row[lb];
}

const char *
cli_suggest(const char *word, const char *const *cand)
{
	const char *best = NULL;
	size_t d, bestd = 99, lw = strlen(word);

	for (; *cand != NULL; cand++) {
		d = distance(word, *cand);
		if (strncmp(word, *cand, lw) == 0 && lw >= 3)
			d = 1;  /* an unambiguous-looking prefix */
		if (d < bestd) {
			bestd = d;
			best = *cand;
		}
	}
	return bestd <= 2 || (best != NULL && bestd * 3 <= strlen(best)) ? best : NULL;
}

static int
unknown_option(struct cli *c, const char *word)
{
	const char *names[64];
	const char *s, *name = word;
	size_t i, n = 0;
	char buf[80];

	while (*name == '-')
		name++;
	snprintf(buf, sizeof(buf), "%.*s", (int)strcspn(name, "="), name);
	for (i = 0; c->verb->opts != NULL && c->verb->opts[i].name != NULL && n < 62; i++)
		names[n++] = c->verb->opts[i].name;
	names[n++] = "help";
	names[n] = NULL;
	s = word[1] == '-' ? cli_suggest(buf, names) : NULL;
	if (s != NULL)
		c->status = cli_usage_error(c->verb, "unknown option '%s' (did you mean '--%s'?)",
					    word, s);
	else
		c->status = cli_usage_error(c->verb, "unknown option '%s'", word);
	return CLI_EXIT;
}

static void
list_options(const struct cli_verb *v)
{
	const struct cli_opt *o;

	for (o = v->opts; o != NULL && o->name != NULL; o++)
		printf("--%s%s\n", o->name, o->arg ? "=" : "");
	printf("--help\n");
	if (v->operands != NULL && *v->operands)
		printf(":%s\n", v->operands);
}

int
cli_next(struct cli *c)
{
	size_t n = count_opts(c->verb->opts), i, k = 0;
	struct option lo[CLI_MAX_OPTS + 3];
	char shorts[2 * CLI_MAX_OPTS + 8];
	int r, idx = -1;

	if (n > CLI_MAX_OPTS)
		n = CLI_MAX_OPTS;
	shorts[k++] = '+';      /* stop at the first operand, like git */
	shorts[k++] = ':';
	for (i = 0; i < n; i++) {
		const struct cli_opt *o = &c->verb->opts[i];

		lo[i] = (struct option){ o->name, o->arg ? required_argument : no_argument, NULL,
					 o->id };
		if (o->id > 32 && o->id < 127) {
			shorts[k++] = (char)o->id;
			if (o->arg)
				shorts[k++] = ':';
		}
	}
	lo[n] = (struct option){ "help", no_argument, NULL, OPT_HELP };
	lo[n + 1] = (struct option){ "list-options", no_argument, NULL, OPT_LIST };
	lo[n + 2] = (struct option){ NULL, 0, NULL, 0 };
	shorts[k++] = 'h';
	shorts[k] = '\0';

	r = getopt_long(c->argc, c->argv, shorts, lo, &idx);
	c->arg = optarg;
	c->optind = optind;
	switch (r) {
	case -1:
		return CLI_END;
	case 'h':
	case OPT_HELP:
		cli_help(c->verb, stdout);
		c->status = 0;
		return CLI_EXIT;
	case OPT_LIST:
		list_options(c->verb);
		c->status = 0;
		return CLI_EXIT;
	case ':':
		c->status = cli_usage_error(c->verb, "option '%s' needs an argument",
					    c->argv[optind - 1]);
		return CLI_EXIT;
	case '?':
		if (optopt != 0 && optopt < CLI_LONG && optopt > 32 && optopt < 127 &&
		    c->argv[optind - 1][1] != '-') {
			char w[3] = { '-', (char)optopt, 0 };
			return unknown_option(c, w);
		}
		return unknown_option(c, c->argv[optind - 1]);
	default:
		return r;
	}
}

int
cli_parse_duration(const char *s, long long *seconds)
{
	char *end;
	long long v, mul = 1;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	v = strtoll(s, &end, 10);
	switch (*end) {
	case '\0': case 's': mul = 1; break;
	case 'm': mul = 60; break;
	case 'h': mul = 3600; break;
	case 'd': mul = 86400; break;
	case 'w': mul = 7 * 86400; break;
	default: return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (v < 0 || v > (long long)1e15 / mul)
		return -1;
	*seconds = v * mul;
	return 0;
}
