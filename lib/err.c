#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

static const struct {
	int exit;
	const char *name;
} table[EST_ERR__MAX] = {
	[EST_OK] = { 0, "ok" },
	[EST_ENEGATIVE] = { 1, "negative" },
	[EST_EUSAGE] = { 64, "usage" },
	[EST_EDATA] = { 65, "data" },
	[EST_ENOINPUT] = { 66, "noinput" },
	[EST_EUNAVAIL] = { 69, "unavailable" },
	[EST_EINTERNAL] = { 70, "internal" },
	[EST_EEXIST] = { 73, "exists" },
	[EST_EIO] = { 74, "io" },
	[EST_ETEMPFAIL] = { 75, "tempfail" },
	[EST_EPROTO] = { 76, "protocol" },
	[EST_EREFUSED] = { 77, "refused" },
	[EST_ECONFIG] = { 78, "config" },
};

int
est_fail(struct est_error *e, enum est_err code, const char *fmt, ...)
{
	va_list ap;

	if (e != NULL) {
		e->code = code;
		va_start(ap, fmt);
		vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
		va_end(ap);
	}
	return -(int)code;
}

void
est_error_prefix(struct est_error *e, const char *fmt, ...)
{
	char head[256], old[sizeof(e->msg)];
	va_list ap;

	if (e == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	snprintf(e->msg, sizeof(e->msg), "%s: %s", head, old);
}

int
est_exit_code(enum est_err code)
{
	if ((int)code < 0 || code >= EST_ERR__MAX)
		return 70;
	return table[code].exit;
}

const char *
est_err_name(enum est_err code)
{
	if ((int)code < 0 || code >= EST_ERR__MAX)
		return "internal";
	return table[code].name;
}

int
est_strv_addf(char ***list, size_t *n, const char *fmt, ...)
{
	char **grown, *msg, buf[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if ((msg = strdup(buf)) == NULL)
		return -EST_EINTERNAL;
	if ((grown = realloc(*list, (*n + 1) * sizeof(char *))) == NULL) {
		free(msg);
		return -EST_EINTERNAL;
	}
	*list = grown;
	(*list)[(*n)++] = msg;
	return 0;
}
