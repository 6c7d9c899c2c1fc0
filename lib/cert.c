#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cert.h"
#include "file.h"
#include "key.h"

static bool
looks_pem(const gnutls_datum_t *d)
{
	static const char tag[] = "-----BEGIN ";
	unsigned i;

	for (i = 0; d->size >= sizeof(tag) - 1 && i <= d->size - (sizeof(tag) - 1); i++)
		if (memcmp(d->data + i, tag, sizeof(tag) - 1) == 0)
			return true;
	return false;
}

/* GnuTLS refuses a whole certificate that has an extension under the profile
 * OID (its 128-bit arc, docs/DECISIONS.md): say that, not "not a certificate". */
static bool
has_profile_oid(const gnutls_datum_t *d)
{
	gnutls_datum_t der = { NULL, 0 };
	bool found;

	if (looks_pem(d) && gnutls_pem_base64_decode2("CERTIFICATE", d, &der) < 0)
		return false;
	found = looks_pem(d) ? memmem(der.data, der.size, est_profile_oid_der,
				      EST_PROFILE_OID_DER_LEN) != NULL
		: memmem(d->data, d->size, est_profile_oid_der, EST_PROFILE_OID_DER_LEN) != NULL;
	gnutls_free(der.data);
	return found;
}

int
est_cert_parse_bundle(const gnutls_datum_t *data, const char *name, struct est_cert_list *l,
		      struct est_error *e)
{
	gnutls_x509_crt_t *crts = NULL;
	unsigned n = 0;
	int rc;

	l->crts = NULL;
	l->n = 0;
	rc = gnutls_x509_crt_list_import2(&crts, &n, data, looks_pem(data) ? GNUTLS_X509_FMT_PEM
					  : GNUTLS_X509_FMT_DER, 0);
	if (rc == GNUTLS_E_MEMORY_ERROR)
		return est_fail(e, EST_EINTERNAL, "%s: out of memory", name);
	if (rc < 0 || n == 0) {
		gnutls_free(crts);
		if (rc < 0 && has_profile_oid(data))
			return est_fail(e, EST_EDATA, "%s: carries the device-profile extension "
					"%s, whose 128-bit arc GnuTLS %s cannot parse", name,
					EST_PROFILE_OID, gnutls_check_version(NULL));
		return est_fail(e, EST_EDATA, "%s: not a certificate (PEM or DER): %s", name,
				rc < 0 ? gnutls_strerror(rc) : "none found");
	}
	l->crts = crts;
	l->n = n;
	return 0;
}

int
est_cert_load_bundle(const char *path, struct est_cert_list *l, struct est_error *e)
{
	gnutls_datum_t d = { NULL, 0 };
	int rc;

	l->crts = NULL;
	l->n = 0;
	if ((rc = est_file_read(path, EST_FILE_MAX, &d, e)) < 0)
		return rc;
	rc = est_cert_parse_bundle(&d, est_path_is_std(path) ? "standard input" : path, l, e);
	gnutls_free(d.data);
	return rc;
}

void
est_cert_list_free(struct est_cert_list *l)
{
	unsigned i;

	for (i = 0; i < l->n; i++)
		gnutls_x509_crt_deinit(l->crts[i]);
	gnutls_free(l->crts);
	l->crts = NULL;
	l->n = 0;
}

static int
get_dn(gnutls_x509_crt_t crt, int issuer, char **out)
{
	gnutls_datum_t d = { NULL, 0 };
	int rc;

	rc = issuer ? gnutls_x509_crt_get_issuer_dn3(crt, &d, 0) : gnutls_x509_crt_get_dn3(crt, &d, 0);
	if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
		rc = 0;         /* an empty name */
	if (rc < 0)
		return rc;
	*out = strndup(d.data != NULL ? (const char *)d.data : "", d.size);
	gnutls_free(d.data);
	return *out == NULL ? GNUTLS_E_MEMORY_ERROR : 0;
}

static void
hex(const unsigned char *b, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	out[2 * n] = '\0';
}

static const char *
curve_name(gnutls_ecc_curve_t c)
{
	switch (c) {
	case GNUTLS_ECC_CURVE_SECP256R1: return "P-256";
	case GNUTLS_ECC_CURVE_SECP384R1: return "P-384";
	case GNUTLS_ECC_CURVE_SECP521R1: return "P-521";
	default: return gnutls_ecc_curve_get_name(c);
	}
}

static int
key_type(gnutls_x509_crt_t crt, char *out, size_t size)
{
	gnutls_datum_t x = { NULL, 0 }, y = { NULL, 0 };
	gnutls_ecc_curve_t curve;
	unsigned bits = 0;
	int pk, rc;

	if ((pk = gnutls_x509_crt_get_pk_algorithm(crt, &bits)) < 0)
		return pk;
	switch (pk) {
	case GNUTLS_PK_ECDSA:
		if ((rc = gnutls_x509_crt_get_pk_ecc_raw(crt, &curve, &x, &y)) < 0)
			return rc;
		gnutls_free(x.data);
		gnutls_free(y.data);
		snprintf(out, size, "ECDSA %s", curve_name(curve));
		break;
	case GNUTLS_PK_EDDSA_ED25519:
	case GNUTLS_PK_EDDSA_ED448:
		snprintf(out, size, "%s", pk == GNUTLS_PK_EDDSA_ED25519 ? "Ed25519" : "Ed448");
		break;
	default:
		snprintf(out, size, "%s %u", gnutls_pk_get_name((gnutls_pk_algorithm_t)pk), bits);
	}
	return 0;
}

int
est_cert_info(gnutls_x509_crt_t crt, struct est_cert_info *info, struct est_error *e)
{
	unsigned char buf[64];
	size_t len = sizeof(buf), lead;
	int rc;

	memset(info, 0, sizeof(*info));
	if ((rc = get_dn(crt, 0, &info->subject)) < 0 || (rc = get_dn(crt, 1, &info->issuer)) < 0)
		goto fail;
	if ((rc = gnutls_x509_crt_get_serial(crt, buf, &len)) < 0 || len > 32)
		goto fail;
	/* The number, as openssl prints it: no 00 byte that keeps DER positive. */
	for (lead = 0; lead + 1 < len && buf[lead] == 0; lead++)
		;
	hex(buf + lead, len - lead, info->serial);
	len = sizeof(buf);
	if ((rc = gnutls_x509_crt_get_fingerprint(crt, GNUTLS_DIG_SHA256, buf, &len)) < 0)
		goto fail;
	hex(buf, len, info->sha256);
	if ((rc = key_type(crt, info->key_type, sizeof(info->key_type))) < 0)
		goto fail;
	info->not_before = gnutls_x509_crt_get_activation_time(crt);
	info->not_after = gnutls_x509_crt_get_expiration_time(crt);
	return 0;
fail:
	est_cert_info_free(info);
	return est_fail(e, EST_EDATA, "reading the certificate: %s",
			rc < 0 ? gnutls_strerror(rc) : "serial number longer than 32 bytes");
}

void
est_cert_info_free(struct est_cert_info *info)
{
	free(info->subject);
	free(info->issuer);
	info->subject = info->issuer = NULL;
}

/* Where a path's certificates come from: the bundle's self-signed ones are
 * the anchors; the rest of the leaf's file and of the bundle may only link. */
struct cand {
	gnutls_x509_crt_t crt;
	bool anchor;
	bool used;
};

struct path {
	gnutls_x509_crt_t crt[EST_CERT_MAX_DEPTH];
	unsigned n;
	bool trusted;           /* ends at an anchor */
};

static bool
self_signed(gnutls_x509_crt_t c)
{
	return gnutls_x509_crt_check_issuer(c, c) != 0;
}

/* Anchors first, so the path ends at the first certificate BUNDLE trusts,
 * and a copy of the root in the leaf's file is never used in its place. */
static int
collect(const struct est_cert_list *extra, const struct est_cert_list *bundle, struct cand **out,
	unsigned *n)
{
	unsigned i, k = 0, total = bundle->n + (extra != NULL ? extra->n : 0);
	struct cand *c = calloc(total + 1, sizeof(*c));

	if (c == NULL)
		return -1;
	for (i = 0; i < bundle->n; i++)
		if (self_signed(bundle->crts[i]))
			c[k++] = (struct cand){ bundle->crts[i], true, false };
	for (i = 0; extra != NULL && i < extra->n; i++)
		c[k++] = (struct cand){ extra->crts[i], false, false };
	for (i = 0; i < bundle->n; i++)
		if (!self_signed(bundle->crts[i]))
			c[k++] = (struct cand){ bundle->crts[i], false, false };
	*out = c;
	*n = k;
	return 0;
}

static bool
is_anchor(gnutls_x509_crt_t crt, const struct cand *c, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++)
		if (c[i].anchor && gnutls_x509_crt_equals(crt, c[i].crt))
			return true;
	return false;
}

/* Walk from LEAF to an anchor by issuer name and key identifier; the
 * signatures along the way are gnutls' business (verify_path). */
static void
build_path(gnutls_x509_crt_t leaf, struct cand *c, unsigned nc, struct path *p)
{
	gnutls_x509_crt_t cur = leaf;
	unsigned i;

	p->n = 0;
	p->trusted = false;
	p->crt[p->n++] = leaf;
	while (!(p->trusted = is_anchor(cur, c, nc)) && p->n < EST_CERT_MAX_DEPTH) {
		for (i = 0; i < nc; i++)
			if (!c[i].used && gnutls_x509_crt_check_issuer(cur, c[i].crt) &&
			    !gnutls_x509_crt_equals(cur, c[i].crt))
				break;
		if (i == nc)
			return;
		c[i].used = true;
		cur = p->crt[p->n++] = c[i].crt;
	}
}

static const struct {
	unsigned bit;
	const char *why;
} reasons[] = {
	{ GNUTLS_CERT_SIGNATURE_FAILURE, "signature invalid" },
	{ GNUTLS_CERT_SIGNER_NOT_CA, "issuer is not a CA" },
	{ GNUTLS_CERT_SIGNER_CONSTRAINTS_FAILURE, "issuer's constraints (path length, key usage "
	  "or name constraints) forbid it" },
	{ GNUTLS_CERT_INSECURE_ALGORITHM, "signed with an insecure algorithm" },
	{ GNUTLS_CERT_REVOKED, "revoked" },
	{ GNUTLS_CERT_SIGNER_NOT_FOUND, "not signed by a CA in the bundle" },
};

/* gnutls checks signatures, CA flags and constraints along P; time is left
 * to check_times, since gnutls can only verify at the current time. */
static int
verify_path(const struct path *p, const char *name, const char *bundle_name, struct est_error *e)
{
	gnutls_x509_trust_list_t tl = NULL;
	gnutls_x509_crt_t anchor = p->crt[p->n - 1];
	unsigned status = 0, i;
	int rc;

	if ((rc = gnutls_x509_trust_list_init(&tl, 0)) < 0 ||
	    (rc = gnutls_x509_trust_list_add_cas(tl, &anchor, 1, 0)) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "%s: trust list: %s", name, gnutls_strerror(rc));
		goto out;
	}
	rc = gnutls_x509_trust_list_verify_crt2(tl, (gnutls_x509_crt_t *)p->crt, p->n, NULL, 0,
						GNUTLS_VERIFY_DISABLE_TIME_CHECKS |
						GNUTLS_VERIFY_DISABLE_TRUSTED_TIME_CHECKS |
						GNUTLS_VERIFY_DO_NOT_ALLOW_UNSORTED_CHAIN,
						&status, NULL);
	if (rc < 0) {
		rc = est_fail(e, EST_EINTERNAL, "%s: verifying: %s", name, gnutls_strerror(rc));
		goto out;
	}
	for (i = 0; status != 0 && i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (status & reasons[i].bit)
			break;
	if (status == 0)
		rc = 0;
	else if (i < sizeof(reasons) / sizeof(reasons[0]) &&
		 reasons[i].bit == GNUTLS_CERT_SIGNER_NOT_FOUND)
		rc = est_fail(e, EST_ENEGATIVE, "%s: not signed by a CA in %s", name, bundle_name);
	else if (i < sizeof(reasons) / sizeof(reasons[0]))
		rc = est_fail(e, EST_ENEGATIVE, "%s: %s", name, reasons[i].why);
	else
		rc = est_fail(e, EST_ENEGATIVE, "%s: not valid (gnutls status 0x%x)", name, status);
out:
	/* 0: the anchor belongs to the caller's bundle, not to the list. */
	if (tl != NULL)
		gnutls_x509_trust_list_deinit(tl, 0);
	return rc;
}

/* Every certificate of the path must be valid at AT, the anchor included:
 * an expired root no longer vouches for anything. */
static int
check_times(const struct path *p, time_t at, const char *name, struct est_error *e)
{
	char when[EST_CERT_TIME_LEN], *dn = NULL;
	time_t nb, na;
	unsigned i;
	int rc = 0;

	for (i = 0; i < p->n && rc == 0; i++) {
		nb = gnutls_x509_crt_get_activation_time(p->crt[i]);
		na = gnutls_x509_crt_get_expiration_time(p->crt[i]);
		if (at >= nb && at <= na)
			continue;
		est_cert_time_format(at < nb ? nb : na, when);
		if (i > 0 && get_dn(p->crt[i], 0, &dn) < 0)
			dn = NULL;
		rc = est_fail(e, EST_ENEGATIVE, "%s: %s%s%s%s %s", name, i > 0 ? "issuer '" : "",
			      i > 0 ? (dn != NULL ? dn : "?") : "", i > 0 ? "' " : "",
			      at < nb ? "not yet valid until" : "expired on", when);
	}
	free(dn);
	return rc;
}

int
est_cert_verify(gnutls_x509_crt_t leaf, const struct est_cert_list *extra,
		const struct est_cert_list *bundle, time_t at, const char *name,
		const char *bundle_name, struct est_error *e)
{
	struct cand *c = NULL;
	struct path p;
	unsigned nc;
	int rc;

	if (collect(extra, bundle, &c, &nc) < 0)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	build_path(leaf, c, nc, &p);
	if (!p.trusted && p.n == EST_CERT_MAX_DEPTH)
		rc = est_fail(e, EST_ENEGATIVE, "%s: chain longer than %d certificates", name,
			      EST_CERT_MAX_DEPTH);
	else if (!p.trusted && p.n == 1 && self_signed(leaf))
		rc = est_fail(e, EST_ENEGATIVE, "%s: self-signed and not in %s", name, bundle_name);
	else if (!p.trusted)
		rc = est_fail(e, EST_ENEGATIVE, "%s: not signed by a CA in %s", name, bundle_name);
	else if ((rc = verify_path(&p, name, bundle_name, e)) == 0)
		rc = check_times(&p, at, name, e);
	free(c);
	return rc;
}

int
est_cert_key_match(gnutls_x509_crt_t crt, gnutls_privkey_t key, bool *match,
		   struct est_error *e)
{
	gnutls_pubkey_t a = NULL, b = NULL;
	char ha[65], hb[65];
	int rc;

	*match = false;
	if ((rc = gnutls_pubkey_init(&a)) < 0 || (rc = gnutls_pubkey_init(&b)) < 0 ||
	    (rc = gnutls_pubkey_import_x509(a, crt, 0)) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "certificate's public key: %s", gnutls_strerror(rc));
		goto out;
	}
	if ((rc = gnutls_pubkey_import_privkey(b, key, 0, 0)) < 0) {
		rc = est_fail(e, EST_EDATA, "deriving the public key: %s", gnutls_strerror(rc));
		goto out;
	}
	/* The digests of the two DER SubjectPublicKeyInfos, as gnutls encodes both. */
	if ((rc = est_pubkey_sha256_hex(a, ha, e)) < 0 || (rc = est_pubkey_sha256_hex(b, hb, e)) < 0)
		goto out;
	*match = strcmp(ha, hb) == 0;
out:
	gnutls_pubkey_deinit(a);
	gnutls_pubkey_deinit(b);
	return rc;
}

int
est_cert_profile(gnutls_x509_crt_t crt, struct est_profile *p, bool *found,
		 struct est_error *e)
{
	gnutls_datum_t d = { NULL, 0 };
	unsigned critical;
	int rc, legacy = 0;

	*found = false;
	rc = gnutls_x509_crt_get_extension_by_oid2(crt, EST_PROFILE_OID, 0, &d, &critical);
	if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE) {
		legacy = 1;
		rc = gnutls_x509_crt_get_extension_by_oid2(crt, EST_LEGACY_PROFILE_OID, 0, &d,
							   &critical);
	}
	if (rc == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
		return 0;
	if (rc < 0)
		return est_fail(e, EST_EDATA, "profile extension: %s", gnutls_strerror(rc));
	rc = legacy ? est_profile_from_legacy(d.data, d.size, p, e)
		: est_profile_decode(d.data, d.size, p, e);
	gnutls_free(d.data);
	if (rc < 0)
		est_error_prefix(e, "%s", legacy ? "legacy profile extension" : "profile extension");
	*found = rc == 0;
	return rc;
}

/* Two digits of S at I, or -1. */
static int
two(const char *s, int i)
{
	if (!isdigit((unsigned char)s[i]) || !isdigit((unsigned char)s[i + 1]))
		return -1;
	return (s[i] - '0') * 10 + (s[i + 1] - '0');
}

/* The offset from UTC of the zone at S ("Z", "+02:00"), in seconds, or 1. */
static long
zone(const char *s)
{
	int h, m;

	if ((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0')
		return 0;
	if ((s[0] != '+' && s[0] != '-') || s[3] != ':' || s[6] != '\0')
		return 1;
	if ((h = two(s, 1)) < 0 || (m = two(s, 4)) < 0 || h > 23 || m > 59)
		return 1;
	return (s[0] == '-' ? -1 : 1) * (h * 3600L + m * 60L);
}

int
est_cert_time_parse(const char *s, time_t *t)
{
	struct tm tm = { 0 }, back;
	int y1, y2, i = 19;
	long off;
	time_t v;

	if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':' || s[16] != ':' ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' '))
		return -1;
	if ((y1 = two(s, 0)) < 0 || (y2 = two(s, 2)) < 0 || (tm.tm_mon = two(s, 5)) < 1 ||
	    (tm.tm_mday = two(s, 8)) < 1 || (tm.tm_hour = two(s, 11)) < 0 ||
	    (tm.tm_min = two(s, 14)) < 0 || (tm.tm_sec = two(s, 17)) < 0)
		return -1;
	if (s[i] == '.')
		for (i++; isdigit((unsigned char)s[i]); i++)
			;
	if ((off = zone(s + i)) == 1 || tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60)
		return -1;
	tm.tm_year = y1 * 100 + y2 - 1900;
	tm.tm_mon -= 1;
	if (tm.tm_sec == 60)
		tm.tm_sec = 59;         /* a leap second: time_t has no room for it */
	back = tm;
	v = timegm(&tm);
	/* timegm normalises 2026-02-30 to March; a real date comes back as given. */
	if (tm.tm_mday != back.tm_mday || tm.tm_mon != back.tm_mon)
		return -1;
	*t = v - off;
	return 0;
}

void
est_cert_time_format(time_t t, char buf[EST_CERT_TIME_LEN])
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, EST_CERT_TIME_LEN, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, EST_CERT_TIME_LEN, "@%lld", (long long)t);
}
