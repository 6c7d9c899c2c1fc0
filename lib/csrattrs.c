#include "config.h"

#include <stdio.h>
#include <string.h>

#include <libtasn1.h>

#include "csrattrs.h"
#include "profile.h"

extern const asn1_static_node csrattrs_asn1_tab[];

/* The DER of EST_PROFILE_OID as OpenSSL writes it: libtasn1 keeps arcs in
 * 64 bits and cannot encode its 128-bit one. */
static const unsigned char profile_oid_der[] = {
	0x06, 0x14, 0x69, 0x83, 0xf8, 0xaa, 0xb0, 0xbc, 0xb5, 0xa2, 0xba, 0xa6,
	0xe5, 0x86, 0xca, 0xd7, 0xc9, 0xac, 0x8e, 0xa4, 0xa2, 0x28,
};

#define OID_EC_PUBKEY "1.2.840.10045.2.1"
#define OID_RSA "1.2.840.113549.1.1.1"
#define OID_ED25519 "1.3.101.112"
#define OID_CHALLENGE "1.2.840.113549.1.9.7"

struct want {
	const char *key_oid;    /* OID alone, or the attribute type */
	const char *curve;      /* attribute value: a curve OID */
	int rsa_bits;           /* attribute value: an RSA size */
	const char *sig_oid;
};

static const struct want wants[EST_KEY__MAX] = {
	[EST_KEY_EC_P256] = { OID_EC_PUBKEY, "1.2.840.10045.3.1.7", 0, "1.2.840.10045.4.3.2" },
	[EST_KEY_EC_P384] = { OID_EC_PUBKEY, "1.3.132.0.34", 0, "1.2.840.10045.4.3.3" },
	[EST_KEY_ED25519] = { OID_ED25519, NULL, 0, NULL },
	[EST_KEY_RSA2048] = { OID_RSA, NULL, 2048, "1.2.840.113549.1.1.11" },
	[EST_KEY_RSA3072] = { OID_RSA, NULL, 3072, "1.2.840.113549.1.1.11" },
	[EST_KEY_RSA4096] = { OID_RSA, NULL, 4096, "1.2.840.113549.1.1.11" },
};

static int
der_of(asn1_node defs, const char *type, const char *value, int len, unsigned char *buf,
       int *blen)
{
	asn1_node n = NULL;
	int r;

	if ((r = asn1_create_element(defs, type, &n)) != ASN1_SUCCESS)
		return r;
	if ((r = asn1_write_value(n, "", value, len)) == ASN1_SUCCESS)
		r = asn1_der_coding(n, "", buf, blen, NULL);
	asn1_delete_structure(&n);
	return r;
}

/* Append the DER element EL to the output SEQUENCE OF ANY. */
static int
append(asn1_node out, const unsigned char *el, int len)
{
	int r;

	if ((r = asn1_write_value(out, "", "NEW", 1)) != ASN1_SUCCESS)
		return r;
	return asn1_write_value(out, "?LAST", el, len);
}

static int
add_oid(asn1_node defs, asn1_node out, const char *oid)
{
	unsigned char buf[64];
	asn1_node n = NULL;
	int r, len = sizeof(buf);

	if ((r = asn1_create_element(defs, "CSRATTRS.AttrOrOID", &n)) == ASN1_SUCCESS &&
	    (r = asn1_write_value(n, "", "oid", 1)) == ASN1_SUCCESS &&
	    (r = asn1_write_value(n, "oid", oid, 1)) == ASN1_SUCCESS &&
	    (r = asn1_der_coding(n, "", buf, &len, NULL)) == ASN1_SUCCESS)
		r = append(out, buf, len);
	asn1_delete_structure(&n);
	return r;
}

/* An Attribute whose one value is the DER in VAL. */
static int
add_attr(asn1_node defs, asn1_node out, const char *type, const unsigned char *val, int vlen)
{
	unsigned char buf[128];
	asn1_node n = NULL;
	int r, len = sizeof(buf);

	if ((r = asn1_create_element(defs, "CSRATTRS.AttrOrOID", &n)) == ASN1_SUCCESS &&
	    (r = asn1_write_value(n, "", "attribute", 1)) == ASN1_SUCCESS &&
	    (r = asn1_write_value(n, "attribute.type", type, 1)) == ASN1_SUCCESS &&
	    (r = asn1_write_value(n, "attribute.values", "NEW", 1)) == ASN1_SUCCESS &&
	    (r = asn1_write_value(n, "attribute.values.?LAST", val, vlen)) == ASN1_SUCCESS &&
	    (r = asn1_der_coding(n, "", buf, &len, NULL)) == ASN1_SUCCESS)
		r = append(out, buf, len);
	asn1_delete_structure(&n);
	return r;
}

static int
fill(asn1_node defs, asn1_node out, const struct want *w, int pop)
{
	unsigned char val[64];
	char bits[16];
	int r, vlen = sizeof(val);

	if ((r = append(out, profile_oid_der, sizeof(profile_oid_der))) != ASN1_SUCCESS)
		return r;
	if (w->curve != NULL || w->rsa_bits) {
		if (w->curve != NULL)
			r = der_of(defs, "CSRATTRS.AttrValueOID", w->curve, 1, val, &vlen);
		else {
			snprintf(bits, sizeof(bits), "%d", w->rsa_bits);
			r = der_of(defs, "CSRATTRS.KeySize", bits, 0, val, &vlen);
		}
		if (r != ASN1_SUCCESS ||
		    (r = add_attr(defs, out, w->key_oid, val, vlen)) != ASN1_SUCCESS)
			return r;
	} else if ((r = add_oid(defs, out, w->key_oid)) != ASN1_SUCCESS) {
		return r;
	}
	if (w->sig_oid != NULL && (r = add_oid(defs, out, w->sig_oid)) != ASN1_SUCCESS)
		return r;
	if (pop && (r = add_oid(defs, out, OID_CHALLENGE)) != ASN1_SUCCESS)
		return r;
	return ASN1_SUCCESS;
}

int
est_csrattrs_build(enum est_key_type kt, int pop, gnutls_datum_t *out, struct est_error *e)
{
	asn1_node defs = NULL, root = NULL;
	int r, len = 0, rc = 0;

	out->data = NULL;
	out->size = 0;
	if ((unsigned)kt >= EST_KEY__MAX || wants[kt].key_oid == NULL)
		return est_fail(e, EST_EINTERNAL, "csrattrs: no key type to ask for");
	if ((r = asn1_array2tree(csrattrs_asn1_tab, &defs, NULL)) != ASN1_SUCCESS ||
	    (r = asn1_create_element(defs, "CSRATTRS.CsrAttrsOut", &root)) != ASN1_SUCCESS ||
	    (r = fill(defs, root, &wants[kt], pop)) != ASN1_SUCCESS ||
	    (r = asn1_der_coding(root, "", NULL, &len, NULL)) != ASN1_MEM_ERROR) {
		rc = est_fail(e, EST_EINTERNAL, "csrattrs: %s", asn1_strerror(r));
		goto out;
	}
	if ((out->data = gnutls_malloc((size_t)len)) == NULL) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	if ((r = asn1_der_coding(root, "", out->data, &len, NULL)) != ASN1_SUCCESS) {
		gnutls_free(out->data);
		out->data = NULL;
		rc = est_fail(e, EST_EINTERNAL, "csrattrs: %s", asn1_strerror(r));
		goto out;
	}
	out->size = (unsigned)len;
out:
	asn1_delete_structure(&root);
	asn1_delete_structure(&defs);
	return rc;
}
