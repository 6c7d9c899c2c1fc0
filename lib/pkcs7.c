#include "config.h"

#include <string.h>

#include <gnutls/pkcs7.h>

#include "b64.h"
#include "pkcs7.h"

/* A certs-only reply never holds more than a chain's worth of certificates;
 * anything larger is not an EST reply. */
#define MAX_CERTS 64

int
est_pkcs7_build(const gnutls_datum_t *certs, size_t n, gnutls_datum_t *out,
		struct est_error *e)
{
	gnutls_pkcs7_t p7 = NULL;
	size_t i;
	int rc;

	out->data = NULL;
	out->size = 0;
	if (n == 0)
		return est_fail(e, EST_EINTERNAL, "a certs-only pkcs#7 needs a certificate");
	if ((rc = gnutls_pkcs7_init(&p7)) < 0)
		goto fail;
	for (i = 0; i < n; i++)
		if ((rc = gnutls_pkcs7_set_crt_raw(p7, &certs[i])) < 0)
			goto fail;
	if ((rc = gnutls_pkcs7_export2(p7, GNUTLS_X509_FMT_DER, out)) < 0)
		goto fail;
	rc = 0;
	goto out;
fail:
	rc = est_fail(e, EST_EINTERNAL, "building a certs-only pkcs#7: %s", gnutls_strerror(rc));
out:
	gnutls_pkcs7_deinit(p7);
	return rc;
}

int
est_pkcs7_build_crts(const gnutls_x509_crt_t *certs, size_t n, gnutls_datum_t *out,
		     struct est_error *e)
{
	gnutls_datum_t *der;
	size_t i;
	int rc = 0;

	out->data = NULL;
	out->size = 0;
	if ((der = gnutls_calloc(n ? n : 1, sizeof(*der))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	for (i = 0; i < n && rc == 0; i++)
		if ((rc = gnutls_x509_crt_export2(certs[i], GNUTLS_X509_FMT_DER, &der[i])) < 0)
			rc = est_fail(e, EST_EINTERNAL, "exporting a certificate: %s",
				      gnutls_strerror(rc));
	if (rc == 0)
		rc = est_pkcs7_build(der, n, out, e);
	for (i = 0; i < n; i++)
		gnutls_free(der[i].data);
	gnutls_free(der);
	return rc;
}

/* DER from whichever form the reply came in: PEM, raw DER (starts with a
 * SEQUENCE tag), or base64 of DER. */
static int
to_der(const unsigned char *data, size_t len, const char *name, gnutls_pkcs7_t p7,
       struct est_error *e)
{
	gnutls_datum_t in = { (unsigned char *)data, (unsigned)len }, der = { NULL, 0 };
	int rc;

	if (len > 0 && data[0] == 0x30) {
		rc = gnutls_pkcs7_import(p7, &in, GNUTLS_X509_FMT_DER);
	} else if (len >= 11 && memmem(data, len, "-----BEGIN", 10) != NULL) {
		rc = gnutls_pkcs7_import(p7, &in, GNUTLS_X509_FMT_PEM);
	} else {
		if ((rc = est_b64_decode(data, len, &der, e)) < 0) {
			est_error_prefix(e, "%s", name);
			return rc;
		}
		rc = gnutls_pkcs7_import(p7, &der, GNUTLS_X509_FMT_DER);
		gnutls_free(der.data);
	}
	if (rc < 0)
		return est_fail(e, EST_EDATA, "%s: not a pkcs#7 structure: %s", name,
				gnutls_strerror(rc));
	return 0;
}

/* Certificate I of P7 into *CRT (NULL on failure); a GnuTLS error code. */
static int
import_one(gnutls_pkcs7_t p7, unsigned i, gnutls_x509_crt_t *crt)
{
	gnutls_datum_t raw = { NULL, 0 };
	int rc;

	*crt = NULL;
	if ((rc = gnutls_pkcs7_get_crt_raw2(p7, i, &raw)) < 0)
		return rc;
	if ((rc = gnutls_x509_crt_init(crt)) == 0)
		rc = gnutls_x509_crt_import(*crt, &raw, GNUTLS_X509_FMT_DER);
	gnutls_free(raw.data);
	if (rc < 0) {
		gnutls_x509_crt_deinit(*crt);
		*crt = NULL;
	}
	return rc;
}

int
est_pkcs7_parse(const unsigned char *data, size_t len, const char *name,
		gnutls_x509_crt_t **certs, unsigned *n, struct est_error *e)
{
	gnutls_pkcs7_t p7 = NULL;
	gnutls_x509_crt_t *list = NULL;
	int count, i, rc;
	unsigned got = 0;

	*certs = NULL;
	*n = 0;
	if ((rc = gnutls_pkcs7_init(&p7)) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "%s: %s", name, gnutls_strerror(rc));
		goto out;
	}
	if ((rc = to_der(data, len, name, p7, e)) < 0)
		goto out;
	count = gnutls_pkcs7_get_crt_count(p7);
	if (count <= 0 || count > MAX_CERTS) {
		rc = est_fail(e, EST_EDATA, "%s: %d certificates in the pkcs#7 (expected 1 to %d)",
			      name, count < 0 ? 0 : count, MAX_CERTS);
		goto out;
	}
	if ((list = gnutls_calloc((size_t)count, sizeof(*list))) == NULL) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	for (i = 0; i < count; i++, got++) {
		if ((rc = import_one(p7, (unsigned)i, &list[i])) < 0) {
			rc = est_fail(e, EST_EDATA, "%s: certificate %d: %s", name, i + 1,
				      gnutls_strerror(rc));
			goto out;
		}
	}
	*certs = list;
	*n = got;
	list = NULL;
	rc = 0;
out:
	est_pkcs7_free_certs(list, got);
	gnutls_pkcs7_deinit(p7);
	return rc;
}

void
est_pkcs7_free_certs(gnutls_x509_crt_t *certs, unsigned n)
{
	unsigned i;

	if (certs == NULL)
		return;
	for (i = 0; i < n; i++)
		gnutls_x509_crt_deinit(certs[i]);
	gnutls_free(certs);
}
