/* estctl encrypt: seal a CSR under an enrollment key (DESIGN.md 4.3), or
 * open a sealed one with -d. Output is buffered whole and written only after
 * everything succeeded, so a failure leaves nothing on stdout. */
#define _GNU_SOURCE 1   /* memmem */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include "b64.h"
#include "cli.h"
#include "commands.h"
#include "env.h"
#include "file.h"
#include "key.h"

enum { OPT_KEYID = CLI_LONG, OPT_BASE64, OPT_PEM };

static const struct cli_opt opts[] = {
	{ 'd', "decrypt", NULL, "open a sealed CSR and write the CSR" },
	{ 'k', "key-file", "FILE", "the enrollment key (64 hex characters)" },
	{ OPT_KEYID, "key-id", "ID", "the key's id (default: the key file's name, no extension)" },
	{ OPT_BASE64, "base64", NULL, "write base64 in 64-character lines instead of DER" },
	{ OPT_PEM, "pem", NULL, "with -d: write the CSR as PEM instead of DER" },
	{ 'o', "output", "FILE", "write to FILE instead of standard output" },
	{ 0, NULL, NULL, NULL }
};

static const struct cli_verb verb = {
	"encrypt",
	"[-d] --key-file FILE [--key-id ID] [--base64 | --pem] [-o FILE] [FILE | -]",
	"seal a CSR under an enrollment key, or open a sealed one",
	opts, "file"
};

struct args {
	int decrypt, base64, pem;
	const char *key_file, *key_id, *output, *input;
};

/* The one key this command knows, for est_env_open's lookup. */
struct keyring {
	const char *id;
	const struct est_secret *key;
};

static int
parse_args(struct args *a, int argc, char **argv, int *status)
{
	struct cli c;
	int id;

	memset(a, 0, sizeof(*a));
	cli_init(&c, &verb, argc, argv);
	while ((id = cli_next(&c)) != CLI_END) {
		switch (id) {
		case CLI_EXIT: *status = c.status; return -1;
		case 'd': a->decrypt = 1; break;
		case 'k': a->key_file = c.arg; break;
		case OPT_KEYID: a->key_id = c.arg; break;
		case OPT_BASE64: a->base64 = 1; break;
		case OPT_PEM: a->pem = 1; break;
		case 'o': a->output = c.arg; break;
		}
	}
	a->input = c.optind < argc ? argv[c.optind] : "-";
	*status = 64;
	if (c.optind + 1 < argc)
		return cli_usage_error(&verb, "one input file at most ('%s' is extra)",
				       argv[c.optind + 1]), -1;
	if (a->key_file == NULL)
		return cli_usage_error(&verb, "--key-file is required"), -1;
	if (a->pem && !a->decrypt)
		return cli_usage_error(&verb, "--pem goes with -d (sealing writes DER or --base64)"), -1;
	if (a->base64 && a->decrypt)
		return cli_usage_error(&verb, "--base64 is for sealing (-d reads base64 by itself)"), -1;
	if (est_path_is_std(a->key_file) && est_path_is_std(a->input))
		return cli_usage_error(&verb, "the key and the input cannot both be standard input"), -1;
	if (est_path_is_std(a->key_file) && a->key_id == NULL)
		return cli_usage_error(&verb, "--key-id is required when the key is standard input"), -1;
	return 0;
}

/* IN as DER: PEM (either CSR label), base64, or DER as is. */
static int
unarmor_csr(const gnutls_datum_t *in, const char *name, gnutls_datum_t *der, struct est_error *e)
{
	if (memmem(in->data, in->size, "-----BEGIN", 10) != NULL) {
		if (gnutls_pem_base64_decode2("NEW CERTIFICATE REQUEST", in, der) >= 0 ||
		    gnutls_pem_base64_decode2("CERTIFICATE REQUEST", in, der) >= 0)
			return 0;
		return est_fail(e, EST_EDATA, "%s: no PEM certificate request in it", name);
	}
	if (est_b64_looks_like(in->data, in->size)) {
		if (est_b64_decode(in->data, in->size, der, e) < 0) {
			est_error_prefix(e, "%s", name);
			return -EST_EDATA;
		}
		return 0;
	}
	if ((der->data = gnutls_malloc(in->size > 0 ? in->size : 1)) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	memcpy(der->data, in->data, in->size);
	der->size = in->size;
	return 0;
}

/* The CSR in IN as DER in OUT, once GnuTLS has parsed it and checked its signature. */
static int
load_csr(const gnutls_datum_t *in, const char *name, gnutls_datum_t *out, struct est_error *e)
{
	gnutls_x509_crq_t crq = NULL;
	gnutls_datum_t der = { NULL, 0 };
	int rc;

	if ((rc = unarmor_csr(in, name, &der, e)) < 0)
		return rc;
	if (gnutls_x509_crq_init(&crq) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	if ((rc = gnutls_x509_crq_import(crq, &der, GNUTLS_X509_FMT_DER)) < 0) {
		rc = est_fail(e, EST_EDATA, "%s: not a CSR: %s", name, gnutls_strerror(rc));
		goto out;
	}
	if (gnutls_x509_crq_verify(crq, 0) < 0) {
		rc = est_fail(e, EST_EDATA, "%s: the CSR's signature does not verify", name);
		goto out;
	}
	if ((rc = gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_DER, out)) < 0)
		rc = est_fail(e, EST_EINTERNAL, "%s: exporting the CSR: %s", name,
			      gnutls_strerror(rc));
out:
	if (crq != NULL)
		gnutls_x509_crq_deinit(crq);
	gnutls_free(der.data);
	return rc < 0 ? rc : 0;
}

static int
seal(const struct args *a, const struct est_secret *key, const char *keyid,
     const gnutls_datum_t *in, const char *name, gnutls_datum_t *out, struct est_error *e)
{
	gnutls_datum_t csr = { NULL, 0 }, env = { NULL, 0 };
	int rc;

	if ((rc = load_csr(in, name, &csr, e)) < 0)
		goto out;
	if ((rc = est_env_seal(key, keyid, csr.data, csr.size, &env, e)) < 0)
		goto out;
	if (!a->base64) {
		*out = env;
		env.data = NULL;
	} else {
		rc = est_b64_encode(env.data, env.size, 1, out, e);
	}
out:
	gnutls_free(csr.data);
	gnutls_free(env.data);
	return rc;
}

static int
lookup(void *ctx, const char *keyid, struct est_secret *key, struct est_error *e)
{
	const struct keyring *k = ctx;

	if (strcmp(keyid, k->id) != 0)
		return est_fail(e, EST_EDATA, "unknown key id '%s' (the key given is '%s')", keyid,
				k->id);
	if (est_secret_alloc(key, k->key->len) < 0)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	memcpy(key->data, k->key->data, k->key->len);
	return 0;
}

/* The envelope in IN as DER: DER as is, PEM "CMS", or base64. */
static int
unarmor_env(const gnutls_datum_t *in, const char *name, gnutls_datum_t *der, struct est_error *e)
{
	if (est_env_is_sealed(in->data, in->size)) {
		if ((der->data = gnutls_malloc(in->size)) == NULL)
			return est_fail(e, EST_EINTERNAL, "out of memory");
		memcpy(der->data, in->data, in->size);
		der->size = in->size;
		return 0;
	}
	if (memmem(in->data, in->size, "-----BEGIN", 10) != NULL &&
	    gnutls_pem_base64_decode2("CMS", in, der) >= 0)
		return 0;
	if (in->size > 0 && est_b64_looks_like(in->data, in->size) &&
	    est_b64_decode(in->data, in->size, der, e) == 0)
		return 0;
	return est_fail(e, EST_EDATA, "%s: not a sealed CSR (DER, PEM or base64 expected)", name);
}

static int
open_env(const struct args *a, const struct est_secret *key, const char *keyid,
	 const gnutls_datum_t *in, const char *name, gnutls_datum_t *out, struct est_error *e)
{
	struct keyring ring = { keyid, key };
	struct est_secret plain = { NULL, 0 };
	gnutls_datum_t der = { NULL, 0 }, csr;
	gnutls_x509_crq_t crq = NULL;
	int rc;

	if ((rc = unarmor_env(in, name, &der, e)) < 0)
		return rc;
	if ((rc = est_env_open(der.data, der.size, lookup, &ring, &plain, NULL, e)) < 0) {
		est_error_prefix(e, "%s", name);
		goto out;
	}
	csr.data = plain.data;
	csr.size = (unsigned)plain.len;
	if (gnutls_x509_crq_init(&crq) < 0 ||
	    gnutls_x509_crq_import(crq, &csr, GNUTLS_X509_FMT_DER) < 0) {
		rc = est_fail(e, EST_EDATA, "%s: the sealed content is not a CSR", name);
		goto out;
	}
	if (a->pem)
		rc = gnutls_pem_base64_encode2("CERTIFICATE REQUEST", &csr, out);
	else if ((out->data = gnutls_malloc(csr.size)) == NULL)
		rc = GNUTLS_E_MEMORY_ERROR;
	else
		memcpy(out->data, csr.data, (out->size = csr.size));
	if (rc < 0)
		rc = est_fail(e, EST_EINTERNAL, "writing the CSR: %s", gnutls_strerror(rc));
out:
	if (crq != NULL)
		gnutls_x509_crq_deinit(crq);
	est_secret_free(&plain);
	gnutls_free(der.data);
	return rc < 0 ? rc : 0;
}

int
cmd_encrypt(int argc, char **argv)
{
	struct args a;
	struct est_secret key = { NULL, 0 };
	struct est_error e = { EST_OK, "" };
	gnutls_datum_t in = { NULL, 0 }, out = { NULL, 0 };
	const char *name;
	char *keyid = NULL;
	int rc, status;

	if (parse_args(&a, argc, argv, &status) < 0)
		return status;
	name = est_path_is_std(a.input) ? "standard input" : a.input;
	keyid = a.key_id != NULL ? strdup(a.key_id) : est_path_stem(a.key_file);
	if (keyid == NULL) {
		rc = est_fail(&e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	if (est_env_keyid_check(keyid, &e) < 0) {
		status = cli_usage_error(&verb, "bad key id '%s': %s", keyid, e.msg);
		free(keyid);
		return status;
	}
	if ((rc = est_enrkey_load(a.key_file, &key, &e)) < 0 ||
	    (rc = est_file_read(a.input, 2 * EST_ENV_MAX, &in, &e)) < 0)
		goto out;
	rc = a.decrypt ? open_env(&a, &key, keyid, &in, name, &out, &e)
		       : seal(&a, &key, keyid, &in, name, &out, &e);
	if (rc == 0)
		rc = est_file_write(a.output != NULL ? a.output : "-", out.data, out.size, 0, &e);
out:
	if (out.data != NULL)
		gnutls_memset(out.data, 0, out.size);
	gnutls_free(out.data);
	gnutls_free(in.data);
	est_secret_free(&key);
	free(keyid);
	return rc < 0 ? cli_fail(&verb, &e) : 0;
}
