/* The in-process issuance rate: what one enrollment costs in crypto and
 * encoding alone (parse CSR, verify it once, build, sign, PEM, certs-only
 * PKCS#7), the reference the server benchmarks report their ratios against.
 *   bench/issue_rate [SECONDS] [THREADS] [CA-TYPE]
 * Prints one JSON object. Build with `make bench/issue_rate`. */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tests/unit/ca_util.h"
#include "csr.h"
#include "pkcs7.h"

struct job {
	struct est_signer *s;
	const gnutls_datum_t *csr;      /* DER, as a request body decodes to */
	gnutls_datum_t ca_der;
	const struct est_profile *prof;
	double seconds;
	long done, failed;
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One enrollment's worth of work; 0 on success. */
static int
one(struct job *j)
{
	gnutls_x509_crq_t crq = NULL;
	struct est_issued iss;
	struct est_error e;
	gnutls_datum_t ders[2], p7 = { NULL, 0 };
	int rc;

	if ((rc = est_csr_parse(j->csr->data, j->csr->size, "csr", &crq, &e)) < 0)
		return rc;
	struct est_issue_req req = { crq, j->prof, 365 * 86400LL, 0 };
	if ((rc = est_signer_issue(j->s, &req, &iss, &e)) == 0) {
		ders[0] = iss.der;
		ders[1] = j->ca_der;
		rc = est_pkcs7_build(ders, 2, &p7, &e);
		gnutls_free(p7.data);
		est_issued_free(&iss);
	}
	gnutls_x509_crq_deinit(crq);
	return rc;
}

static void *
run(void *arg)
{
	struct job *j = arg;
	double end = now_s() + j->seconds;

	while (now_s() < end) {
		if (one(j) < 0)
			j->failed++;
		else
			j->done++;
	}
	return NULL;
}

int
main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3;
	int threads = argc > 2 ? atoi(argv[2]) : 1, i;
	enum est_key_type t = EST_KEY_EC_P256;
	struct est_signer s;
	struct est_profile prof;
	gnutls_x509_crq_t crq;
	gnutls_x509_crt_t ca;
	gnutls_datum_t csr = { NULL, 0 }, ca_der = { NULL, 0 };
	struct job jobs[64];
	pthread_t tid[64];
	long done = 0, failed = 0;
	double t0, t1;

	if (argc > 3 && est_key_type_parse(argv[3], &t, NULL) < 0)
		return 64;
	if (threads < 1 || threads > 64 || tu_signer(t, 3650 * 86400LL, &s, NULL, &ca) < 0 ||
	    tu_crq(EST_KEY_EC_P256, "Dev-1", &crq, NULL) < 0 || tu_profile("Dev-1", &prof) < 0 ||
	    gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_DER, &csr) < 0 ||
	    gnutls_x509_crt_export2(ca, GNUTLS_X509_FMT_DER, &ca_der) < 0) {
		fprintf(stderr, "issue_rate: setting up failed\n");
		return 70;
	}
	t0 = now_s();
	for (i = 0; i < threads; i++) {
		jobs[i] = (struct job){ &s, &csr, ca_der, &prof, seconds, 0, 0 };
		pthread_create(&tid[i], NULL, run, &jobs[i]);
	}
	for (i = 0; i < threads; i++) {
		pthread_join(tid[i], NULL);
		done += jobs[i].done;
		failed += jobs[i].failed;
	}
	t1 = now_s();
	printf("{\"ca\": \"%s\", \"csr\": \"ec-p256\", \"threads\": %d, \"seconds\": %.2f, "
	       "\"issued\": %ld, \"failed\": %ld, \"per_second\": %.0f}\n", est_key_type_names[t],
	       threads, t1 - t0, done, failed, done / (t1 - t0));
	gnutls_free(csr.data);
	gnutls_free(ca_der.data);
	gnutls_x509_crq_deinit(crq);
	gnutls_x509_crt_deinit(ca);
	est_profile_free(&prof);
	est_signer_close(&s);
	return failed != 0;
}
