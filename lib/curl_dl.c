/* libcurl, loaded on first use.
 *
 * Debian's libcurl-gnutls pulls in some thirty libraries (Kerberos, LDAP,
 * SASL, RTMP, SSH, OpenSSL's libcrypto), which costs every estctl process
 * about 4 ms and 3.5 MiB at start-up, also the ones that never talk to a
 * server (keygen, mkcsr, encrypt, verify). So estctl does not link libcurl:
 * this file defines the libcurl functions the client uses, and each forwards
 * to the real one, which curl_global_init() loads with dlopen(3).
 *
 * The variadic setters pass their one argument on with the type libcurl
 * itself reads for that option (curl/curl.h: CURLOPTTYPE_*). */
#define CURL_DISABLE_TYPECHECK 1

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include <curl/curl.h>

#include "client.h"

#define CURL_FUNCTIONS(X) \
	X(CURLcode, global_init, (long)) \
	X(void, global_cleanup, (void)) \
	X(CURL *, easy_init, (void)) \
	X(CURLcode, easy_setopt, (CURL *, CURLoption, ...)) \
	X(CURLcode, easy_getinfo, (CURL *, CURLINFO, ...)) \
	X(CURLcode, easy_perform, (CURL *)) \
	X(void, easy_cleanup, (CURL *)) \
	X(void, easy_reset, (CURL *)) \
	X(const char *, easy_strerror, (CURLcode)) \
	X(struct curl_slist *, slist_append, (struct curl_slist *, const char *)) \
	X(void, slist_free_all, (struct curl_slist *)) \
	X(CURLSH *, share_init, (void)) \
	X(CURLSHcode, share_setopt, (CURLSH *, CURLSHoption, ...)) \
	X(CURLSHcode, share_cleanup, (CURLSH *)) \
	X(CURLM *, multi_init, (void)) \
	X(CURLMcode, multi_add_handle, (CURLM *, CURL *)) \
	X(CURLMcode, multi_remove_handle, (CURLM *, CURL *)) \
	X(CURLMcode, multi_perform, (CURLM *, int *)) \
	X(CURLMcode, multi_poll, (CURLM *, struct curl_waitfd *, unsigned, int, int *)) \
	X(CURLMcode, multi_wait, (CURLM *, struct curl_waitfd *, unsigned, int, int *)) \
	X(CURLMsg *, multi_info_read, (CURLM *, int *)) \
	X(CURLMcode, multi_cleanup, (CURLM *)) \
	X(const char *, multi_strerror, (CURLMcode)) \
	X(void, free, (void *))

static struct {
#define FIELD(ret, name, args) ret (*name) args;
	CURL_FUNCTIONS(FIELD)
#undef FIELD
} api;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static char load_error[256];

static void
load(void)
{
	void *h = dlopen(EST_CURL_SONAME, RTLD_NOW | RTLD_LOCAL);

	if (h == NULL) {
		snprintf(load_error, sizeof(load_error), "%s", dlerror());
		return;
	}
#define SYM(ret, name, args) \
	if ((*(void **)&api.name = dlsym(h, "curl_" #name)) == NULL) { \
		snprintf(load_error, sizeof(load_error), "%s: no curl_%s", EST_CURL_SONAME, #name); \
		return; \
	}
	CURL_FUNCTIONS(SYM)
#undef SYM
}

const char *
est_curl_load_error(void)
{
	pthread_once(&once, load);
	return load_error[0] != '\0' ? load_error : NULL;
}

CURLcode
curl_global_init(long flags)
{
	if (est_curl_load_error() != NULL)
		return CURLE_FAILED_INIT;
	return api.global_init(flags);
}

void curl_global_cleanup(void) { api.global_cleanup(); }
CURL *curl_easy_init(void) { return api.easy_init(); }
CURLcode curl_easy_perform(CURL *h) { return api.easy_perform(h); }
void curl_easy_cleanup(CURL *h) { api.easy_cleanup(h); }
void curl_easy_reset(CURL *h) { api.easy_reset(h); }
const char *curl_easy_strerror(CURLcode c) { return api.easy_strerror(c); }
struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s) { return api.slist_append(l, s); }
void curl_slist_free_all(struct curl_slist *l) { api.slist_free_all(l); }
CURLSH *curl_share_init(void) { return api.share_init(); }
CURLSHcode curl_share_cleanup(CURLSH *s) { return api.share_cleanup(s); }
CURLM *curl_multi_init(void) { return api.multi_init(); }
CURLMcode curl_multi_add_handle(CURLM *m, CURL *h) { return api.multi_add_handle(m, h); }
CURLMcode curl_multi_remove_handle(CURLM *m, CURL *h) { return api.multi_remove_handle(m, h); }
CURLMcode curl_multi_perform(CURLM *m, int *n) { return api.multi_perform(m, n); }
CURLMsg *curl_multi_info_read(CURLM *m, int *n) { return api.multi_info_read(m, n); }
CURLMcode curl_multi_cleanup(CURLM *m) { return api.multi_cleanup(m); }
const char *curl_multi_strerror(CURLMcode c) { return api.multi_strerror(c); }
void curl_free(void *p) { api.free(p); }

CURLMcode
curl_multi_poll(CURLM *m, struct curl_waitfd *fds, unsigned n, int timeout, int *ret)
{
	return api.multi_poll(m, fds, n, timeout, ret);
}

CURLMcode
curl_multi_wait(CURLM *m, struct curl_waitfd *fds, unsigned n, int timeout, int *ret)
{
	return api.multi_wait(m, fds, n, timeout, ret);
}

CURLcode
curl_easy_setopt(CURL *h, CURLoption opt, ...)
{
	va_list ap;
	CURLcode rc;

	va_start(ap, opt);
	if (opt < CURLOPTTYPE_OBJECTPOINT)
		rc = api.easy_setopt(h, opt, va_arg(ap, long));
	else if (opt < CURLOPTTYPE_FUNCTIONPOINT)
		rc = api.easy_setopt(h, opt, va_arg(ap, void *));
	else if (opt < CURLOPTTYPE_OFF_T)
		rc = api.easy_setopt(h, opt, va_arg(ap, void (*)(void)));
	else if (opt < CURLOPTTYPE_BLOB)
		rc = api.easy_setopt(h, opt, va_arg(ap, curl_off_t));
	else
		rc = api.easy_setopt(h, opt, va_arg(ap, void *));
	va_end(ap);
	return rc;
}

CURLcode
curl_easy_getinfo(CURL *h, CURLINFO info, ...)
{
	va_list ap;
	CURLcode rc;

	va_start(ap, info);
	rc = api.easy_getinfo(h, info, va_arg(ap, void *));    /* always a pointer */
	va_end(ap);
	return rc;
}

CURLSHcode
curl_share_setopt(CURLSH *s, CURLSHoption opt, ...)
{
	va_list ap;
	CURLSHcode rc;

	va_start(ap, opt);
	if (opt == CURLSHOPT_SHARE || opt == CURLSHOPT_UNSHARE)
		rc = api.share_setopt(s, opt, va_arg(ap, int));
	else if (opt == CURLSHOPT_LOCKFUNC || opt == CURLSHOPT_UNLOCKFUNC)
		rc = api.share_setopt(s, opt, va_arg(ap, void (*)(void)));
	else
		rc = api.share_setopt(s, opt, va_arg(ap, void *));
	va_end(ap);
	return rc;
}
