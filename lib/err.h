/* Errors of libestctl: every function returns 0 or a negative enum est_err,
 * and fills a struct est_error with a one-line message a person can act on. */
#ifndef EST_ERR_H
#define EST_ERR_H

#include <stddef.h>

enum est_err {
	EST_OK = 0,
	EST_ENEGATIVE,  /* a negative answer: not valid, not due (exit 1) */
	EST_EUSAGE,     /* bad command line (64) */
	EST_EDATA,      /* bad input data (65) */
	EST_ENOINPUT,   /* input missing (66) */
	EST_EUNAVAIL,   /* server unreachable or 5xx (69) */
	EST_EINTERNAL,  /* a bug or a library failure (70) */
	EST_EEXIST,     /* refuses to overwrite (73) */
	EST_EIO,        /* I/O error (74) */
	EST_ETEMPFAIL,  /* try again later (75) */
	EST_EPROTO,     /* protocol error (76) */
	EST_EREFUSED,   /* refused by the server (77) */
	EST_ECONFIG,    /* bad configuration (78) */
	EST_ERR__MAX
};

struct est_error {
	enum est_err code;
	char msg[512];
};

/* Record CODE and the printf-style message in E (which may be NULL);
 * returns -CODE so callers can `return est_fail(e, EST_EDATA, ...)`. */
int est_fail(struct est_error *e, enum est_err code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefix E's message with "WHAT: " (for adding the file or field name). */
void est_error_prefix(struct est_error *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Append a printf-style line to the string list *LIST of *N entries (config
 * warnings and the like); 0, or -EST_EINTERNAL when out of memory. */
int est_strv_addf(char ***list, size_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The documented process exit status for CODE (0, 1, 64..78). */
int est_exit_code(enum est_err code);

/* A short stable name for CODE ("data", "io", ...) for --json output. */
const char *est_err_name(enum est_err code);

#endif
