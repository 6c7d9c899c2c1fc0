/* The EST client's pure parts: URLs, pins, reasons, and reading and checking
 * what a server sent. No network here, so all of it is unit-tested. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/abstract.h>
#include <gnutls/pkcs7.h>
#include <libtasn1.h>

#include "b64.h"
#include "client.h"
#include "profile.h"

extern const asn1_static_node csrattrs_asn1_tab[];

#define WELL_KNOWN "/.well-known/est"

const char *const est_op_names[EST_OP__MAX] = {
	[EST_OP_CACERTS] = "cacerts",
	[EST_OP_SIMPLEENROLL] = "simpleenroll",
	[EST_OP_SIMPLEREENROLL] = "simplereenroll",
	[EST_OP_CSRATTRS] = "csrattrs",
};

void
est_certs_free(struct est_certs *c)
{
	unsigned i;

	if (c == NULL)
		return;
	for (i = 0; i < c->n; i++)
		gnutls_x509_crt_deinit(c->crt[i]);
	free(c->crt);
	c->crt = NULL;
	c->n = 0;
}

int
est_certs_pem(const struct est_certs *certs, gnutls_datum_t *out, struct est_error *e)
{
	gnutls_datum_t pem;
	unsigned char *p;
	unsigned i;

	out->data = NULL;
	out->size = 0;
	for (i = 0; i < certs->n; i++) {
		if (gnutls_x509_crt_export2(certs->crt[i], GNUTLS_X509_FMT_PEM, &pem) < 0) {
			free(out->data);
			out->data = NULL;
			out->size = 0;
			return est_fail(e, EST_EINTERNAL, "exporting certificate %u", i + 1);
		}
		if ((p = realloc(out->data, out->size + pem.size + 1)) == NULL) {
			gnutls_free(pem.data);
			free(out->data);
			out->data = NULL;
			out->size = 0;
			return est_fail(e, EST_EINTERNAL, "out of memory");
		}
		memcpy(p + out->size, pem.data, pem.size);
		out->data = p;
		out->size += pem.size;
		out->data[out->size] = '\0';
		gnutls_free(pem.data);
	}
	return 0;
}

void
est_result_free(struct est_result *r)
{
	if (r == NULL)
		return;
	est_certs_free(&r->certs);
	gnutls_free(r->der.data);
	r->der.data = NULL;
	r->der.size = 0;
}

/* A label is one path segment: RFC 7030 3.2.2 leaves its spelling to the
 * server; we keep to characters that need no escaping. */
static int
label_valid(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 64 || s[0] == '.')
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return 0;
	return 1;
}

static int
url_chars_ok(const char *url)
{
	const unsigned char *p;

	for (p = (const unsigned char *)url; *p != '\0'; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '?' || *p == '#')
			return 0;
	return 1;
}

int
est_client_base_url(const char *url, const char *label, char **out, struct est_error *e)
{
	const char *wk, *have = "";
	size_t n, nhave = 0, size;

	*out = NULL;
	if (strncasecmp(url, "https://", 8) != 0 || url[8] == '\0' || url[8] == '/')
		return est_fail(e, EST_ECONFIG, "url %s: expected https://HOST[/PATH] (EST runs over TLS)",
				url);
	if (!url_chars_ok(url))
		return est_fail(e, EST_ECONFIG, "url %s: spaces, queries and fragments have no place in it",
				url);
	if (label != NULL && !label_valid(label, strlen(label)))
		return est_fail(e, EST_ECONFIG, "label %s: expected 1-64 letters, digits, '-', '_' or '.'",
				label);
	wk = strstr(url + 8, WELL_KNOWN);
	if (wk != NULL && (wk[strlen(WELL_KNOWN)] == '\0' || wk[strlen(WELL_KNOWN)] == '/')) {
		n = (size_t)(wk - url);
		have = wk + strlen(WELL_KNOWN);
		have += *have == '/';
		nhave = strcspn(have, "/");
		if (have[nhave] != '\0' && strspn(have + nhave, "/") != strlen(have + nhave))
			return est_fail(e, EST_ECONFIG, "url %s: nothing may follow the label", url);
		if (nhave > 0 && !label_valid(have, nhave))
			return est_fail(e, EST_ECONFIG, "url %s: not a valid label after %s", url,
					WELL_KNOWN);
		if (nhave > 0 && label != NULL &&
		    (strlen(label) != nhave || strncmp(label, have, nhave) != 0))
			return est_fail(e, EST_ECONFIG, "label %s: the url already names label %.*s",
					label, (int)nhave, have);
	} else {
		for (n = strlen(url); url[n - 1] == '/'; n--)
			;
	}
	if (nhave == 0 && label != NULL) {
		have = label;
		nhave = strlen(label);
	}
	size = n + sizeof(WELL_KNOWN) + nhave + 2;
	if ((*out = malloc(size)) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	snprintf(*out, size, "%.*s%s/%.*s%s", (int)n, url, WELL_KNOWN, (int)nhave, have,
		 nhave > 0 ? "/" : "");
	return 0;
}

int
est_client_target_check(struct est_client_opts *o, struct est_error *e)
{
	unsigned char sha[32];
	char *base = NULL;
	int rc;

	if (o->url == NULL)
		return est_fail(e, EST_EUSAGE, "--url is required");
	if ((rc = est_client_base_url(o->url, o->label, &base, e)) < 0)
		return rc;
	free(base);
	if (o->pin != NULL && (rc = est_client_pin_parse(o->pin, sha, e)) < 0)
		return rc;
	o->system_store = o->cacert == NULL && o->pin == NULL;
	return 0;
}

int
est_client_pin_parse(const char *pin, unsigned char sha[32], struct est_error *e)
{
	const char *p = pin;
	size_t n = 0;
	int hi = -1, v;

	if (strncasecmp(p, "sha256:", 7) == 0)
		p += 7;
	for (; *p != '\0'; p++) {
		if (*p == ':')
			continue;
		if (!isxdigit((unsigned char)*p) || n == 32)
			goto bad;
		v = isdigit((unsigned char)*p) ? *p - '0' : tolower((unsigned char)*p) - 'a' + 10;
		if (hi < 0) {
			hi = v;
		} else {
			sha[n++] = (unsigned char)(hi << 4 | v);
			hi = -1;
		}
	}
	if (n == 32 && hi < 0)
		return 0;
bad:
	return est_fail(e, EST_EUSAGE,
			"pin %s: expected SHA256: and the 64 hex digits of the CA certificate's fingerprint",
			pin);
}

void
est_client_reason(const unsigned char *body, size_t len, char *out, size_t size)
{
	size_t i, n = 0, cap = size - 1;

	if (size == 0)
		return;
	if (cap > EST_CLIENT_REASON_MAX)
		cap = EST_CLIENT_REASON_MAX;
	while (len > 0 && isspace(*body)) {
		body++;
		len--;
	}
	for (i = 0; i < len && body[i] != '\n' && body[i] != '\r'; i++) {
		if (n == cap) {
			if (cap >= 3)
				memcpy(out + cap - 3, "...", 3);
			break;
		}
		/* Only printable ASCII reaches a terminal or a log line. */
		out[n++] = body[i] >= 0x20 && body[i] < 0x7f ? (char)body[i] : '?';
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

/* Servers send base64 as RFC 7030 says, or sometimes plain DER: accept both. */
static int
body_der(const unsigned char *body, size_t len, const char *name, gnutls_datum_t *der,
	 int *owned, struct est_error *e)
{
	*owned = 0;
	if (len > 0 && body[0] == 0x30) {
		der->data = (unsigned char *)body;
		der->size = (unsigned)len;
		return 0;
	}
	if (len == 0 || !est_b64_looks_like(body, len) || est_b64_decode(body, len, der, e) < 0)
		return est_fail(e, EST_EPROTO, "%s: the reply is neither base64 nor DER", name);
	*owned = 1;
	return 0;
}

/* GnuTLS cannot decode the 128-bit arc of the profile OID (DESIGN.md 4.2):
 * a certificate carrying it does not import, which deserves its own words. */
static const char *
import_hint(const gnutls_datum_t *raw)
{
	static const unsigned char oid[] = {
		0x06, 0x14, 0x69, 0x83, 0xf8, 0xaa, 0xb0, 0xbc, 0xb5, 0xa2, 0xba, 0xa6,
		0xe5, 0x86, 0xca, 0xd7, 0xc9, 0xac, 0x8e, 0xa4, 0xa2, 0x28,
	};

	if (raw->data != NULL && memmem(raw->data, raw->size, oid, sizeof(oid)) != NULL)
		return " (it carries the device-profile extension " EST_PROFILE_OID
		       ", whose 128-bit arc GnuTLS cannot parse)";
	return "";
}

static int
certs_from_pkcs7(gnutls_pkcs7_t p7, const char *name, struct est_certs *out,
		 struct est_error *e)
{
	gnutls_datum_t raw = { NULL, 0 };
	const char *hint = "";
	int n, i, rc = 0;

	n = gnutls_pkcs7_get_crt_count(p7);
	if (n <= 0)
		return est_fail(e, EST_EPROTO, "%s: the reply holds no certificate", name);
	if ((out->crt = calloc((size_t)n, sizeof(*out->crt))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	for (i = 0; i < n; i++) {
		if ((rc = gnutls_pkcs7_get_crt_raw2(p7, (unsigned)i, &raw)) < 0 ||
		    (rc = gnutls_x509_crt_init(&out->crt[i])) < 0)
			break;
		out->n++;
		rc = gnutls_x509_crt_import(out->crt[i], &raw, GNUTLS_X509_FMT_DER);
		if (rc < 0)
			hint = import_hint(&raw);
		gnutls_free(raw.data);
		raw.data = NULL;
		if (rc < 0)
			break;
	}
	if (rc < 0) {
		est_certs_free(out);
		return est_fail(e, EST_EPROTO, "%s: certificate %d of the reply: %s%s", name, i + 1,
				gnutls_strerror(rc), hint);
	}
	return 0;
}

int
est_client_certs_parse(const unsigned char *body, size_t len, const char *name,
		       struct est_certs *out, struct est_error *e)
{
	gnutls_pkcs7_t p7 = NULL;
	gnutls_datum_t der = { NULL, 0 };
	int owned = 0, rc;

	out->crt = NULL;
	out->n = 0;
	if ((rc = body_der(body, len, name, &der, &owned, e)) < 0)
		return rc;
	if (gnutls_pkcs7_init(&p7) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	if ((rc = gnutls_pkcs7_import(p7, &der, GNUTLS_X509_FMT_DER)) < 0) {
		rc = est_fail(e, EST_EPROTO, "%s: not a certs-only PKCS#7: %s", name,
			      gnutls_strerror(rc));
		goto out;
	}
	rc = certs_from_pkcs7(p7, name, out, e);
out:
	if (p7 != NULL)
		gnutls_pkcs7_deinit(p7);
	if (owned)
		gnutls_free(der.data);
	return rc;
}

/* OIDs among an attribute's values, appended to *LINE after a space each. */
static int
attr_value_oids(asn1_node defs, asn1_node node, const char *where, char **line)
{
	asn1_node v = NULL;
	unsigned char raw[512];
	char name[96], oid[128];
	int i, len, olen, rc = 0;
	char *p;

	for (i = 1;; i++) {
		snprintf(name, sizeof(name), "%s.values.?%d", where, i);
		len = sizeof(raw);
		if (asn1_read_value(node, name, raw, &len) != ASN1_SUCCESS)
			break;
		if (len < 2 || raw[0] != 0x06 ||
		    asn1_create_element(defs, "CSRATTRS.AttrValueOID", &v) != ASN1_SUCCESS)
			continue;
		olen = sizeof(oid);
		if (asn1_der_decoding(&v, raw, len, NULL) == ASN1_SUCCESS &&
		    asn1_read_value(v, "", oid, &olen) == ASN1_SUCCESS) {
			if ((p = realloc(*line, strlen(*line) + strlen(oid) + 2)) == NULL)
				rc = -1;
			else
				strcat(strcat(*line = p, " "), oid);
		}
		asn1_delete_structure(&v);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* The text of entry I (1-based) of the decoded CsrAttrs NODE. */
static int
csrattr_entry(asn1_node defs, asn1_node node, int i, char **line)
{
	char name[64], choice[32], oid[128];
	int len;

	snprintf(name, sizeof(name), "?%d", i);
	len = sizeof(choice);
	if (asn1_read_value(node, name, choice, &len) != ASN1_SUCCESS)
		return -1;
	snprintf(name, sizeof(name), strcmp(choice, "oid") == 0 ? "?%d.oid" : "?%d.attribute.type",
		 i);
	len = sizeof(oid);
	if (asn1_read_value(node, name, oid, &len) != ASN1_SUCCESS || (*line = strdup(oid)) == NULL)
		return -1;
	if (strcmp(choice, "oid") == 0)
		return 0;
	snprintf(name, sizeof(name), "?%d.attribute", i);
	return attr_value_oids(defs, node, name, line);
}

int
est_client_csrattrs_parse(const unsigned char *der, size_t len, char ***out, size_t *n,
			  struct est_error *e)
{
	asn1_node defs = NULL, node = NULL;
	char err[ASN1_MAX_ERROR_DESCRIPTION_SIZE];
	int count = 0, i, rc = 0;

	*out = NULL;
	*n = 0;
	if (len == 0)
		return 0;
	if (asn1_array2tree(csrattrs_asn1_tab, &defs, err) != ASN1_SUCCESS ||
	    asn1_create_element(defs, "CSRATTRS.CsrAttrs", &node) != ASN1_SUCCESS) {
		rc = est_fail(e, EST_EINTERNAL, "csrattrs module: %s", err);
		goto out;
	}
	if (asn1_der_decoding(&node, der, (int)len, err) != ASN1_SUCCESS ||
	    asn1_number_of_elements(node, "", &count) != ASN1_SUCCESS) {
		rc = est_fail(e, EST_EPROTO, "csrattrs: not a CsrAttrs sequence: %s", err);
		goto out;
	}
	if ((*out = calloc((size_t)count + 1, sizeof(**out))) == NULL) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	for (i = 1; i <= count; i++, (*n)++)
		if (csrattr_entry(defs, node, i, &(*out)[*n]) < 0) {
			rc = est_fail(e, EST_EPROTO, "csrattrs: entry %d cannot be read", i);
			break;
		}
out:
	if (rc < 0 && *out != NULL) {
		for (i = 0; i <= (int)*n; i++)
			free((*out)[i]);
		free(*out);
		*out = NULL;
		*n = 0;
	}
	asn1_delete_structure(&node);
	asn1_delete_structure(&defs);
	return rc;
}

static int
spki_of_crt(gnutls_x509_crt_t crt, gnutls_datum_t *out)
{
	gnutls_pubkey_t pub = NULL;
	int rc;

	if ((rc = gnutls_pubkey_init(&pub)) >= 0 && (rc = gnutls_pubkey_import_x509(pub, crt, 0)) >= 0)
		rc = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, out);
	gnutls_pubkey_deinit(pub);
	return rc;
}

static int
spki_of_crq(gnutls_x509_crq_t crq, gnutls_datum_t *out)
{
	gnutls_pubkey_t pub = NULL;
	int rc;

	if ((rc = gnutls_pubkey_init(&pub)) >= 0 && (rc = gnutls_pubkey_import_x509_crq(pub, crq, 0)) >= 0)
		rc = gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, out);
	gnutls_pubkey_deinit(pub);
	return rc;
}

/* The reply's certificate for CRQ (its key), or the first non-CA one. */
static int
find_leaf(const struct est_certs *reply, gnutls_x509_crq_t crq, unsigned *leaf,
	  struct est_error *e)
{
	gnutls_datum_t want = { NULL, 0 }, got;
	unsigned i, found = 0;
	int rc;

	if (crq == NULL) {
		for (i = 0; i < reply->n && !found; i++)
			if (gnutls_x509_crt_get_ca_status(reply->crt[i], NULL) <= 0)
				found = 1, *leaf = i;
		if (!found)
			return est_fail(e, EST_EPROTO, "the reply holds only CA certificates");
		return 0;
	}
	if ((rc = spki_of_crq(crq, &want)) < 0)
		return est_fail(e, EST_EDATA, "the CSR's public key: %s", gnutls_strerror(rc));
	for (i = 0; i < reply->n && !found; i++) {
		if (spki_of_crt(reply->crt[i], &got) < 0)
			continue;
		if (got.size == want.size && memcmp(got.data, want.data, got.size) == 0)
			found = 1, *leaf = i;
		gnutls_free(got.data);
	}
	gnutls_free(want.data);
	if (!found)
		return est_fail(e, EST_EPROTO, "no certificate in the reply has the CSR's public key");
	return 0;
}

static int
same_subject(gnutls_x509_crt_t crt, gnutls_x509_crq_t crq, struct est_error *e)
{
	gnutls_datum_t a = { NULL, 0 }, b = { NULL, 0 };
	int rc = 0;

	if (gnutls_x509_crt_get_dn3(crt, &a, 0) < 0 || gnutls_x509_crq_get_dn3(crq, &b, 0) < 0)
		rc = est_fail(e, EST_EPROTO, "the issued certificate's or the CSR's subject cannot be read");
	else if (a.size != b.size || memcmp(a.data, b.data, a.size) != 0)
		rc = est_fail(e, EST_EPROTO, "the issued certificate's subject %s is not the CSR's %s",
			      (char *)a.data, (char *)b.data);
	gnutls_free(a.data);
	gnutls_free(b.data);
	return rc;
}

static int
chains_to(const struct est_certs *reply, unsigned leaf, const struct est_certs *ca,
	  struct est_error *e)
{
	gnutls_x509_trust_list_t tl = NULL;
	gnutls_x509_crt_t *chain;
	gnutls_datum_t why = { NULL, 0 };
	unsigned i, n = 0, status = 0;
	int rc;

	if ((chain = calloc(reply->n, sizeof(*chain))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	chain[n++] = reply->crt[leaf];
	for (i = 0; i < reply->n; i++)
		if (i != leaf)
			chain[n++] = reply->crt[i];
	if ((rc = gnutls_x509_trust_list_init(&tl, 0)) < 0 ||
	    (rc = gnutls_x509_trust_list_add_cas(tl, ca->crt, ca->n, 0)) < 0 ||
	    (rc = gnutls_x509_trust_list_verify_crt2(tl, chain, n, NULL, 0, 0, &status, NULL)) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "verifying the issued certificate: %s",
			      gnutls_strerror(rc));
	} else if (status != 0) {
		gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &why, 0);
		rc = est_fail(e, EST_EPROTO,
			      "the issued certificate does not chain to the CA from cacerts: %s",
			      why.data != NULL ? (char *)why.data : "not trusted");
		gnutls_free(why.data);
	}
	if (tl != NULL)
		gnutls_x509_trust_list_deinit(tl, 0);
	free(chain);
	return rc < 0 ? rc : 0;
}

int
est_client_check_issued(const struct est_certs *reply, gnutls_x509_crq_t crq,
			const struct est_certs *ca, unsigned *leaf, struct est_error *e)
{
	int rc;

	if (reply->n == 0 || ca == NULL || ca->n == 0)
		return est_fail(e, EST_EPROTO, "no certificate to check");
	if ((rc = find_leaf(reply, crq, leaf, e)) < 0)
		return rc;
	if (crq != NULL && (rc = same_subject(reply->crt[*leaf], crq, e)) < 0)
		return rc;
	return chains_to(reply, *leaf, ca, e);
}
