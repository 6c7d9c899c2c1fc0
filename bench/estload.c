/* A load generator for estctl server: N client threads, each with its own
 * libcurl handle, POST sealed CSRs (made up front, so generating them is not
 * measured) to simpleenroll, either on one keep-alive connection per client
 * or with a new TLS handshake per request (no reuse, no session resumption).
 *   bench/estload URL CAFILE KEYFILE KEYID CLIENTS REQUESTS keepalive|handshake PREFIX
 * URL is the base (https://127.0.0.1:PORT/.well-known/est); things are named
 * PREFIX-<n>. Prints one JSON object: rate, p50/p99 latency, failures. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include <curl/curl.h>
#include <gnutls/gnutls.h>

#include "b64.h"
#include "csr.h"
#include "env.h"
#include "key.h"
#include "profile.h"

struct shared {
	const char *url, *cafile;
	char enroll_url[512];
	int handshake;
	gnutls_datum_t *bodies;
	double *lat;                    /* ms per request */
	long next, n, ok, failed;
	pthread_mutex_t lock;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A sealed, base64 CSR for THING. */
static int
make_body(const struct est_secret *kek, const char *keyid, const char *thing,
	  gnutls_datum_t *out)
{
	char res[160], *resources[1] = { res };
	struct est_permission perm = { EST_ACT_CONNECT, EST_EFFECT_ALLOW, 1, resources };
	struct est_profile p = { 1, (char *)thing, 1, &perm };
	gnutls_x509_privkey_t xk = NULL;
	gnutls_privkey_t key = NULL;
	gnutls_x509_crq_t crq = NULL;
	gnutls_datum_t der = { NULL, 0 }, sealed = { NULL, 0 };
	struct est_error e;
	int rc;

	snprintf(res, sizeof(res), "client/%s", thing);
	if ((rc = est_key_generate(EST_KEY_EC_P256, &xk, &e)) < 0 || gnutls_privkey_init(&key) < 0 ||
	    gnutls_privkey_import_x509(key, xk, 0) < 0 ||
	    (rc = est_csr_build(key, &p, NULL, 0, NULL, &crq, &e)) < 0 ||
	    (rc = est_csr_export(crq, 1, &der, &e)) < 0 ||
	    (rc = est_env_seal(kek, keyid, der.data, der.size, &sealed, &e)) < 0 ||
	    (rc = est_b64_encode(sealed.data, sealed.size, 1, out, &e)) < 0)
		fprintf(stderr, "estload: %s\n", e.msg);
	gnutls_free(der.data);
	gnutls_free(sealed.data);
	if (crq != NULL)
		gnutls_x509_crq_deinit(crq);
	gnutls_privkey_deinit(key);
	gnutls_x509_privkey_deinit(xk);
	return rc < 0 ? -1 : 0;
}

static size_t
sink(char *p, size_t size, size_t n, void *arg)
{
	return size * n;
}

static CURL *
handle(const struct shared *s, struct curl_slist *hdrs)
{
	CURL *c = curl_easy_init();

	curl_easy_setopt(c, CURLOPT_URL, s->enroll_url);
	curl_easy_setopt(c, CURLOPT_CAINFO, s->cafile);
	/* only our CA: loading the system store would cost each handshake more than
	 * the server spends on it */
	curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (s->handshake) {
		curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L);
		curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
		curl_easy_setopt(c, CURLOPT_SSL_SESSIONID_CACHE, 0L);
	}
	return c;
}

static void *
client(void *arg)
{
	struct shared *s = arg;
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/pkcs7-mime;"
						    " smime-type=authEnveloped-data");
	CURL *c = handle(s, hdrs);
	long i, code;
	double t0;
	int ok;

	for (;;) {
		pthread_mutex_lock(&s->lock);
		i = s->next < s->n ? s->next++ : -1;
		pthread_mutex_unlock(&s->lock);
		if (i < 0)
			break;
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, s->bodies[i].data);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)s->bodies[i].size);
		t0 = now_s();
		code = 0;
		ok = curl_easy_perform(c) == CURLE_OK &&
		     curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) == CURLE_OK && code == 200;
		s->lat[i] = (now_s() - t0) * 1e3;
		pthread_mutex_lock(&s->lock);
		if (ok)
			s->ok++;
		else
			s->failed++;
		pthread_mutex_unlock(&s->lock);
	}
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	return NULL;
}

/* CPU seconds this process has used: the load generator shares the cores
 * with the server, so its own cost is part of the figure. */
static double
cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	struct shared s;
	struct est_secret kek = { NULL, 0 };
	struct est_error e;
	pthread_t th[256];
	char thing[128];
	long i, clients;
	double t0, c0, secs, cpu;

	if (argc != 9) {
		fprintf(stderr, "usage: estload URL CAFILE KEYFILE KEYID CLIENTS REQUESTS "
			"keepalive|handshake PREFIX\n");
		return 64;
	}
	memset(&s, 0, sizeof(s));
	s.url = argv[1];
	s.cafile = argv[2];
	snprintf(s.enroll_url, sizeof(s.enroll_url), "%s/simpleenroll", s.url);
	clients = atol(argv[5]);
	s.n = atol(argv[6]);
	s.handshake = strcmp(argv[7], "handshake") == 0;
	if (clients < 1 || clients > 256 || s.n < 1 || est_enrkey_load(argv[3], &kek, &e) < 0) {
		fprintf(stderr, "estload: bad arguments or key\n");
		return 64;
	}
	pthread_mutex_init(&s.lock, NULL);
	s.bodies = calloc((size_t)s.n, sizeof(*s.bodies));
	s.lat = calloc((size_t)s.n, sizeof(*s.lat));
	for (i = 0; i < s.n; i++) {
		snprintf(thing, sizeof(thing), "%s-%ld", argv[8], i);
		if (make_body(&kek, argv[4], thing, &s.bodies[i]) < 0)
			return 70;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	t0 = now_s();
	c0 = cpu_s();
	for (i = 0; i < clients; i++)
		pthread_create(&th[i], NULL, client, &s);
	for (i = 0; i < clients; i++)
		pthread_join(th[i], NULL);
	secs = now_s() - t0;
	cpu = cpu_s() - c0;
	qsort(s.lat, (size_t)s.n, sizeof(*s.lat), cmp_double);
	printf("{\"mode\":\"%s\",\"clients\":%ld,\"requests\":%ld,\"ok\":%ld,\"failed\":%ld,"
	       "\"seconds\":%.3f,\"rate\":%.1f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,"
	       "\"client_cpu_us\":%.0f}\n",
	       argv[7], clients, s.n, s.ok, s.failed, secs, (double)s.ok / secs,
	       s.lat[s.n / 2], s.lat[(s.n * 99) / 100], cpu * 1e6 / (double)s.n);
	for (i = 0; i < s.n; i++)
		gnutls_free(s.bodies[i].data);
	free(s.bodies);
	free(s.lat);
	est_secret_free(&kek);
	curl_global_cleanup();
	return s.failed ? 1 : 0;
}
