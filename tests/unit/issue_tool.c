/* A test driver for ca.bats: makes CAs and TLS certificates and issues one
 * certificate from files, so openssl and certtool can judge the results.
 *   issue_tool ca TYPE SUBJECT|- DAYS KEYOUT CERTOUT
 *   issue_tool tls CAKEY CACERT KEYOUT CERTOUT
 *   issue_tool issue CAKEY CACERT CSR DAYS CERTOUT P7OUT
 * issue reads the profile from the CSR, checks it against the default
 * policy and writes the certificate (PEM) and a certs-only PKCS#7 (DER) of
 * it and the CA chain. Exit status as estctl's; errors on stderr. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ca.h"
#include "csr.h"
#include "file.h"
#include "pkcs7.h"
#include "policy.h"

static int
write_crt(const char *path, gnutls_x509_crt_t crt, struct est_error *e)
{
	gnutls_datum_t pem = { NULL, 0 };
	int rc;

	if ((rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &pem)) < 0)
		return est_fail(e, EST_EINTERNAL, "%s", gnutls_strerror(rc));
	rc = est_file_write(path, pem.data, pem.size, 0, e);
	gnutls_free(pem.data);
	return rc;
}

static int
write_key(const char *path, gnutls_x509_privkey_t key, struct est_error *e)
{
	struct est_secret pem = { NULL, 0 };
	int rc;

	if ((rc = est_key_export_pem(key, &pem, e)) == 0)
		rc = est_file_write(path, pem.data, pem.len, EST_WRITE_EXCL | EST_WRITE_PRIVATE, e);
	est_secret_free(&pem);
	return rc;
}

static int
cmd_ca(char **argv, struct est_error *e)
{
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	enum est_key_type t;
	int rc;

	if ((rc = est_key_type_parse(argv[0], &t, e)) < 0 ||
	    (rc = est_ca_create(t, strcmp(argv[1], "-") ? argv[1] : NULL,
				atoll(argv[2]) * 86400, &key, &crt, e)) < 0)
		return rc;
	if ((rc = write_key(argv[3], key, e)) == 0)
		rc = write_crt(argv[4], crt, e);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return rc;
}

static int
cmd_tls(char **argv, struct est_error *e)
{
	static const char *const hosts[] = { "localhost", "127.0.0.1", "::1" };
	gnutls_x509_privkey_t key = NULL;
	gnutls_x509_crt_t crt = NULL;
	const gnutls_x509_crt_t *chain;
	gnutls_privkey_t cakey = NULL;
	struct est_signer s;
	unsigned n;
	int rc;

	/* Opening the signer checks that key and certificate make a CA. */
	if ((rc = est_ca_open(argv[0], argv[1], &s, e)) < 0)
		return rc;
	s.ops->chain(s.ctx, &chain, &n);
	if ((rc = est_key_load(argv[0], &cakey, e)) == 0 &&
	    (rc = est_tls_cert_create(cakey, chain[0], EST_KEY_EC_P256, hosts, 3,
				      EST_CA_DEFAULT_VALIDITY, &key, &crt, e)) == 0 &&
	    (rc = write_key(argv[2], key, e)) == 0)
		rc = write_crt(argv[3], crt, e);
	gnutls_privkey_deinit(cakey);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	est_signer_close(&s);
	return rc;
}

/* The CSR at PATH and its profile, checked against the default policy. */
static int
read_request(const char *path, gnutls_x509_crq_t *crq, struct est_profile *p,
	     struct est_error *e)
{
	gnutls_datum_t data = { NULL, 0 };
	struct est_policy pol;
	int rc, found = 0;

	if ((rc = est_file_read(path, EST_FILE_MAX, &data, e)) < 0)
		return rc;
	rc = est_csr_parse(data.data, data.size, path, crq, e);
	gnutls_free(data.data);
	if (rc < 0)
		return rc;
	if ((rc = est_csr_profile(*crq, p, &found, e)) < 0)
		return rc;
	if (!found)
		return est_fail(e, EST_EDATA, "%s: no device profile", path);
	if ((rc = est_policy_default(&pol, e)) < 0)
		return rc;
	rc = est_policy_check(&pol, p, est_policy_crq_key_type(*crq), e);
	est_policy_free(&pol);
	return rc;
}

static int
cmd_issue(char **argv, struct est_error *e)
{
	struct est_signer s = { NULL, NULL };
	struct est_profile prof = { 0 };
	struct est_issued iss = { 0 };
	gnutls_x509_crq_t crq = NULL;
	const gnutls_x509_crt_t *chain;
	gnutls_datum_t *ders = NULL, p7 = { NULL, 0 };
	unsigned n, i;
	int rc;

	if ((rc = est_ca_open(argv[0], argv[1], &s, e)) < 0 ||
	    (rc = read_request(argv[2], &crq, &prof, e)) < 0)
		goto out;
	struct est_issue_req req = { crq, &prof, atoll(argv[3]) * 86400, 0 };
	if ((rc = est_signer_issue(&s, &req, &iss, e)) < 0 ||
	    (rc = est_file_write(argv[4], iss.pem.data, iss.pem.size, 0, e)) < 0)
		goto out;
	s.ops->chain(s.ctx, &chain, &n);
	ders = calloc(n + 1, sizeof(*ders));
	ders[0] = iss.der;
	for (i = 0; i < n; i++)
		gnutls_x509_crt_export2(chain[i], GNUTLS_X509_FMT_DER, &ders[i + 1]);
	if ((rc = est_pkcs7_build(ders, n + 1, &p7, e)) == 0)
		rc = est_file_write(argv[5], p7.data, p7.size, 0, e);
	for (i = 0; i < n; i++)
		gnutls_free(ders[i + 1].data);
	free(ders);
	if (rc == 0)
		printf("%s %s\n", iss.serial_hex, iss.key_sha256);
out:
	gnutls_free(p7.data);
	est_issued_free(&iss);
	est_profile_free(&prof);
	gnutls_x509_crq_deinit(crq);
	est_signer_close(&s);
	return rc;
}

int
main(int argc, char **argv)
{
	struct est_error e = { 0 };
	int rc;

	if (argc == 7 && strcmp(argv[1], "ca") == 0)
		rc = cmd_ca(argv + 2, &e);
	else if (argc == 6 && strcmp(argv[1], "tls") == 0)
		rc = cmd_tls(argv + 2, &e);
	else if (argc == 8 && strcmp(argv[1], "issue") == 0)
		rc = cmd_issue(argv + 2, &e);
	else {
		fprintf(stderr, "usage: issue_tool ca|tls|issue ...\n");
		return 64;
	}
	if (rc < 0)
		fprintf(stderr, "issue_tool %s: %s\n", argv[1], e.msg);
	return est_exit_code(e.code);
}
