/* estctl keygen: a device key (PKCS#8 PEM) or an enrollment key (hex), created
 * mode 0600 and never written over an existing file without --force. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "commands.h"
#include "file.h"
#include "key.h"

enum { OPT_FORCE = CLI_LONG, OPT_PUB, OPT_JSON };

static const struct cli_opt opts[] = {
	{ 't', "type", "TYPE", "ec-p256 (default), ec-p384, ed25519, rsa2048, rsa3072, "
	  "rsa4096, or aes256 for an enrollment key" },
	{ 'o', "out", "FILE", "write the key to FILE, mode 0600 (default: standard output)" },
	{ OPT_FORCE, "force", NULL, "replace an existing FILE (atomically, still mode 0600)" },
	{ OPT_PUB, "pub", "FILE", "also write the public key (SubjectPublicKeyInfo PEM) to FILE" },
	{ OPT_JSON, "json", NULL, "print what was made as one JSON object (needs -o)" },
	{ 0, NULL, NULL, NULL }
};

static const struct cli_verb verb = {
	"keygen", "[-t TYPE] [-o FILE] [--force] [--pub FILE] [--json]",
	"generate a device key or an enrollment key", opts, ""
};

struct args {
	enum est_key_type type;
	const char *out;        /* "-" for stdout */
	const char *pub;        /* NULL: no public key file */
	bool force, json;
};

/* Combinations that cannot mean anything; 0 when the arguments are usable. */
static int
check_args(const struct args *a)
{
	if (a->type == EST_KEY_AES256 && a->pub != NULL)
		return cli_usage_error(&verb, "--pub: an aes256 enrollment key has no public key");
	if (a->json && (est_path_is_std(a->out) || (a->pub != NULL && est_path_is_std(a->pub))))
		return cli_usage_error(&verb, "--json: standard output carries the JSON, "
				       "so the keys need files (-o FILE, --pub FILE)");
	if (a->pub != NULL && est_path_is_std(a->out) && est_path_is_std(a->pub))
		return cli_usage_error(&verb, "--pub: the private key already goes to standard "
				       "output");
	if (a->pub != NULL && strcmp(a->out, a->pub) == 0)
		return cli_usage_error(&verb, "--pub: same file as -o");
	return 0;
}

/* Fill A from the command line; false with *STATUS set when the command ends here. */
static bool
parse_args(int argc, char **argv, struct args *a, int *status)
{
	struct est_error e;
	struct cli c;
	int id;

	*a = (struct args){ EST_KEY_EC_P256, "-", NULL, false, false };
	cli_init(&c, &verb, argc, argv);
	while ((id = cli_next(&c)) != CLI_END) {
		switch (id) {
		case CLI_EXIT:
			*status = c.status;
			return false;
		case 't':
			if (est_key_type_parse(c.arg, &a->type, &e) < 0) {
				*status = cli_usage_error(&verb, "%s", e.msg);
				return false;
			}
			break;
		case 'o': a->out = c.arg; break;
		case OPT_FORCE: a->force = true; break;
		case OPT_PUB: a->pub = c.arg; break;
		case OPT_JSON: a->json = true; break;
		}
	}
	if (c.optind < argc) {
		*status = cli_usage_error(&verb, "unexpected argument '%s'", argv[c.optind]);
		return false;
	}
	*status = check_args(a);
	return *status == 0;
}

static unsigned
write_flags(const struct args *a, unsigned private)
{
	return (a->force ? 0 : EST_WRITE_EXCL) | private;
}

/* The public half of X, for --pub and the fingerprint. */
static int
public_key(gnutls_x509_privkey_t x, gnutls_pubkey_t *out, struct est_error *e)
{
	gnutls_privkey_t priv = NULL;
	gnutls_pubkey_t pub = NULL;
	int rc;

	*out = NULL;
	if ((rc = gnutls_privkey_init(&priv)) < 0 ||
	    (rc = gnutls_privkey_import_x509(priv, x, 0)) < 0 ||
	    (rc = gnutls_pubkey_init(&pub)) < 0 ||
	    (rc = gnutls_pubkey_import_privkey(pub, priv, 0, 0)) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "deriving the public key: %s", gnutls_strerror(rc));
		gnutls_pubkey_deinit(pub);
		pub = NULL;
	}
	gnutls_privkey_deinit(priv);    /* without IMPORT_AUTO_RELEASE: X stays ours */
	*out = pub;
	return rc < 0 ? rc : 0;
}

static int
write_pub(gnutls_pubkey_t pub, const struct args *a, struct est_error *e)
{
	gnutls_datum_t pem = { NULL, 0 };
	int rc;

	if ((rc = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_PEM, &pem)) < 0)
		return est_fail(e, EST_EINTERNAL, "exporting the public key: %s",
				gnutls_strerror(rc));
	rc = est_file_write(a->pub, pem.data, pem.size, write_flags(a, 0), e);
	gnutls_free(pem.data);
	return rc;
}

/* Generate an asymmetric key, write it (and --pub), and put the SHA-256 of
 * its SubjectPublicKeyInfo in HASH. */
static int
make_key(const struct args *a, char hash[65], struct est_error *e)
{
	gnutls_x509_privkey_t x = NULL;
	gnutls_pubkey_t pub = NULL;
	struct est_secret pem = { NULL, 0 };
	bool pub_made = false;
	int rc;

	if ((rc = est_key_generate(a->type, &x, e)) < 0 || (rc = public_key(x, &pub, e)) < 0 ||
	    (rc = est_pubkey_sha256_hex(pub, hash, e)) < 0 ||
	    (rc = est_key_export_pem(x, &pem, e)) < 0)
		goto out;
	/* The public key first: if the private key then cannot be written, the
	 * new public file is removed again and nothing is left half done. */
	if (a->pub != NULL) {
		if ((rc = write_pub(pub, a, e)) < 0)
			goto out;
		pub_made = !a->force && !est_path_is_std(a->pub);
	}
	rc = est_file_write(a->out, pem.data, pem.len, write_flags(a, EST_WRITE_PRIVATE), e);
	if (rc < 0 && pub_made)
		(void)unlink(a->pub);
out:
	est_secret_free(&pem);
	gnutls_pubkey_deinit(pub);
	gnutls_x509_privkey_deinit(x);  /* clears the key's numbers */
	return rc;
}

static int
make_enrkey(const struct args *a, struct est_error *e)
{
	struct est_secret hex = { NULL, 0 };
	int rc;

	if ((rc = est_enrkey_generate(&hex, e)) == 0)
		rc = est_file_write(a->out, hex.data, hex.len, write_flags(a, EST_WRITE_PRIVATE), e);
	est_secret_free(&hex);
	return rc;
}

/* {"type", "file", "public_key_sha256"[, "public_key_file"]}, or for an
 * enrollment key {"type", "file", "key_id"}. */
static int
print_json(const struct args *a, const char *hash, struct est_error *e)
{
	json_t *o = json_pack("{s:s, s:s}", "type", est_key_type_names[a->type], "file", a->out);
	char *stem = NULL;
	int rc = 0;

	if (o == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	if (a->type == EST_KEY_AES256) {
		if ((stem = est_path_stem(a->out)) == NULL ||
		    json_object_set_new(o, "key_id", json_string(stem)) < 0)
			rc = est_fail(e, EST_EINTERNAL, "out of memory");
	} else if (json_object_set_new(o, "public_key_sha256", json_string(hash)) < 0 ||
		   (a->pub != NULL &&
		    json_object_set_new(o, "public_key_file", json_string(a->pub)) < 0)) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
	}
	if (rc == 0 && (json_dumpf(o, stdout, JSON_COMPACT) < 0 || putchar('\n') == EOF))
		rc = est_fail(e, EST_EIO, "write failure on standard output");
	free(stem);
	json_decref(o);
	return rc;
}

int
cmd_keygen(int argc, char **argv)
{
	struct est_error e;
	struct args a;
	char hash[65] = "";
	int status, rc;

	if (!parse_args(argc, argv, &a, &status))
		return status;
	if (a.type == EST_KEY_AES256)
		rc = make_enrkey(&a, &e);
	else
		rc = make_key(&a, hash, &e);
	if (rc == 0 && a.json)
		rc = print_json(&a, hash, &e);
	return rc < 0 ? cli_fail(&verb, &e) : 0;
}
