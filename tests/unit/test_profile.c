/* Unit tests of the device profile (DER and seed JSON), the client config
 * and CSRs carrying the profile. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* "config.h" above is autoconf's; lib/config.h shares its name. */
#include "../../lib/config.h"
#include "b64.h"
#include "csr.h"
#include "file.h"
#include "key.h"
#include "profile.h"
#include "tap.h"

#include <gnutls/x509-ext.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const char *srcdir;

/* ---- a tiny DER writer, only to make malformed inputs by hand ---- */

struct buf {
	unsigned char b[80000];
	size_t n;
};

static void
put(struct buf *o, const void *p, size_t n)
{
	memcpy(o->b + o->n, p, n);
	o->n += n;
}

/* TAG, definite minimal length, then CONTENT. */
static void
tlv(struct buf *o, unsigned char tag, const struct buf *content)
{
	unsigned char h[6];
	size_t n = content->n, k = 0;

	h[k++] = tag;
	if (n < 0x80) {
		h[k++] = (unsigned char)n;
	} else if (n < 0x100) {
		h[k++] = 0x81;
		h[k++] = (unsigned char)n;
	} else {
		h[k++] = 0x82;
		h[k++] = (unsigned char)(n >> 8);
		h[k++] = (unsigned char)n;
	}
	put(o, h, k);
	put(o, content->b, content->n);
}

static void
tlv_raw(struct buf *o, unsigned char tag, const void *p, size_t n)
{
	static struct buf c;

	c.n = 0;
	put(&c, p, n);
	tlv(o, tag, &c);
}

/* ---- profiles used across the tests ---- */

static char *res_alpha[] = { "client/DeviceAlpha" };
static char *res_beta[] = { "topic/DeviceAlpha/telemetry", "topic/DeviceAlpha/status" };
static char *res_deny[] = { "topic/DeviceAlpha/admin" };

static struct est_permission perms_sorted[] = {
	{ EST_ACT_CONNECT, EST_EFFECT_ALLOW, 1, res_alpha },
	{ EST_ACT_PUBLISH, EST_EFFECT_ALLOW, 2, res_beta },
	{ EST_ACT_SUBSCRIBE, EST_EFFECT_DENY, 1, res_deny },
};
static struct est_permission perms_shuffled[] = {
	{ EST_ACT_SUBSCRIBE, EST_EFFECT_DENY, 1, res_deny },
	{ EST_ACT_CONNECT, EST_EFFECT_ALLOW, 1, res_alpha },
	{ EST_ACT_PUBLISH, EST_EFFECT_ALLOW, 2, res_beta },
};

static int
profile_equal(const struct est_profile *a, const struct est_profile *b)
{
	size_t i, j;

	if (a->version != b->version || strcmp(a->thing_name, b->thing_name) != 0 ||
	    a->npermissions != b->npermissions)
		return 0;
	for (i = 0; i < a->npermissions; i++) {
		const struct est_permission *p = &a->permissions[i], *q = &b->permissions[i];

		if (p->action != q->action || p->effect != q->effect ||
		    p->nresources != q->nresources)
			return 0;
		for (j = 0; j < p->nresources; j++)
			if (strcmp(p->resources[j], q->resources[j]) != 0)
				return 0;
	}
	return 1;
}

static void
test_thing_names(void)
{
	static const struct {
		const char *name;
		int ok;
	} cases[] = {
		{ "DeviceAlpha", 1 }, { "a", 1 }, { "dev:01_x-Y", 1 }, { "0", 1 },
		{ "", 0 }, { "dev/1", 0 }, { "..", 0 }, { ".", 0 }, { "dev.1", 0 }, { "dev 1", 0 },
		{ "dev\n", 0 }, { "d\xc3\xa9v", 0 }, { "dev\\1", 0 }, { "-", 1 },
	};
	char long_name[EST_THING_NAME_MAX + 2];
	size_t i;

	for (i = 0; i < N(cases); i++) {
		char shown[32];
		size_t k;

		/* Keep TAP on one line: show control characters as '?'. */
		snprintf(shown, sizeof(shown), "%s", cases[i].name);
		for (k = 0; shown[k] != '\0'; k++)
			if ((unsigned char)shown[k] < 0x20)
				shown[k] = '?';
		tap_ok(est_thing_name_valid(cases[i].name) == cases[i].ok,
		       "thing name '%s' is %s", shown, cases[i].ok ? "valid" : "refused");
	}
	memset(long_name, 'a', sizeof(long_name));
	long_name[EST_THING_NAME_MAX] = '\0';
	tap_ok(est_thing_name_valid(long_name), "a thing name of 128 characters is valid");
	long_name[EST_THING_NAME_MAX] = 'a';
	long_name[EST_THING_NAME_MAX + 1] = '\0';
	tap_ok(!est_thing_name_valid(long_name), "a thing name of 129 characters is refused");
	tap_ok(!est_thing_name_valid(NULL), "a NULL thing name is refused");
}

static void
test_round_trip(void)
{
	static char *many[EST_PROFILE_MAX_RESOURCES];
	static char big[EST_PROFILE_MAX_RESOURCE_LEN + 1];
	struct est_permission wide[EST_ACT__MAX];
	const struct {
		const char *what;
		struct est_profile p;
	} cases[] = {
		{ "no permissions", { 1, "DeviceAlpha", 0, NULL } },
		{ "three permissions", { 1, "DeviceAlpha", 3, perms_sorted } },
		{ "every action at the resource caps", { 1, "x", EST_ACT__MAX, wide } },
	};
	struct est_profile back;
	struct est_error e;
	gnutls_datum_t der;
	size_t i;
	int rc;

	memset(big, 'r', EST_PROFILE_MAX_RESOURCE_LEN);
	for (i = 0; i < N(many); i++)
		many[i] = big;
	for (i = 0; i < EST_ACT__MAX; i++)
		wide[i] = (struct est_permission){ (enum est_action)i, EST_EFFECT_DENY,
						   EST_PROFILE_MAX_RESOURCES, many };
	for (i = 0; i < N(cases); i++) {
		rc = est_profile_encode(&cases[i].p, &der, &e);
		tap_ok(rc == 0, "encode: %s", cases[i].what);
		if (rc < 0)
			continue;
		rc = est_profile_decode(der.data, der.size, &back, &e);
		tap_ok(rc == 0 && profile_equal(&cases[i].p, &back), "decode gives it back: %s%s%s",
		       cases[i].what, rc ? ": " : "", rc ? e.msg : "");
		est_profile_free(&back);
		gnutls_free(der.data);
	}
}

/* The expected DER of a small profile, written out by hand from DESIGN.md 4.2. */
static void
test_known_answer(void)
{
	static char *r[] = { "a" };
	static struct est_permission perm[] = { { EST_ACT_PUBLISH, EST_EFFECT_DENY, 1, r } };
	static const struct est_profile p = { 1, "T", 1, perm };
	static const unsigned char want[] = {
		0x30, 0x15, 0x02, 0x01, 0x01, 0x0c, 0x01, 'T',
		0x30, 0x0d, 0x30, 0x0b, 0x0a, 0x01, 0x01, 0x0a, 0x01, 0x01,
		0x30, 0x03, 0x0c, 0x01, 'a',
	};
	struct est_profile shuffled = { 1, "DeviceAlpha", 3, perms_shuffled };
	struct est_profile sorted = { 1, "DeviceAlpha", 3, perms_sorted };
	gnutls_datum_t d1 = { NULL, 0 }, d2 = { NULL, 0 };
	struct est_error e;

	tap_ok(est_profile_encode(&p, &d1, &e) == 0 && d1.size == sizeof(want) &&
	       memcmp(d1.data, want, sizeof(want)) == 0, "encode matches the hand-written DER");
	gnutls_free(d1.data);
	tap_ok(est_profile_encode(&shuffled, &d1, &e) == 0 &&
	       est_profile_encode(&sorted, &d2, &e) == 0 && d1.size == d2.size &&
	       memcmp(d1.data, d2.data, d1.size) == 0,
	       "encoding is deterministic whatever the order of the permissions");
	gnutls_free(d1.data);
	gnutls_free(d2.data);
}

static void
test_encode_refuses(void)
{
	static char *empty[] = { "" };
	static char *ctl[] = { "topic/\x01" };
	static struct est_permission dup[] = {
		{ EST_ACT_CONNECT, EST_EFFECT_ALLOW, 1, res_alpha },
		{ EST_ACT_CONNECT, EST_EFFECT_DENY, 1, res_alpha },
	};
	static struct est_permission bad_res[] = { { EST_ACT_CONNECT, EST_EFFECT_ALLOW, 1, empty } };
	static struct est_permission bad_ctl[] = { { EST_ACT_CONNECT, EST_EFFECT_ALLOW, 1, ctl } };
	static struct est_permission bad_act[] = { { EST_ACT__MAX, EST_EFFECT_ALLOW, 1, res_alpha } };
	const struct {
		const char *what;
		struct est_profile p;
	} cases[] = {
		{ "version 2", { 2, "DeviceAlpha", 0, NULL } },
		{ "an invalid thing name", { 1, "dev/1", 0, NULL } },
		{ "an action twice", { 1, "DeviceAlpha", 2, dup } },
		{ "an empty resource", { 1, "DeviceAlpha", 1, bad_res } },
		{ "a control character in a resource", { 1, "DeviceAlpha", 1, bad_ctl } },
		{ "an unknown action", { 1, "DeviceAlpha", 1, bad_act } },
	};
	gnutls_datum_t der;
	struct est_error e;
	size_t i;

	for (i = 0; i < N(cases); i++)
		tap_ok(est_profile_encode(&cases[i].p, &der, &e) == -EST_EDATA && der.data == NULL,
		       "encode refuses %s", cases[i].what);
}

/* A Permission with ACTION, EFFECT and N resources of LEN bytes of 'r'. */
static void
der_permission(struct buf *o, int action, int effect, size_t n, size_t len)
{
	static struct buf p, rs;
	unsigned char a = (unsigned char)action, f = (unsigned char)effect, r[300];
	size_t i;

	p.n = rs.n = 0;
	memset(r, 'r', sizeof(r));
	tlv_raw(&p, 0x0a, &a, 1);
	tlv_raw(&p, 0x0a, &f, 1);
	for (i = 0; i < n; i++)
		tlv_raw(&rs, 0x0c, r, len);
	tlv(&p, 0x30, &rs);
	tlv(o, 0x30, &p);
}

/* A DeviceProfile from its parts: VERSION (DER content), NAME, PERMS (content). */
static void
der_profile(struct buf *o, const void *version, size_t vlen, const char *name, size_t nlen,
	    const struct buf *perms)
{
	static struct buf c;

	c.n = 0;
	o->n = 0;
	tlv_raw(&c, 0x02, version, vlen);
	tlv_raw(&c, 0x0c, name, nlen);
	tlv(&c, 0x30, perms);
	tlv(o, 0x30, &c);
}

static int
decode_fails(const unsigned char *der, size_t len)
{
	struct est_profile p;
	struct est_error e;
	int rc = est_profile_decode(der, len, &p, &e);

	if (rc == 0)
		est_profile_free(&p);
	return rc == -EST_EDATA && p.thing_name == NULL && p.permissions == NULL;
}

static void
test_decode_malformed_structure(void)
{
	static struct buf o, perms;
	static const unsigned char v1[] = { 1 }, v2[] = { 2 }, v0[] = { 0 }, vneg[] = { 0xff };
	static const unsigned char vpad[] = { 0, 1 }, vbig[] = { 1, 0, 0, 0, 0, 0, 0, 0, 1 };
	char name129[129], name_nul[] = { 'a', 0, 'b' };
	struct {
		const char *what;
		int action, effect;
		size_t nres, reslen;
		const unsigned char *v;
		size_t vlen;
		const char *name;
		size_t nlen;
	} cases[] = {
		{ "version 2", 0, 0, 1, 4, v2, 1, "T", 1 },
		{ "version 0", 0, 0, 1, 4, v0, 1, "T", 1 },
		{ "version -1", 0, 0, 1, 4, vneg, 1, "T", 1 },
		{ "a zero-padded version", 0, 0, 1, 4, vpad, 2, "T", 1 },
		{ "a version wider than a long", 0, 0, 1, 4, vbig, 9, "T", 1 },
		{ "an empty thingName", 0, 0, 1, 4, v1, 1, "", 0 },
		{ "a thingName with a slash", 0, 0, 1, 4, v1, 1, "a/b", 3 },
		{ "a thingName of '..'", 0, 0, 1, 4, v1, 1, "..", 2 },
		{ "a thingName of 129 characters", 0, 0, 1, 4, v1, 1, name129, 129 },
		{ "a thingName with a NUL", 0, 0, 1, 4, v1, 1, name_nul, 3 },
		{ "action 4", 4, 0, 1, 4, v1, 1, "T", 1 },
		{ "effect 2", 0, 2, 1, 4, v1, 1, "T", 1 },
		{ "action -1", -1, 0, 1, 4, v1, 1, "T", 1 },
		{ "an empty resource", 0, 0, 1, 0, v1, 1, "T", 1 },
		{ "a resource of 257 bytes", 0, 0, 1, 257, v1, 1, "T", 1 },
		{ "65 resources", 0, 0, 65, 4, v1, 1, "T", 1 },
	};
	size_t i;

	memset(name129, 'a', sizeof(name129));
	for (i = 0; i < N(cases); i++) {
		perms.n = 0;
		der_permission(&perms, cases[i].action, cases[i].effect, cases[i].nres,
			       cases[i].reslen);
		der_profile(&o, cases[i].v, cases[i].vlen, cases[i].name, cases[i].nlen, &perms);
		tap_ok(decode_fails(o.b, o.n), "decode refuses %s", cases[i].what);
	}
	/* The same builder with sane values must decode, or the cases above prove nothing. */
	perms.n = 0;
	der_permission(&perms, 0, 0, 64, 256);
	der_profile(&o, v1, 1, "T", 1, &perms);
	tap_ok(!decode_fails(o.b, o.n), "decode accepts the builder's valid profile");

	perms.n = 0;
	der_permission(&perms, 1, 0, 1, 4);
	der_permission(&perms, 0, 0, 1, 4);
	der_profile(&o, v1, 1, "T", 1, &perms);
	tap_ok(decode_fails(o.b, o.n), "decode refuses permissions out of order");
	perms.n = 0;
	der_permission(&perms, 2, 0, 1, 4);
	der_permission(&perms, 2, 1, 1, 4);
	der_profile(&o, v1, 1, "T", 1, &perms);
	tap_ok(decode_fails(o.b, o.n), "decode refuses an action given twice");
	perms.n = 0;
	for (i = 0; i < 65; i++)
		der_permission(&perms, 0, 0, 1, 1);
	der_profile(&o, v1, 1, "T", 1, &perms);
	tap_ok(decode_fails(o.b, o.n), "decode refuses 65 permissions");
}

static void
test_decode_malformed_encoding(void)
{
	static struct est_profile p = { 1, "DeviceAlpha", 3, perms_sorted };
	static unsigned char m[4096];
	gnutls_datum_t der;
	struct est_error e;
	size_t i, bad = 0, crashes_would_show = 0;
	int ok;

	if (est_profile_encode(&p, &der, &e) < 0) {
		tap_ok(0, "encode the base profile: %s", e.msg);
		return;
	}
	tap_ok(!decode_fails(der.data, der.size), "decode accepts the base profile");
	tap_ok(decode_fails(der.data, 0), "decode refuses empty input");
	for (i = 1, ok = 1; i < der.size; i++)
		ok &= decode_fails(der.data, i);
	tap_ok(ok, "decode refuses every truncation of the base profile (%u of them)",
	       der.size - 1);
	memcpy(m, der.data, der.size);
	m[der.size] = 0x00;
	tap_ok(decode_fails(m, der.size + 1), "decode refuses a trailing zero byte");
	m[0] = 0x31;
	tap_ok(decode_fails(m, der.size), "decode refuses a SET instead of a SEQUENCE");
	memcpy(m, der.data, der.size);
	m[2] = 0x04;
	tap_ok(decode_fails(m, der.size), "decode refuses an OCTET STRING for the version");
	memcpy(m, der.data, der.size);
	m[5] = 0x13;
	tap_ok(decode_fails(m, der.size), "decode refuses a PrintableString thingName");
	/* Huge, indefinite and non-minimal outer lengths. */
	{
		static const unsigned char huge[] = { 0x30, 0x84, 0x7f, 0xff, 0xff, 0xff, 0x02, 0x01,
						      0x01 };
		static const unsigned char huge_inner[] = { 0x30, 0x0a, 0x02, 0x01, 0x01, 0x0c, 0x84,
							    0x7f, 0xff, 0xff, 0xff, 0x41 };
		static const unsigned char indef[] = { 0x30, 0x80, 0x02, 0x01, 0x01, 0x0c, 0x01, 'T',
						       0x30, 0x00, 0x00, 0x00 };
		static const unsigned char longform[] = { 0x30, 0x81, 0x08, 0x02, 0x01, 0x01, 0x0c,
							  0x01, 'T', 0x30, 0x00 };
		static const unsigned char minimal[] = { 0x30, 0x08, 0x02, 0x01, 0x01, 0x0c, 0x01, 'T',
							 0x30, 0x00 };

		tap_ok(decode_fails(huge, sizeof(huge)), "decode refuses a 2 GB outer length");
		tap_ok(decode_fails(huge_inner, sizeof(huge_inner)),
		       "decode refuses a 2 GB thingName length");
		tap_ok(decode_fails(indef, sizeof(indef)), "decode refuses an indefinite length");
		tap_ok(decode_fails(longform, sizeof(longform)),
		       "decode refuses a non-minimal length");
		tap_ok(!decode_fails(minimal, sizeof(minimal)),
		       "decode accepts the minimal form of that profile");
	}
	/* Every single-byte change must either fail cleanly or decode to something
	 * that re-encodes to the same bytes (the sanitizer build watches memory). */
	for (i = 0; i < der.size; i++) {
		static const unsigned char flips[] = { 0x00, 0x01, 0x7f, 0x80, 0xff };
		size_t f;

		for (f = 0; f < N(flips); f++) {
			struct est_profile q;
			gnutls_datum_t again;

			memcpy(m, der.data, der.size);
			m[i] ^= flips[f] == 0 ? 0x55 : flips[f];
			if (est_profile_decode(m, der.size, &q, &e) < 0) {
				bad += e.code != EST_EDATA;
				continue;
			}
			if (est_profile_encode(&q, &again, &e) < 0 || again.size != der.size ||
			    memcmp(again.data, m, der.size) != 0)
				bad++;
			crashes_would_show++;
			gnutls_free(again.data);
			est_profile_free(&q);
		}
	}
	tap_ok(bad == 0, "every byte flip fails with EST_EDATA or decodes canonically "
	       "(%zu decoded)", crashes_would_show);
	m[0] = 0;
	tap_ok(decode_fails(m, EST_PROFILE_DER_MAX + 1), "decode refuses input over the cap");
	gnutls_free(der.data);
}

static void
test_iotdetails(void)
{
	static const struct {
		const char *json;
		const char *error;      /* NULL: accepted */
		size_t nperm;
	} cases[] = {
		{ "{\"ThingName\":\"A\"}", NULL, 0 },
		{ "{\"ThingName\":\"A\",\"Policies\":{\"Connect\":true,\"Publish\":null},"
		  "\"Topics\":{\"Connect\":{\"Name1\":\"client/A\"}}}", NULL, 1 },
		{ "{\"ThingName\":\"A\",\"Policies\":{\"Subscribe\":false,\"Connect\":true},"
		  "\"Topics\":{\"Connect\":[\"client/A\"],\"Subscribe\":{\"N\":\"t/a\"}}}", NULL, 2 },
		{ "{}", "D.IoTDetails.ThingName: missing", 0 },
		{ "[]", "D.IoTDetails: expected an object", 0 },
		{ "{\"ThingName\":7}", "D.IoTDetails.ThingName: expected a string", 0 },
		{ "{\"ThingName\":\"a/b\"}", "D.IoTDetails.ThingName: 'a/b' is not a valid ThingName "
		  "(1-128 characters of A-Z a-z 0-9 : _ -)", 0 },
		{ "{\"ThingName\":\"\"}", "D.IoTDetails.ThingName: not a valid ThingName "
		  "(1-128 characters of A-Z a-z 0-9 : _ -)", 0 },
		{ "{\"ThingName\":\"A\",\"Policies\":{\"Publish\":\"yes\"}}",
		  "D.IoTDetails.Policies.Publish: expected true, false or null", 0 },
		{ "{\"ThingName\":\"A\",\"Policies\":{\"Publish\":1}}",
		  "D.IoTDetails.Policies.Publish: expected true, false or null", 0 },
		{ "{\"ThingName\":\"A\",\"Policies\":[]}", "D.IoTDetails.Policies: expected an object",
		  0 },
		{ "{\"ThingName\":\"A\",\"Policies\":{\"Connect\":true}}",
		  "D.IoTDetails.Topics.Connect: missing, Policies.Connect needs at least one topic", 0 },
		{ "{\"ThingName\":\"A\",\"Policies\":{\"Connect\":false},\"Topics\":{\"Connect\":{}}}",
		  "D.IoTDetails.Topics.Connect: missing, Policies.Connect needs at least one topic", 0 },
		{ "{\"ThingName\":\"A\",\"Policies\":{\"Connect\":true},\"Topics\":{\"Connect\":\"c\"}}",
		  "D.IoTDetails.Topics.Connect: expected an object of topic strings", 0 },
		{ "{\"ThingName\":\"A\",\"Policies\":{\"Connect\":true},"
		  "\"Topics\":{\"Connect\":{\"Name1\":3}}}",
		  "D.IoTDetails.Topics.Connect.Name1: expected a string", 0 },
		{ "{\"ThingName\":\"A\",\"Policies\":{\"Connect\":true},"
		  "\"Topics\":{\"Connect\":{\"Name1\":\"\"}}}", "D.IoTDetails.Topics.Connect.Name1: empty",
		  0 },
		{ "{\"ThingName\":\"A\",\"Policies\":{\"Connect\":true},"
		  "\"Topics\":{\"Connect\":[\"a\",\"b\\n\"]}}",
		  "D.IoTDetails.Topics.Connect[1]: contains a control character", 0 },
		{ "{\"ThingName\":\"A\",\"Policies\":{\"Connect\":true},"
		  "\"Topics\":{\"Connect\":[\"a\\u0000b\"]}}",
		  "D.IoTDetails.Topics.Connect[0]: contains a control character", 0 },
		{ "{\"ThingName\":\"A\",\"Topics\":7}", "D.IoTDetails.Topics: expected an object", 0 },
	};
	struct est_profile p;
	struct est_error e;
	json_error_t je;
	json_t *j;
	size_t i;
	int rc;

	for (i = 0; i < N(cases); i++) {
		j = json_loads(cases[i].json, JSON_ALLOW_NUL, &je);
		rc = est_profile_from_iotdetails(j, "D.IoTDetails", &p, &e);
		if (cases[i].error == NULL)
			tap_ok(rc == 0 && p.npermissions == cases[i].nperm && p.version == 1,
			       "IoTDetails %s gives %zu permissions", cases[i].json, cases[i].nperm);
		else
			tap_ok(rc == -EST_EDATA && strcmp(e.msg, cases[i].error) == 0 &&
			       p.thing_name == NULL, "IoTDetails %s: %s", cases[i].json,
			       rc == 0 ? "accepted" : e.msg);
		if (rc == 0)
			est_profile_free(&p);
		json_decref(j);
	}
}

static void
test_iotdetails_order_and_warnings(void)
{
	static const char json[] = "{\"ThingName\":\"B\",\"Colour\":1,"
		"\"Policies\":{\"Subscribe\":false,\"publish\":true,\"Connect\":true,\"Receive\":null},"
		"\"Topics\":{\"Connect\":{\"Z\":\"client/B\",\"A\":\"client/B2\"},"
		"\"Subscribe\":{\"N\":\"t/s\"},\"Receive\":{\"N\":\"t/r\"}}}";
	static const char *want[] = {
		"unknown key I.Colour",
		"unknown key I.Policies.publish (did you mean Publish?)",
		"I.Topics.Receive: ignored, Policies.Receive is null",
	};
	struct est_profile p;
	struct est_error e;
	char **w = NULL;
	size_t n = 0, i;
	json_t *j = json_loads(json, 0, NULL);
	int ok;

	ok = est_profile_from_iotdetails(j, "I", &p, &e) == 0;
	tap_ok(ok && p.npermissions == 2 && p.permissions[0].action == EST_ACT_CONNECT &&
	       p.permissions[1].action == EST_ACT_SUBSCRIBE &&
	       p.permissions[1].effect == EST_EFFECT_DENY,
	       "permissions come out in canonical action order");
	tap_ok(ok && p.permissions[0].nresources == 2 &&
	       strcmp(p.permissions[0].resources[0], "client/B") == 0 &&
	       strcmp(p.permissions[0].resources[1], "client/B2") == 0,
	       "topics keep the order of the file");
	if (ok)
		est_profile_free(&p);
	ok = est_profile_iotdetails_warnings(j, "I", &w, &n) == 0 && n == N(want);
	for (i = 0; ok && i < n; i++)
		ok = strcmp(w[i], want[i]) == 0;
	tap_ok(ok, "unknown keys and ignored topics are reported as warnings");
	for (i = 0; i < n; i++) {
		if (!ok)
			tap_diag("warning: %s", w[i]);
		free(w[i]);
	}
	free(w);
	json_decref(j);
}

static void
test_to_json(void)
{
	struct est_profile p = { 1, "DeviceAlpha", 3, perms_sorted };
	json_t *j = est_profile_to_json(&p);
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	tap_ok(s != NULL && strcmp(s, "{\"version\":1,\"thing_name\":\"DeviceAlpha\","
				   "\"permissions\":[{\"action\":\"connect\",\"effect\":\"allow\","
				   "\"resources\":[\"client/DeviceAlpha\"]},{\"action\":\"publish\","
				   "\"effect\":\"allow\",\"resources\":[\"topic/DeviceAlpha/telemetry\","
				   "\"topic/DeviceAlpha/status\"]},{\"action\":\"subscribe\","
				   "\"effect\":\"deny\",\"resources\":[\"topic/DeviceAlpha/admin\"]}]}")
	       == 0, "to_json gives the documented shape");
	free(s);
	json_decref(j);
}

static void
test_legacy(void)
{
	static const struct {
		const char *json;
		const char *error;
	} cases[] = {
		{ "{\"ThingName\":\"L\",\"Policies\":{\"Connect\":true},"
		  "\"Topics\":{\"Connect\":{\"Name1\":\"client/L\"}}}", NULL },
		{ "{\"IoTDetails\":{\"ThingName\":\"L\"}}", NULL },
		{ "{\"ThingName\":\"L\",", "legacy profile: invalid JSON at 1:17: "
		  "string or '}' expected near end of file" },
		{ "{\"ThingName\":\"../x\"}", "legacy profile: IoTDetails.ThingName: '../x' is not a "
		  "valid ThingName (1-128 characters of A-Z a-z 0-9 : _ -)" },
		{ "", "legacy profile: empty" },
	};
	struct est_profile p;
	struct est_error e;
	size_t i;
	int rc;

	for (i = 0; i < N(cases); i++) {
		rc = est_profile_from_legacy((const unsigned char *)cases[i].json,
					     strlen(cases[i].json), &p, &e);
		if (cases[i].error == NULL)
			tap_ok(rc == 0 && strcmp(p.thing_name, "L") == 0, "legacy %s is read",
			       cases[i].json);
		else
			tap_ok(rc == -EST_EDATA && strcmp(e.msg, cases[i].error) == 0,
			       "legacy %s: %s", cases[i].json, rc == 0 ? "accepted" : e.msg);
		if (rc == 0)
			est_profile_free(&p);
	}
}

/* ---- the client config ---- */

static int
write_tmp(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fputs(text, f);
	return fclose(f);
}

#define DEV(name) "{\"IoTDetails\":{\"ThingName\":\"" name "\"}}"

static void
test_config_errors(void)
{
	static const struct {
		const char *text;
		const char *error;
	} cases[] = {
		{ "{\"Devices\":[" DEV("A") "]", "cfg.json:1:45: '}' expected near end of file" },
		{ "{\n  // a comment\n  \"Devices\": []}",
		  "cfg.json:2:3: comments are not allowed in JSON" },
		{ "{\"Devices\":[" DEV("A") "], /* c */ }",
		  "cfg.json:1:48: comments are not allowed in JSON" },
		{ "{\"Devices\":[],\"Devices\":[]}",
		  "cfg.json:1:23: duplicate object key near '\"Devices\"'" },
		{ "[]", "cfg.json: expected a JSON object at the top" },
		{ "{}", "cfg.json: Devices: missing" },
		{ "{\"Devices\":[]}", "cfg.json: Devices: expected a non-empty array" },
		{ "{\"Devices\":{}}", "cfg.json: Devices: expected a non-empty array" },
		{ "{\"Devices\":[7]}", "cfg.json: Devices[0]: expected an object" },
		{ "{\"Devices\":[{}]}", "cfg.json: Devices[0].IoTDetails: missing" },
		{ "{\"Devices\":[" DEV("A") "," DEV("B") "," DEV("a") "]}",
		  "cfg.json: Devices[2].IoTDetails.ThingName: 'a' is already used by Devices[0]" },
		{ "{\"Devices\":[" DEV("A") ",{\"IoTDetails\":{\"ThingName\":\"B\","
		  "\"Policies\":{\"Publish\":\"true\"}}}]}",
		  "cfg.json: Devices[1].IoTDetails.Policies.Publish: expected true, false or null" },
		{ "{\"ESTDetails\":[],\"Devices\":[" DEV("A") "]}",
		  "cfg.json: ESTDetails: expected an object" },
		{ "{\"ESTDetails\":{\"ESTAPIURL\":\"http://x\"},\"Devices\":[" DEV("A") "]}",
		  "cfg.json: ESTDetails.ESTAPIURL: expected an https:// URL" },
		{ "{\"ESTDetails\":{\"Region\":null},\"Devices\":[" DEV("A") "]}",
		  "cfg.json: ESTDetails.Region: expected a non-empty string" },
		{ "{\"ESTDetails\":{\"KV_Name\":\"a b\"},\"Devices\":[" DEV("A") "]}",
		  "cfg.json: ESTDetails.KV_Name: expected 1-128 printable characters without spaces" },
		{ "{\"ESTDetails\":{\"Label\":\"..\"},\"Devices\":[" DEV("A") "]}",
		  "cfg.json: ESTDetails.Label: expected 1-64 characters of A-Z a-z 0-9 . _ ~ -" },
		{ "{\"ESTDetails\":{\"KeyType\":\"dsa\"},\"Devices\":[" DEV("A") "]}",
		  "cfg.json: ESTDetails.KeyType: unknown key type 'dsa' (expected ec-p256, ec-p384, "
		  "ed25519, rsa2048, rsa3072, rsa4096 or aes256)" },
		{ "{\"ESTDetails\":{\"KeyType\":\"aes256\"},\"Devices\":[" DEV("A") "]}",
		  "cfg.json: ESTDetails.KeyType: 'aes256' is not a device key type" },
	};
	struct est_client_config cfg;
	struct est_error e;
	size_t i;
	int rc;

	for (i = 0; i < N(cases); i++) {
		if (write_tmp("cfg.json", cases[i].text) < 0) {
			tap_ok(0, "write cfg.json");
			continue;
		}
		rc = est_config_load("cfg.json", &cfg, &e);
		tap_ok(rc == -EST_EDATA && strcmp(e.msg, cases[i].error) == 0 && cfg.path == NULL,
		       "config %s: %s", cases[i].error, rc == 0 ? "accepted" : e.msg);
		if (rc == 0)
			est_config_free(&cfg);
	}
	rc = est_config_load("no-such-dir/cfg.json", &cfg, &e);
	tap_ok(rc == -EST_ENOINPUT, "a missing config file is EST_ENOINPUT: %s", e.msg);
	unlink("cfg.json");
}

static void
test_config_ok(void)
{
	static const char text[] =
		"{\"ESTDetails\":{\"ESTAPIURL\":\"https://127.0.0.1:8443\",\"Region\":\"eu-west-2\","
		"\"KV_Name\":\"fleet-key-1\",\"CACert\":\"ca.pem\",\"EnrollmentKeyFile\":\"/k/f.key\","
		"\"Label\":\"fleet\",\"KeyType\":\"ed25519\",\"OutDir\":\"out\",\"Colour\":\"red\"},"
		"\"Extra\":1,\"Devices\":[{\"IoTDetails\":{\"ThingName\":\"A\"},\"Note\":\"x\"}]}";
	static const char *want[] = { "unknown key Extra", "unknown key ESTDetails.Colour",
				      "unknown key Devices[0].Note" };
	struct est_client_config cfg;
	char path[64], dir[] = "cfgdir.XXXXXX";
	struct est_error e;
	size_t i;
	int ok;

	if (mkdtemp(dir) == NULL) {
		tap_ok(0, "mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/c.json", dir);
	write_tmp(path, text);
	ok = est_config_load(path, &cfg, &e) == 0;
	tap_ok(ok, "a config with every ESTDetails key loads%s%s", ok ? "" : ": ", ok ? "" : e.msg);
	if (!ok)
		goto out;
	tap_ok(strcmp(cfg.url, "https://127.0.0.1:8443") == 0 &&
	       strcmp(cfg.region, "eu-west-2") == 0 && strcmp(cfg.kv_name, "fleet-key-1") == 0 &&
	       strcmp(cfg.label, "fleet") == 0 && strcmp(cfg.key_type, "ed25519") == 0,
	       "ESTDetails strings are kept");
	snprintf(path, sizeof(path), "%s/ca.pem", dir);
	tap_ok(strcmp(cfg.cacert, path) == 0 && strcmp(cfg.enrollment_key_file, "/k/f.key") == 0,
	       "relative paths are resolved against the config's directory, absolute kept");
	ok = cfg.nwarnings == N(want);
	for (i = 0; ok && i < N(want); i++)
		ok = strcmp(cfg.warnings[i], want[i]) == 0;
	tap_ok(ok, "unknown keys at every level become warnings (%zu)", cfg.nwarnings);
	tap_ok(est_config_device(&cfg, "A") != NULL && est_config_device(&cfg, "a") == NULL,
	       "devices are found by exact ThingName");
	est_config_free(&cfg);
out:
	unlink(path);
	snprintf(path, sizeof(path), "%s/c.json", dir);
	unlink(path);
	rmdir(dir);
}

static void
test_example_config(void)
{
	struct est_client_config cfg;
	const struct est_device *d;
	struct est_error e;
	char path[4096];
	int ok;

	snprintf(path, sizeof(path), "%s/examples/client_config.json", srcdir);
	ok = est_config_load(path, &cfg, &e) == 0;
	tap_ok(ok && cfg.ndevices == 2 && cfg.nwarnings == 0, "the example config loads cleanly");
	if (!ok)
		return;
	d = est_config_device(&cfg, "DeviceBeta");
	tap_ok(d != NULL && d->profile.npermissions == 4 &&
	       d->profile.permissions[2].action == EST_ACT_RECEIVE &&
	       d->profile.permissions[2].nresources == 2 &&
	       strcmp(d->profile.permissions[2].resources[1], "topic/DeviceBeta/ota") == 0 &&
	       d->profile.permissions[3].effect == EST_EFFECT_DENY,
	       "DeviceBeta has its four permissions with their topics");
	est_config_free(&cfg);
}

/* ---- CSRs ---- */

static void
test_csr_key_types(void)
{
	static const enum est_key_type types[] = { EST_KEY_EC_P256, EST_KEY_EC_P384,
						   EST_KEY_ED25519, EST_KEY_RSA2048 };
	static const char *const sans[] = { "dns:device.example.com", "uri:urn:uuid:1234",
					    "ip:192.0.2.1", "ip:2001:db8::1" };
	struct est_profile p = { 1, "DeviceAlpha", 3, perms_sorted }, back;
	gnutls_x509_privkey_t x;
	gnutls_privkey_t key;
	gnutls_x509_crq_t crq, crq2;
	gnutls_datum_t pem, der, b64;
	struct est_error e;
	size_t i;
	int ok, found;

	for (i = 0; i < N(types); i++) {
		const char *t = est_key_type_names[types[i]];

		found = 0;
		if (est_key_generate(types[i], &x, &e) < 0 || gnutls_privkey_init(&key) < 0 ||
		    gnutls_privkey_import_x509(key, x, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE) < 0) {
			tap_ok(0, "%s: key", t);
			continue;
		}
		ok = est_csr_build(key, &p, sans, N(sans), "s3cret", &crq, &e) == 0;
		tap_ok(ok, "%s: build a CSR%s%s", t, ok ? "" : ": ", ok ? "" : e.msg);
		if (!ok) {
			gnutls_privkey_deinit(key);
			continue;
		}
		tap_ok(est_csr_verify(crq, &e) == 0, "%s: its signature verifies", t);
		ok = est_csr_export(crq, 0, &pem, &e) == 0 && est_csr_export(crq, 1, &der, &e) == 0 &&
		     est_b64_encode(der.data, der.size, 1, &b64, &e) == 0;
		tap_ok(ok && est_csr_parse(pem.data, pem.size, "pem", &crq2, &e) == 0 &&
		       est_csr_profile(crq2, &back, &found, &e) == 0 && found &&
		       profile_equal(&p, &back), "%s: PEM parses back with its profile%s%s", t,
		       found ? "" : ": ", found ? "" : e.msg);
		if (found)
			est_profile_free(&back);
		gnutls_x509_crq_deinit(crq2);
		tap_ok(est_csr_parse(der.data, der.size, "der", &crq2, &e) == 0 &&
		       est_csr_verify(crq2, &e) == 0, "%s: DER parses back and verifies", t);
		gnutls_x509_crq_deinit(crq2);
		tap_ok(est_csr_parse(b64.data, b64.size, "b64", &crq2, &e) == 0, "%s: base64 parses",
		       t);
		gnutls_x509_crq_deinit(crq2);
		der.data[der.size - 5] ^= 0x01;     /* inside the signature */
		tap_ok(est_csr_parse(der.data, der.size, "der", &crq2, &e) < 0 ||
		       est_csr_verify(crq2, &e) == -EST_EDATA, "%s: a flipped signature bit fails", t);
		gnutls_x509_crq_deinit(crq2);
		gnutls_free(pem.data);
		gnutls_free(der.data);
		gnutls_free(b64.data);
		gnutls_x509_crq_deinit(crq);
		gnutls_privkey_deinit(key);
	}
}

static int
make_key(gnutls_privkey_t *key)
{
	gnutls_x509_privkey_t x;

	return est_key_generate(EST_KEY_EC_P256, &x, NULL) == 0 && gnutls_privkey_init(key) == 0 &&
	       gnutls_privkey_import_x509(*key, x, GNUTLS_PRIVKEY_IMPORT_AUTO_RELEASE) == 0;
}

static void
test_csr_sans(void)
{
	static const struct {
		const char *san;
		int ok;
	} cases[] = {
		{ "dns:a.example", 1 }, { "dns:x", 1 }, { "dns:xn--bcher-kva.example", 1 },
		{ "dns:*.example", 0 }, { "dns:-a.example", 0 }, { "dns:a-.example", 0 },
		{ "dns:a..example", 0 }, { "dns:", 0 }, { "dns:a.example.", 0 }, { "dns:a b", 0 },
		{ "uri:https://device.example/x", 1 }, { "uri:urn:dev:1", 1 }, { "uri:nocolon", 0 },
		{ "uri:1http://x", 0 }, { "uri:http://a b", 0 }, { "uri:x:", 0 },
		{ "ip:10.0.0.1", 1 }, { "ip:::1", 1 }, { "ip:fe80::1:2", 1 }, { "ip:10.0.0.256", 0 },
		{ "ip:10.0.0", 0 }, { "ip:fe80::1%eth0", 0 }, { "ip:", 0 },
		{ "email:a@b", 0 }, { "a.example", 0 }, { "DNS:a.example", 0 },
	};
	struct est_profile p = { 1, "T", 0, NULL };
	gnutls_privkey_t key;
	gnutls_x509_crq_t crq;
	struct est_error e;
	size_t i;
	int rc;

	if (!make_key(&key)) {
		tap_ok(0, "make a key");
		return;
	}
	for (i = 0; i < N(cases); i++) {
		const char *one[] = { cases[i].san };

		rc = est_csr_build(key, &p, one, 1, NULL, &crq, &e);
		tap_ok(cases[i].ok ? rc == 0 : rc == -EST_EUSAGE && crq == NULL, "SAN %s is %s%s%s",
		       cases[i].san, cases[i].ok ? "accepted" : "refused", rc ? ": " : "",
		       rc ? e.msg : "");
		gnutls_x509_crq_deinit(crq);
	}
	rc = est_csr_build(key, &p, NULL, 0, "two\nlines", &crq, &e);
	tap_ok(rc == -EST_EDATA, "a challenge password with a newline is refused");
	gnutls_privkey_deinit(key);
}

static void
test_csr_parse_refuses(void)
{
	struct est_profile p = { 1, "T", 0, NULL };
	gnutls_privkey_t key;
	gnutls_x509_crq_t crq = NULL, crq2;
	gnutls_datum_t der = { NULL, 0 };
	gnutls_pubkey_t pub = NULL;
	unsigned char *tail = NULL;
	struct est_error e;
	int found = 1;

	if (!make_key(&key) || est_csr_build(key, &p, NULL, 0, NULL, &crq, &e) < 0 ||
	    est_csr_export(crq, 1, &der, &e) < 0 || (tail = malloc(der.size + 1)) == NULL) {
		tap_ok(0, "make a CSR");
		goto out;
	}
	memcpy(tail, der.data, der.size);
	tail[der.size] = 0;
	tap_ok(est_csr_parse(tail, der.size + 1, "x.der", &crq2, &e) == -EST_EDATA &&
	       strcmp(e.msg, "x.der: not a certificate request (PEM, DER or base64 of DER)") == 0,
	       "a DER CSR with a trailing byte is refused");
	tap_ok(est_csr_parse(der.data, der.size - 1, "x.der", &crq2, &e) == -EST_EDATA,
	       "a truncated DER CSR is refused");
	tap_ok(est_csr_parse((const unsigned char *)"hello world", 11, "x", &crq2, &e) ==
	       -EST_EDATA, "text that is not base64 is refused");
	tap_ok(est_csr_parse((const unsigned char *)"", 0, "x", &crq2, &e) == -EST_EDATA,
	       "an empty CSR is refused");
	gnutls_x509_crq_deinit(crq);
	crq = NULL;
	/* A plain request made by GnuTLS itself, with a SAN but no profile. */
	found = 1;
	tap_ok(gnutls_x509_crq_init(&crq) == 0 && gnutls_pubkey_init(&pub) == 0 &&
	       gnutls_pubkey_import_privkey(pub, key, 0, 0) == 0 &&
	       gnutls_x509_crq_set_pubkey(crq, pub) == 0 &&
	       gnutls_x509_crq_set_dn(crq, "CN=plain", NULL) == 0 &&
	       gnutls_x509_crq_set_subject_alt_name(crq, GNUTLS_SAN_DNSNAME, "a.example", 9,
						    GNUTLS_FSAN_APPEND) == 0 &&
	       gnutls_x509_crq_privkey_sign(crq, key, GNUTLS_DIG_SHA256, 0) == 0 &&
	       est_csr_profile(crq, &p, &found, &e) == 0 && found == 0,
	       "a CSR without a profile reports none found");
out:
	gnutls_pubkey_deinit(pub);
	free(tail);
	gnutls_free(der.data);
	gnutls_x509_crq_deinit(crq);
	gnutls_privkey_deinit(key);
}

/* Other parts (the CA) read SANs through est_csr_extension, because GnuTLS
 * cannot list the extensions of a request holding the profile OID. */
static void
test_csr_extension(void)
{
	static const char *const sans[] = { "dns:a.example", "ip:10.0.0.1" };
	struct est_profile p = { 1, "T", 0, NULL };
	gnutls_subject_alt_names_t names = NULL;
	gnutls_datum_t v = { NULL, 0 }, name;
	gnutls_x509_crq_t crq = NULL;
	gnutls_privkey_t key = NULL;
	unsigned type;
	struct est_error e;
	int crit = 1, ok;

	ok = make_key(&key) && est_csr_build(key, &p, sans, 2, NULL, &crq, &e) == 0;
	tap_ok(ok && est_csr_extension(crq, "2.5.29.17", &v, &crit, &e) == 1 && crit == 0 &&
	       gnutls_subject_alt_names_init(&names) == 0 &&
	       gnutls_x509_ext_import_subject_alt_names(&v, names, 0) == 0 &&
	       gnutls_subject_alt_names_get(names, 0, &type, &name, NULL) == 0 &&
	       type == GNUTLS_SAN_DNSNAME && name.size == 9 && memcmp(name.data, "a.example", 9) == 0,
	       "est_csr_extension gives the SAN extension of a CSR holding the profile");
	gnutls_free(v.data);
	v.data = NULL;
	tap_ok(ok && est_csr_extension(crq, "2.5.29.19", &v, NULL, &e) == 0 && v.data == NULL,
	       "est_csr_extension reports an absent extension as 0");
	if (ok && gnutls_x509_crq_get_extension_info(crq, 0, NULL, &(size_t){ 0 }, NULL) >= 0)
		tap_diag("GnuTLS now lists these extensions itself");
	if (names != NULL)
		gnutls_subject_alt_names_deinit(names);
	gnutls_x509_crq_deinit(crq);
	gnutls_privkey_deinit(key);
}

/* tests/data/legacy.csr was made by OpenSSL with the seed's raw-JSON extension:
 * openssl req -new -key K -subj /CN=LegacyThing
 *   -addext "0.5.100.101.105.116.115=DER:<hex of the JSON>" */
static void
test_csr_legacy(void)
{
	gnutls_datum_t d = { NULL, 0 };
	gnutls_x509_crq_t crq = NULL;
	struct est_profile p;
	struct est_error e;
	char path[4096];
	int found = 0, ok;

	snprintf(path, sizeof(path), "%s/tests/data/legacy.csr", srcdir);
	ok = est_file_read(path, 1u << 20, &d, &e) == 0 &&
	     est_csr_parse(d.data, d.size, path, &crq, &e) == 0 && est_csr_verify(crq, &e) == 0 &&
	     est_csr_profile(crq, &p, &found, &e) == 0 && found;
	tap_ok(ok, "an OpenSSL CSR with the seed's legacy extension is read%s%s", ok ? "" : ": ",
	       ok ? "" : e.msg);
	if (ok) {
		tap_ok(strcmp(p.thing_name, "LegacyThing") == 0 && p.npermissions == 2 &&
		       p.permissions[0].effect == EST_EFFECT_ALLOW &&
		       strcmp(p.permissions[0].resources[0], "client/LegacyThing") == 0 &&
		       p.permissions[1].action == EST_ACT_PUBLISH &&
		       p.permissions[1].effect == EST_EFFECT_DENY &&
		       p.permissions[1].nresources == 2,
		       "the legacy profile has its ThingName and permissions");
		est_profile_free(&p);
	}
	gnutls_x509_crq_deinit(crq);
	gnutls_free(d.data);
}

int
main(void)
{
	char dir[] = "/tmp/test_profile.XXXXXX";

	static char top[4096];

	if (realpath(getenv("SRCDIR") ? getenv("SRCDIR") : ".", top) == NULL)
		return 99;
	srcdir = top;
	if (mkdtemp(dir) == NULL || chdir(dir) < 0)
		return 99;
	test_thing_names();
	test_round_trip();
	test_known_answer();
	test_encode_refuses();
	test_decode_malformed_structure();
	test_decode_malformed_encoding();
	test_iotdetails();
	test_iotdetails_order_and_warnings();
	test_to_json();
	test_legacy();
	test_config_errors();
	test_config_ok();
	test_example_config();
	test_csr_key_types();
	test_csr_sans();
	test_csr_parse_refuses();
	test_csr_extension();
	test_csr_legacy();
	if (chdir("/") == 0)
		rmdir(dir);
	return tap_done();
}
