#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "ca_util.h"

gnutls_x509_crt_t
tu_crt_dup(gnutls_x509_crt_t crt)
{
	gnutls_datum_t der = { NULL, 0 };
	gnutls_x509_crt_t out = NULL;

	if (gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_DER, &der) < 0 ||
	    gnutls_x509_crt_init(&out) < 0 ||
	    gnutls_x509_crt_import(out, &der, GNUTLS_X509_FMT_DER) < 0) {
		gnutls_x509_crt_deinit(out);
		out = NULL;
	}
	gnutls_free(der.data);
	return out;
}

int
tu_signer(enum est_key_type t, long long validity, struct est_signer *s,
	  gnutls_privkey_t *key, gnutls_x509_crt_t *cert)
{
	gnutls_x509_privkey_t xk = NULL;
	gnutls_x509_crt_t crt = NULL, *chain;
	gnutls_privkey_t pk = NULL;
	struct est_error e;
	int rc = -1;

	if (est_ca_create(t, NULL, validity, &xk, &crt, &e) < 0)
		goto out;
	if (key != NULL && (gnutls_privkey_init(key) < 0 ||
			    gnutls_privkey_import_x509(*key, xk, GNUTLS_PRIVKEY_IMPORT_COPY) < 0))
		goto out;
	if (cert != NULL && (*cert = tu_crt_dup(crt)) == NULL)
		goto out;
	if (gnutls_privkey_init(&pk) < 0 ||
	    gnutls_privkey_import_x509(pk, xk, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE) < 0)
		goto out;
	xk = NULL;
	if ((chain = gnutls_malloc(sizeof(*chain))) == NULL)
		goto out;
	chain[0] = crt;
	crt = NULL;
	rc = est_ca_open_mem(pk, chain, 1, s, &e);
	pk = NULL;
out:
	gnutls_privkey_deinit(pk);
	gnutls_x509_privkey_deinit(xk);
	gnutls_x509_crt_deinit(crt);
	return rc;
}

int
tu_crq(enum est_key_type t, const char *cn, gnutls_x509_crq_t *out, gnutls_x509_privkey_t *key)
{
	gnutls_x509_privkey_t xk = NULL;
	gnutls_privkey_t pk = NULL;
	struct est_error e;
	int rc = -1;

	*out = NULL;
	if (est_key_generate(t, &xk, &e) < 0 || gnutls_privkey_init(&pk) < 0 ||
	    gnutls_privkey_import_x509(pk, xk, 0) < 0 || gnutls_x509_crq_init(out) < 0 ||
	    gnutls_x509_crq_set_version(*out, 1) < 0 || gnutls_x509_crq_set_key(*out, xk) < 0)
		goto out;
	if (cn != NULL && gnutls_x509_crq_set_dn_by_oid(*out, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
							(unsigned)strlen(cn)) < 0)
		goto out;
	if (gnutls_x509_crq_privkey_sign(*out, pk, est_key_digest(pk), 0) < 0)
		goto out;
	rc = 0;
out:
	gnutls_privkey_deinit(pk);
	if (rc == 0 && key != NULL)
		*key = xk;
	else
		gnutls_x509_privkey_deinit(xk);
	if (rc < 0) {
		gnutls_x509_crq_deinit(*out);
		*out = NULL;
	}
	return rc;
}

static int
add_perm(struct est_profile *p, enum est_action a, enum est_effect ef, const char *res)
{
	struct est_permission *perm = &p->permissions[p->npermissions++];

	perm->action = a;
	perm->effect = ef;
	perm->nresources = 1;
	if ((perm->resources = calloc(1, sizeof(char *))) == NULL ||
	    (perm->resources[0] = strdup(res)) == NULL)
		return -1;
	return 0;
}

int
tu_profile(const char *thing, struct est_profile *p)
{
	char buf[300];
	int rc = 0;

	memset(p, 0, sizeof(*p));
	p->version = 1;
	if ((p->thing_name = strdup(thing)) == NULL ||
	    (p->permissions = calloc(3, sizeof(*p->permissions))) == NULL)
		return -1;
	snprintf(buf, sizeof(buf), "client/%s", thing);
	rc |= add_perm(p, EST_ACT_CONNECT, EST_EFFECT_ALLOW, buf);
	snprintf(buf, sizeof(buf), "topic/%s/telemetry", thing);
	rc |= add_perm(p, EST_ACT_PUBLISH, EST_EFFECT_ALLOW, buf);
	snprintf(buf, sizeof(buf), "topic/%s/secret", thing);
	rc |= add_perm(p, EST_ACT_SUBSCRIBE, EST_EFFECT_DENY, buf);
	return rc;
}
