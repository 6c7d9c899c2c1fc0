#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/x509-ext.h>
#include <libtasn1.h>

#include "b64.h"
#include "csr.h"
#include "key.h"

extern const asn1_static_node csr_asn1_tab[];

#define EXT_REQUEST_OID "1.2.840.113549.1.9.14"
#define MAX_EXTENSIONS 64


static asn1_node defs;
static int defs_rc = ASN1_SUCCESS;
static pthread_once_t defs_once = PTHREAD_ONCE_INIT;

static void
defs_init(void)
{
	defs_rc = asn1_array2tree(csr_asn1_tab, &defs, NULL);
}

static int
new_node(const char *type, asn1_node *node, struct est_error *e)
{
	int rc;

	*node = NULL;
	pthread_once(&defs_once, defs_init);
	if (defs_rc != ASN1_SUCCESS)
		return est_fail(e, EST_EINTERNAL, "CSR module: %s", asn1_strerror(defs_rc));
	if ((rc = asn1_create_element(defs, type, node)) != ASN1_SUCCESS)
		return est_fail(e, EST_EINTERNAL, "CSR module: %s", asn1_strerror(rc));
	return 0;
}

/* Requests larger than this are not CSRs of ours (a profile is at most
 * EST_PROFILE_DER_MAX, an RSA-4096 key a few hundred bytes more). */
#define CSR_MAX (256u << 10)

/* RFC 1123 host names: dot-separated labels of letters, digits and hyphens,
 * no wildcards (a device names itself, never a pattern). */
static int
dns_name_valid(const char *s)
{
	size_t len = strlen(s), label = 0, i;

	if (len == 0 || len > 253)
		return 0;
	for (i = 0; i <= len; i++) {
		if (s[i] == '.' || s[i] == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return 0;
		if (label == 0 && s[i] == '-')
			return 0;
		label++;
	}
	return 1;
}

/* An absolute URI (RFC 3986 scheme ":" rest) in printable ASCII. */
static int
uri_valid(const char *s)
{
	size_t i = 0;

	if (!isalpha((unsigned char)s[0]))
		return 0;
	while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
		i++;
	if (s[i] != ':' || s[i + 1] == '\0')
		return 0;
	for (; s[i] != '\0'; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return 0;
	return strlen(s) <= 1024;
}

static int
add_san(gnutls_subject_alt_names_t names, const char *san, struct est_error *e)
{
	unsigned char ip[16];
	const char *v = strchr(san, ':');
	gnutls_datum_t d;
	int rc = 0;

	if (v == NULL)
		return est_fail(e, EST_EUSAGE, "SAN '%s': expected dns:NAME, uri:URI or ip:ADDRESS",
				san);
	v++;
	if (strncmp(san, "dns:", 4) == 0) {
		if (!dns_name_valid(v))
			return est_fail(e, EST_EUSAGE, "SAN '%s': not a valid DNS name", san);
		d = (gnutls_datum_t){ (unsigned char *)v, (unsigned)strlen(v) };
		rc = gnutls_subject_alt_names_set(names, GNUTLS_SAN_DNSNAME, &d, NULL);
	} else if (strncmp(san, "uri:", 4) == 0) {
		if (!uri_valid(v))
			return est_fail(e, EST_EUSAGE, "SAN '%s': not an absolute URI", san);
		d = (gnutls_datum_t){ (unsigned char *)v, (unsigned)strlen(v) };
		rc = gnutls_subject_alt_names_set(names, GNUTLS_SAN_URI, &d, NULL);
	} else if (strncmp(san, "ip:", 3) == 0) {
		/* GnuTLS takes the address in binary: 4 bytes for IPv4, 16 for IPv6. */
		d = (gnutls_datum_t){ ip, 0 };
		if (inet_pton(AF_INET, v, ip) == 1)
			d.size = 4;
		else if (inet_pton(AF_INET6, v, ip) == 1)
			d.size = 16;
		else
			return est_fail(e, EST_EUSAGE, "SAN '%s': not an IPv4 or IPv6 address",
					san);
		rc = gnutls_subject_alt_names_set(names, GNUTLS_SAN_IPADDRESS, &d, NULL);
	} else {
		return est_fail(e, EST_EUSAGE, "SAN '%s': expected dns:NAME, uri:URI or ip:ADDRESS",
				san);
	}
	if (rc < 0)
		return est_fail(e, EST_EINTERNAL, "SAN '%s': %s", san, gnutls_strerror(rc));
	return 0;
}

/* challengePassword is a DirectoryString: printable text, not a blob. */
static int
challenge_valid(const char *s)
{
	size_t i, len = strlen(s);

	if (len == 0 || len > 255)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	return 1;
}

static int
set_subject(gnutls_x509_crq_t crq, gnutls_privkey_t key, const struct est_profile *p,
	    struct est_error *e)
{
	gnutls_pubkey_t pub = NULL;
	int rc;

	if (!est_thing_name_valid(p->thing_name))
		return est_fail(e, EST_EDATA, "the ThingName is not valid (1-128 characters of "
				"A-Z a-z 0-9 : _ -)");
	if ((rc = gnutls_x509_crq_set_version(crq, 1)) < 0 ||
	    (rc = gnutls_x509_crq_set_dn_by_oid(crq, GNUTLS_OID_X520_COMMON_NAME, 0,
						p->thing_name,
						(unsigned)strlen(p->thing_name))) < 0 ||
	    (rc = gnutls_pubkey_init(&pub)) < 0 ||
	    (rc = gnutls_pubkey_import_privkey(pub, key, 0, 0)) < 0 ||
	    (rc = gnutls_x509_crq_set_pubkey(crq, pub)) < 0)
		rc = est_fail(e, EST_EINTERNAL, "building the CSR: %s", gnutls_strerror(rc));
	gnutls_pubkey_deinit(pub);
	return rc < 0 ? rc : 0;
}

static int
write_extension(asn1_node node, const unsigned char *oid, size_t oidlen,
		const gnutls_datum_t *value)
{
	int rc;

	/* critical is left unwritten: DER omits a DEFAULT FALSE. */
	if ((rc = asn1_write_value(node, "", "NEW", 1)) != ASN1_SUCCESS ||
	    (rc = asn1_write_value(node, "?LAST.extnID", oid, (int)oidlen)) != ASN1_SUCCESS)
		return rc;
	return asn1_write_value(node, "?LAST.extnValue", value->data, (int)value->size);
}

/* The extensionRequest attribute: SANs (from GnuTLS) and the profile (ours),
 * both non-critical, encoded by libtasn1 with the profile OID as raw DER. */
static int
set_extensions(gnutls_x509_crq_t crq, const struct est_profile *p, const char *const *sans,
	       size_t nsans, struct est_error *e)
{
	static const unsigned char san_oid_der[] = { 0x06, 0x03, 0x55, 0x1d, 0x11 };
	gnutls_datum_t prof = { NULL, 0 }, san = { NULL, 0 }, all = { NULL, 0 };
	gnutls_subject_alt_names_t names = NULL;
	asn1_node node = NULL;
	int rc, len = 0;
	size_t i;

	if ((rc = est_profile_encode(p, &prof, e)) < 0 ||
	    (rc = new_node("EstCsr.Extensions", &node, e)) < 0)
		goto out;
	if (nsans > 0) {
		if ((rc = gnutls_subject_alt_names_init(&names)) < 0) {
			rc = est_fail(e, EST_EINTERNAL, "SANs: %s", gnutls_strerror(rc));
			goto out;
		}
		for (i = 0; i < nsans; i++)
			if ((rc = add_san(names, sans[i], e)) < 0)
				goto out;
		if ((rc = gnutls_x509_ext_export_subject_alt_names(names, &san)) < 0) {
			rc = est_fail(e, EST_EINTERNAL, "SANs: %s", gnutls_strerror(rc));
			goto out;
		}
		if ((rc = write_extension(node, san_oid_der, sizeof(san_oid_der), &san)) != 0)
			goto asn1_error;
	}
	if ((rc = write_extension(node, est_profile_oid_der, EST_PROFILE_OID_DER_LEN, &prof)) != 0 ||
	    (rc = asn1_der_coding(node, "", NULL, &len, NULL)) != ASN1_MEM_ERROR)
		goto asn1_error;
	if ((all.data = gnutls_malloc((size_t)len)) == NULL) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	if ((rc = asn1_der_coding(node, "", all.data, &len, NULL)) != ASN1_SUCCESS)
		goto asn1_error;
	rc = gnutls_x509_crq_set_attribute_by_oid(crq, EXT_REQUEST_OID, all.data, (size_t)len);
	rc = rc < 0 ? est_fail(e, EST_EINTERNAL, "extensionRequest: %s", gnutls_strerror(rc)) : 0;
	goto out;
asn1_error:
	rc = est_fail(e, EST_EINTERNAL, "encoding the extensions: %s", asn1_strerror(rc));
out:
	asn1_delete_structure(&node);
	if (names != NULL)       /* its deinit does not take NULL */
		gnutls_subject_alt_names_deinit(names);
	gnutls_free(prof.data);
	gnutls_free(san.data);
	gnutls_free(all.data);
	return rc;
}

int
est_csr_build(gnutls_privkey_t key, const struct est_profile *p, const char *const *sans,
	      size_t nsans, const char *challenge, gnutls_x509_crq_t *out,
	      struct est_error *e)
{
	gnutls_x509_crq_t crq = NULL;
	int rc;

	*out = NULL;
	if (challenge != NULL && !challenge_valid(challenge))
		return est_fail(e, EST_EDATA, "challenge password: expected 1-255 characters of "
				"text on one line");
	if ((rc = gnutls_x509_crq_init(&crq)) < 0)
		return est_fail(e, EST_EINTERNAL, "building the CSR: %s", gnutls_strerror(rc));
	if ((rc = set_subject(crq, key, p, e)) < 0 ||
	    (rc = set_extensions(crq, p, sans, nsans, e)) < 0)
		goto out;
	if (challenge != NULL &&
	    (rc = gnutls_x509_crq_set_challenge_password(crq, challenge)) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "challenge password: %s", gnutls_strerror(rc));
		goto out;
	}
	if ((rc = gnutls_x509_crq_privkey_sign(crq, key, est_key_digest(key), 0)) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "signing the CSR: %s", gnutls_strerror(rc));
		goto out;
	}
	*out = crq;
	crq = NULL;
	rc = 0;
out:
	gnutls_x509_crq_deinit(crq);
	return rc;
}

static int
starts_with_pem(const unsigned char *data, size_t len)
{
	static const char tag[] = "-----BEGIN ";
	size_t i = 0;

	while (i < len && isspace(data[i]))
		i++;
	return len - i >= sizeof(tag) - 1 && memcmp(data + i, tag, sizeof(tag) - 1) == 0;
}

/* GnuTLS does not mind bytes after the request; a CSR with a tail is not
 * the CSR that was signed, so the DER must be exactly one request. */
static int
import_der(gnutls_x509_crq_t crq, const gnutls_datum_t *der)
{
	gnutls_datum_t again = { NULL, 0 };
	int rc;

	if ((rc = gnutls_x509_crq_import(crq, der, GNUTLS_X509_FMT_DER)) < 0)
		return rc;
	if ((rc = gnutls_x509_crq_export2(crq, GNUTLS_X509_FMT_DER, &again)) < 0)
		return rc;
	rc = again.size == der->size && memcmp(again.data, der->data, der->size) == 0 ? 0
		: GNUTLS_E_ASN1_DER_ERROR;
	gnutls_free(again.data);
	return rc;
}

int
est_csr_parse(const unsigned char *data, size_t len, const char *name,
	      gnutls_x509_crq_t *out, struct est_error *e)
{
	gnutls_datum_t in = { (unsigned char *)data, (unsigned)len }, der = { NULL, 0 };
	gnutls_x509_crq_t crq = NULL;
	int rc;

	*out = NULL;
	if (len == 0 || len > CSR_MAX)
		return est_fail(e, EST_EDATA, "%s: %s", name, len == 0 ? "empty" : "too large");
	if ((rc = gnutls_x509_crq_init(&crq)) < 0)
		return est_fail(e, EST_EINTERNAL, "%s: %s", name, gnutls_strerror(rc));
	if (starts_with_pem(data, len)) {
		if (gnutls_pem_base64_decode2("CERTIFICATE REQUEST", &in, &der) < 0 &&
		    gnutls_pem_base64_decode2("NEW CERTIFICATE REQUEST", &in, &der) < 0)
			der.data = NULL;
		rc = der.data == NULL ? GNUTLS_E_BASE64_DECODING_ERROR : import_der(crq, &der);
		gnutls_free(der.data);
	} else if (data[0] == 0x30) {
		rc = import_der(crq, &in);
	} else if (est_b64_looks_like(data, len) && est_b64_decode(data, len, &der, NULL) == 0) {
		rc = import_der(crq, &der);
		gnutls_free(der.data);
	} else {
		rc = GNUTLS_E_BASE64_DECODING_ERROR;
	}
	if (rc < 0) {
		gnutls_x509_crq_deinit(crq);
		return est_fail(e, EST_EDATA, "%s: not a certificate request (PEM, DER or base64 "
				"of DER)", name);
	}
	*out = crq;
	return 0;
}

int
est_csr_verify(gnutls_x509_crq_t crq, struct est_error *e)
{
	int rc = gnutls_x509_crq_verify(crq, 0);

	if (rc < 0)
		return est_fail(e, EST_EDATA, "the CSR's signature does not verify (%s)",
				gnutls_strerror(rc));
	return 0;
}

/* How many attributes of the CSR are extensionRequests. */
static int
count_ext_requests(gnutls_x509_crq_t crq)
{
	char oid[128];
	size_t size;
	int i, n = 0;

	for (i = 0; i < 64; i++) {
		size = sizeof(oid);
		if (gnutls_x509_crq_get_attribute_info(crq, (unsigned)i, oid, &size) < 0)
			break;
		n += strcmp(oid, EXT_REQUEST_OID) == 0;
	}
	return n;
}

/* The extensionRequest attribute's value as DER (1), or none (0). Two of
 * them, or two values in one, could show two readers two different sets. */
static int
extension_request(gnutls_x509_crq_t crq, gnutls_datum_t *der, struct est_error *e)
{
	size_t size = 0;
	int rc;

	der->data = NULL;
	der->size = 0;
	if ((rc = count_ext_requests(crq)) == 0)
		return 0;
	size = 0;
	if (rc > 1 || gnutls_x509_crq_get_attribute_by_oid(crq, EXT_REQUEST_OID, 1, NULL, &size)
	    == GNUTLS_E_SHORT_MEMORY_BUFFER)
		return est_fail(e, EST_EDATA, "the CSR has more than one extensionRequest");
	size = 0;
	rc = gnutls_x509_crq_get_attribute_by_oid(crq, EXT_REQUEST_OID, 0, NULL, &size);
	if (rc != GNUTLS_E_SHORT_MEMORY_BUFFER || size == 0 || size > CSR_MAX)
		return est_fail(e, EST_EDATA, "extensionRequest: %s", gnutls_strerror(rc));
	if ((der->data = gnutls_malloc(size)) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	rc = gnutls_x509_crq_get_attribute_by_oid(crq, EXT_REQUEST_OID, 0, der->data, &size);
	if (rc < 0) {
		gnutls_free(der->data);
		der->data = NULL;
		return est_fail(e, EST_EDATA, "extensionRequest: %s", gnutls_strerror(rc));
	}
	der->size = (unsigned)size;
	return 1;
}

/* True when the raw extnID DER names OID: byte for byte for the profile OID,
 * through libtasn1 for every other (whose arcs fit in 64 bits). */
static int
oid_matches(const unsigned char *der, int len, const char *oid)
{
	char dotted[128];
	asn1_node node = NULL;
	int n = sizeof(dotted), ok = 0;

	if (strcmp(oid, EST_PROFILE_OID) == 0)
		return len == (int)EST_PROFILE_OID_DER_LEN &&
		       memcmp(der, est_profile_oid_der, EST_PROFILE_OID_DER_LEN) == 0;
	if (new_node("EstCsr.ObjectId", &node, NULL) < 0)
		return 0;
	if (asn1_der_decoding(&node, der, len, NULL) == ASN1_SUCCESS &&
	    asn1_read_value(node, "", dotted, &n) == ASN1_SUCCESS)
		ok = strcmp(dotted, oid) == 0;
	asn1_delete_structure(&node);
	return ok;
}

/* Find OID among the decoded Extensions in NODE (N of them). */
static int
find_extension(asn1_node node, int n, const char *oid, gnutls_datum_t *value, int *critical,
	       struct est_error *e)
{
	unsigned char id[64];
	char path[48], crit[8];
	int i, len, found = 0;

	for (i = 1; i <= n; i++) {
		snprintf(path, sizeof(path), "?%d.extnID", i);
		len = sizeof(id);
		if (asn1_read_value(node, path, id, &len) != ASN1_SUCCESS)
			continue;       /* longer than any OID we look for */
		if (!oid_matches(id, len, oid))
			continue;
		if (found++)
			return est_fail(e, EST_EDATA, "extension %s appears more than once", oid);
		snprintf(path, sizeof(path), "?%d.extnValue", i);
		len = 0;
		if (asn1_read_value(node, path, NULL, &len) != ASN1_MEM_ERROR ||
		    (value->data = gnutls_malloc((size_t)len + 1)) == NULL ||
		    asn1_read_value(node, path, value->data, &len) != ASN1_SUCCESS)
			return est_fail(e, EST_EDATA, "extension %s: unreadable value", oid);
		value->size = (unsigned)len;
		snprintf(path, sizeof(path), "?%d.critical", i);
		len = sizeof(crit);
		*critical = asn1_read_value(node, path, crit, &len) == ASN1_SUCCESS &&
			    strcmp(crit, "TRUE") == 0;
	}
	return found;
}

int
est_csr_extension(gnutls_x509_crq_t crq, const char *oid, gnutls_datum_t *value,
		  int *critical, struct est_error *e)
{
	gnutls_datum_t der = { NULL, 0 };
	asn1_node node = NULL;
	int rc, n = 0, crit = 0;

	value->data = NULL;
	value->size = 0;
	if ((rc = extension_request(crq, &der, e)) <= 0)
		return rc;
	if ((rc = new_node("EstCsr.Extensions", &node, e)) < 0)
		goto out;
	rc = asn1_der_decoding2(&node, der.data, &(int){ (int)der.size },
				ASN1_DECODE_FLAG_STRICT_DER, NULL);
	if (rc != ASN1_SUCCESS || asn1_number_of_elements(node, "", &n) != ASN1_SUCCESS ||
	    n > MAX_EXTENSIONS) {
		rc = rc == ASN1_SUCCESS && n > MAX_EXTENSIONS
			? est_fail(e, EST_EDATA, "extensionRequest: more than %d extensions",
				   MAX_EXTENSIONS)
			: est_fail(e, EST_EDATA, "extensionRequest: malformed DER");
		goto out;
	}
	rc = find_extension(node, n, oid, value, &crit, e);
	if (rc < 0) {
		gnutls_free(value->data);
		value->data = NULL;
		value->size = 0;
	}
	if (critical != NULL)
		*critical = crit;
out:
	asn1_delete_structure(&node);
	gnutls_free(der.data);
	return rc;
}

int
est_csr_profile(gnutls_x509_crq_t crq, struct est_profile *p, int *found, struct est_error *e)
{
	gnutls_datum_t v = { NULL, 0 };
	int rc;

	*found = 0;
	if ((rc = est_csr_extension(crq, EST_PROFILE_OID, &v, NULL, e)) < 0)
		return rc;
	if (rc == 1) {
		rc = est_profile_decode(v.data, v.size, p, e);
		gnutls_free(v.data);
		*found = rc == 0;
		return rc;
	}
	/* The seed's extnValue holds the JSON itself, not an OCTET STRING of it. */
	if ((rc = est_csr_extension(crq, EST_LEGACY_PROFILE_OID, &v, NULL, e)) <= 0)
		return rc;
	rc = est_profile_from_legacy(v.data, v.size, p, e);
	gnutls_free(v.data);
	*found = rc == 0;
	return rc;
}

int
est_csr_export(gnutls_x509_crq_t crq, int der, gnutls_datum_t *out, struct est_error *e)
{
	int rc = gnutls_x509_crq_export2(crq, der ? GNUTLS_X509_FMT_DER : GNUTLS_X509_FMT_PEM, out);

	if (rc < 0)
		return est_fail(e, EST_EINTERNAL, "exporting the CSR: %s", gnutls_strerror(rc));
	return 0;
}
