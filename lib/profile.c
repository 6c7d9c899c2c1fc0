#include "config.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libtasn1.h>

#include "profile.h"

extern const asn1_static_node profile_asn1_tab[];

const unsigned char est_profile_oid_der[EST_PROFILE_OID_DER_LEN] = {
	0x06, 0x14, 0x69, 0x83, 0xf8, 0xaa, 0xb0, 0xbc, 0xb5, 0xa2, 0xba, 0xa6,
	0xe5, 0x86, 0xca, 0xd7, 0xc9, 0xac, 0x8e, 0xa4, 0xa2, 0x28,
};

const char *const est_action_names[EST_ACT__MAX] = {
	[EST_ACT_CONNECT] = "connect",
	[EST_ACT_PUBLISH] = "publish",
	[EST_ACT_RECEIVE] = "receive",
	[EST_ACT_SUBSCRIBE] = "subscribe",
};

const char *const est_action_config_names[EST_ACT__MAX] = {
	[EST_ACT_CONNECT] = "Connect",
	[EST_ACT_PUBLISH] = "Publish",
	[EST_ACT_RECEIVE] = "Receive",
	[EST_ACT_SUBSCRIBE] = "Subscribe",
};

const char *const est_effect_names[EST_EFFECT__MAX] = {
	[EST_EFFECT_ALLOW] = "allow",
	[EST_EFFECT_DENY] = "deny",
};

/* The parsed module is read-only once built, so every thread shares one. */
static asn1_node defs;
static int defs_rc = ASN1_SUCCESS;
static pthread_once_t defs_once = PTHREAD_ONCE_INIT;

static void
defs_init(void)
{
	defs_rc = asn1_array2tree(profile_asn1_tab, &defs, NULL);
}

static int
new_profile_node(asn1_node *node, struct est_error *e)
{
	int rc;

	*node = NULL;
	pthread_once(&defs_once, defs_init);
	if (defs_rc != ASN1_SUCCESS)
		return est_fail(e, EST_EINTERNAL, "device profile module: %s",
				asn1_strerror(defs_rc));
	rc = asn1_create_element(defs, "EstProfile.DeviceProfile", node);
	if (rc != ASN1_SUCCESS)
		return est_fail(e, EST_EINTERNAL, "device profile: %s", asn1_strerror(rc));
	return 0;
}

bool
est_thing_name_valid(const char *name)
{
	size_t n;

	if (name == NULL)
		return false;
	n = strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789:_-");
	return n >= 1 && n <= EST_THING_NAME_MAX && name[n] == '\0';
}

static int
check_resource(const char *r, size_t len, struct est_error *e)
{
	json_t *utf8;
	size_t i;

	if (len == 0)
		return est_fail(e, EST_EDATA, "empty");
	if (len > EST_PROFILE_MAX_RESOURCE_LEN)
		return est_fail(e, EST_EDATA, "longer than %d bytes", EST_PROFILE_MAX_RESOURCE_LEN);
	for (i = 0; i < len; i++) {
		/* No control characters: resources end up in IAM policies and logs. */
		if ((unsigned char)r[i] < 0x20 || r[i] == 0x7f)
			return est_fail(e, EST_EDATA, "contains a control character");
	}
	/* jansson validates UTF-8 when it makes a string; DER gives no such promise. */
	if ((utf8 = json_stringn(r, len)) == NULL)
		return est_fail(e, EST_EDATA, "not valid UTF-8");
	json_decref(utf8);
	return 0;
}

/* Refuse what no encoder may emit: bad names, repeated or unknown actions,
 * resources beyond the caps. Shared by encode and decode. */
static int
check_profile(const struct est_profile *p, struct est_error *e)
{
	const struct est_permission *perm;
	unsigned seen = 0;
	size_t i, j;

	if (p->version != 1)
		return est_fail(e, EST_EDATA, "device profile: version %ld is not supported "
				"(expected 1)", p->version);
	if (!est_thing_name_valid(p->thing_name))
		return est_fail(e, EST_EDATA, "device profile: thingName is not a valid ThingName "
				"(1-128 characters of A-Z a-z 0-9 : _ -)");
	if (p->npermissions > EST_ACT__MAX)
		return est_fail(e, EST_EDATA, "device profile: more than one permission per action");
	for (i = 0; i < p->npermissions; i++) {
		perm = &p->permissions[i];
		if ((unsigned)perm->action >= EST_ACT__MAX || (unsigned)perm->effect >= EST_EFFECT__MAX)
			return est_fail(e, EST_EDATA, "device profile: permissions[%zu]: unknown "
					"action or effect", i);
		if (seen & (1u << perm->action))
			return est_fail(e, EST_EDATA, "device profile: permissions[%zu]: %s "
					"appears twice", i, est_action_names[perm->action]);
		seen |= 1u << perm->action;
		if (perm->nresources > EST_PROFILE_MAX_RESOURCES)
			return est_fail(e, EST_EDATA, "device profile: permissions[%zu]: more "
					"than %d resources", i, EST_PROFILE_MAX_RESOURCES);
		for (j = 0; j < perm->nresources; j++) {
			if (check_resource(perm->resources[j],
						       strlen(perm->resources[j]), e) < 0) {
				est_error_prefix(e, "device profile: permissions[%zu].resources[%zu]",
						 i, j);
				return -EST_EDATA;
			}
		}
	}
	return 0;
}

static const struct est_permission *
find_action(const struct est_profile *p, enum est_action a)
{
	size_t i;

	for (i = 0; i < p->npermissions; i++)
		if (p->permissions[i].action == a)
			return &p->permissions[i];
	return NULL;
}

static int
write_permission(asn1_node node, const struct est_permission *perm)
{
	char num[4];
	size_t j;
	int rc;

	if ((rc = asn1_write_value(node, "permissions", "NEW", 1)) != ASN1_SUCCESS)
		return rc;
	snprintf(num, sizeof(num), "%d", (int)perm->action);
	if ((rc = asn1_write_value(node, "permissions.?LAST.action", num, 0)) != ASN1_SUCCESS)
		return rc;
	snprintf(num, sizeof(num), "%d", (int)perm->effect);
	if ((rc = asn1_write_value(node, "permissions.?LAST.effect", num, 0)) != ASN1_SUCCESS)
		return rc;
	/* An empty SEQUENCE OF still has to exist in the tree to be encoded. */
	if ((rc = asn1_write_value(node, "permissions.?LAST.resources", NULL, 0)) != ASN1_SUCCESS)
		return rc;
	for (j = 0; j < perm->nresources; j++) {
		rc = asn1_write_value(node, "permissions.?LAST.resources", "NEW", 1);
		if (rc == ASN1_SUCCESS)
			rc = asn1_write_value(node, "permissions.?LAST.resources.?LAST",
					      perm->resources[j], (int)strlen(perm->resources[j]));
		if (rc != ASN1_SUCCESS)
			return rc;
	}
	return ASN1_SUCCESS;
}

/* Permissions are written in action order whatever their order in P, so
 * equal profiles always have equal DER. */
static int
write_profile(asn1_node node, const struct est_profile *p)
{
	const struct est_permission *perm;
	int rc, a;

	if ((rc = asn1_write_value(node, "version", "1", 0)) != ASN1_SUCCESS ||
	    (rc = asn1_write_value(node, "thingName", p->thing_name,
				   (int)strlen(p->thing_name))) != ASN1_SUCCESS ||
	    (rc = asn1_write_value(node, "permissions", NULL, 0)) != ASN1_SUCCESS)
		return rc;
	for (a = 0; a < EST_ACT__MAX; a++) {
		if ((perm = find_action(p, (enum est_action)a)) == NULL)
			continue;
		if ((rc = write_permission(node, perm)) != ASN1_SUCCESS)
			return rc;
	}
	return ASN1_SUCCESS;
}

int
est_profile_encode(const struct est_profile *p, gnutls_datum_t *out, struct est_error *e)
{
	asn1_node node = NULL;
	int rc, len = 0;

	out->data = NULL;
	out->size = 0;
	if ((rc = check_profile(p, e)) < 0)
		return rc;
	if ((rc = new_profile_node(&node, e)) < 0)
		return rc;
	if ((rc = write_profile(node, p)) != ASN1_SUCCESS)
		goto asn1_error;
	rc = asn1_der_coding(node, "", NULL, &len, NULL);
	if (rc != ASN1_MEM_ERROR)
		goto asn1_error;
	if ((out->data = gnutls_malloc((size_t)len)) == NULL) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	if ((rc = asn1_der_coding(node, "", out->data, &len, NULL)) != ASN1_SUCCESS)
		goto asn1_error;
	out->size = (unsigned)len;
	rc = 0;
	goto out;
asn1_error:
	gnutls_free(out->data);
	out->data = NULL;
	rc = est_fail(e, EST_EINTERNAL, "encoding the device profile: %s", asn1_strerror(rc));
out:
	asn1_delete_structure(&node);
	return rc;
}

/* A small two's complement INTEGER or ENUMERATED; anything wider than a
 * long is refused rather than truncated. */
static int
read_int(asn1_node node, const char *name, long *v)
{
	unsigned char buf[sizeof(long)];
	int len = sizeof(buf), i, rc;
	unsigned long u;

	if ((rc = asn1_read_value(node, name, buf, &len)) != ASN1_SUCCESS)
		return -1;
	if (len < 1)
		return -1;
	u = buf[0] & 0x80 ? ~0UL : 0;
	for (i = 0; i < len; i++)
		u = u << 8 | buf[i];
	*v = (long)u;
	return 0;
}

/* A UTF8String of at most MAX bytes, malloc'd and NUL-terminated; refuses
 * embedded NULs, which would silently shorten the C string. */
static int
read_string(asn1_node node, const char *name, size_t max, char **out)
{
	char *buf;
	int len = (int)max + 1, rc;

	*out = NULL;
	if ((buf = malloc(max + 2)) == NULL)
		return -2;
	rc = asn1_read_value(node, name, buf, &len);
	if (rc == ASN1_SUCCESS && (size_t)len > max)
		rc = ASN1_MEM_ERROR;
	if (rc != ASN1_SUCCESS || len < 0 || memchr(buf, '\0', (size_t)len) != NULL) {
		free(buf);
		return rc == ASN1_MEM_ERROR ? -3 : -1;
	}
	buf[len] = '\0';
	*out = buf;
	return 0;
}

static int
count_elements(asn1_node node, const char *name, int *n)
{
	int rc = asn1_number_of_elements(node, name, n);

	if (rc == ASN1_ELEMENT_NOT_FOUND) {
		*n = 0;
		return 0;
	}
	return rc == ASN1_SUCCESS ? 0 : -1;
}

static int
read_resources(asn1_node node, size_t i, struct est_permission *perm, struct est_error *e)
{
	char path[96];
	int n, j, rc;

	snprintf(path, sizeof(path), "permissions.?%zu.resources", i + 1);
	if (count_elements(node, path, &n) < 0)
		return est_fail(e, EST_EDATA, "device profile: permissions[%zu]: bad resources", i);
	if (n > EST_PROFILE_MAX_RESOURCES)
		return est_fail(e, EST_EDATA, "device profile: permissions[%zu]: more than %d "
				"resources", i, EST_PROFILE_MAX_RESOURCES);
	if (n > 0 && (perm->resources = calloc((size_t)n, sizeof(char *))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	for (j = 0; j < n; j++) {
		snprintf(path, sizeof(path), "permissions.?%zu.resources.?%d", i + 1, j + 1);
		rc = read_string(node, path, EST_PROFILE_MAX_RESOURCE_LEN, &perm->resources[j]);
		if (rc == -2)
			return est_fail(e, EST_EINTERNAL, "out of memory");
		if (rc < 0)
			return est_fail(e, EST_EDATA, "device profile: permissions[%zu]."
					"resources[%d]: %s", i, j, rc == -3 ? "too long"
					: "not a valid string");
		perm->nresources++;
	}
	return 0;
}

static int
read_permission(asn1_node node, size_t i, struct est_permission *perm, struct est_error *e)
{
	char path[64];
	long action, effect;

	snprintf(path, sizeof(path), "permissions.?%zu.action", i + 1);
	if (read_int(node, path, &action) < 0 || action < 0 || action >= EST_ACT__MAX)
		return est_fail(e, EST_EDATA, "device profile: permissions[%zu]: unknown action", i);
	snprintf(path, sizeof(path), "permissions.?%zu.effect", i + 1);
	if (read_int(node, path, &effect) < 0 || effect < 0 || effect >= EST_EFFECT__MAX)
		return est_fail(e, EST_EDATA, "device profile: permissions[%zu]: unknown effect", i);
	perm->action = (enum est_action)action;
	perm->effect = (enum est_effect)effect;
	return read_resources(node, i, perm, e);
}

static int
read_profile(asn1_node node, struct est_profile *p, struct est_error *e)
{
	int n, rc;
	size_t i;

	if (read_int(node, "version", &p->version) < 0 || p->version != 1)
		return est_fail(e, EST_EDATA, "device profile: unsupported version (expected 1)");
	rc = read_string(node, "thingName", EST_THING_NAME_MAX, &p->thing_name);
	if (rc == -2)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	if (rc < 0 || !est_thing_name_valid(p->thing_name))
		return est_fail(e, EST_EDATA, "device profile: thingName is not a valid ThingName "
				"(1-128 characters of A-Z a-z 0-9 : _ -)");
	if (count_elements(node, "permissions", &n) < 0)
		return est_fail(e, EST_EDATA, "device profile: bad permissions");
	if (n > EST_PROFILE_MAX_PERMISSIONS)
		return est_fail(e, EST_EDATA, "device profile: more than %d permissions",
				EST_PROFILE_MAX_PERMISSIONS);
	if (n > 0 && (p->permissions = calloc((size_t)n, sizeof(*p->permissions))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	for (i = 0; i < (size_t)n; i++) {
		p->npermissions++;
		if ((rc = read_permission(node, i, &p->permissions[i], e)) < 0)
			return rc;
		if (i > 0 && p->permissions[i].action <= p->permissions[i - 1].action)
			return est_fail(e, EST_EDATA, "device profile: permissions out of order or "
					"repeated");
	}
	return check_profile(p, e);
}

/* Encoding what was decoded must give the input back: that refuses every
 * non-canonical form (padding in integers and the like) that strict DER
 * decoding lets through, so one profile has exactly one encoding. */
static int
check_canonical(const unsigned char *der, size_t len, const struct est_profile *p,
		struct est_error *e)
{
	gnutls_datum_t again = { NULL, 0 };
	int rc;

	if ((rc = est_profile_encode(p, &again, e)) < 0)
		return rc;
	rc = again.size == len && memcmp(again.data, der, len) == 0 ? 0
		: est_fail(e, EST_EDATA, "device profile: not in canonical DER form");
	gnutls_free(again.data);
	return rc;
}

int
est_profile_decode(const unsigned char *der, size_t len, struct est_profile *p,
		   struct est_error *e)
{
	char err[ASN1_MAX_ERROR_DESCRIPTION_SIZE];
	asn1_node node = NULL;
	int ilen = (int)len, rc;

	memset(p, 0, sizeof(*p));
	if (len == 0 || len > EST_PROFILE_DER_MAX)
		return est_fail(e, EST_EDATA, "device profile: %s", len == 0 ? "empty"
				: "too large");
	if ((rc = new_profile_node(&node, e)) < 0)
		return rc;
	rc = asn1_der_decoding2(&node, der, &ilen, ASN1_DECODE_FLAG_STRICT_DER, err);
	if (rc != ASN1_SUCCESS) {
		rc = est_fail(e, EST_EDATA, "device profile: malformed DER (%s)", asn1_strerror(rc));
		goto out;
	}
	if ((size_t)ilen != len) {
		rc = est_fail(e, EST_EDATA, "device profile: %zu bytes of trailing data",
			      len - (size_t)ilen);
		goto out;
	}
	if ((rc = read_profile(node, p, e)) < 0)
		goto out;
	rc = check_canonical(der, len, p, e);
out:
	asn1_delete_structure(&node);
	if (rc < 0)
		est_profile_free(p);
	return rc;
}

void
est_profile_free(struct est_profile *p)
{
	size_t i, j;

	if (p == NULL)
		return;
	for (i = 0; i < p->npermissions; i++) {
		for (j = 0; j < p->permissions[i].nresources; j++)
			free(p->permissions[i].resources[j]);
		free(p->permissions[i].resources);
	}
	free(p->permissions);
	free(p->thing_name);
	memset(p, 0, sizeof(*p));
}

json_t *
est_profile_to_json(const struct est_profile *p)
{
	json_t *root, *perms, *perm, *res;
	size_t i, j;

	root = json_object();
	perms = json_array();
	if (root == NULL || perms == NULL)
		goto fail;
	json_object_set_new(root, "version", json_integer(p->version));
	json_object_set_new(root, "thing_name", json_string(p->thing_name ? p->thing_name : ""));
	for (i = 0; i < p->npermissions; i++) {
		perm = json_object();
		res = json_array();
		if (perm == NULL || res == NULL) {
			json_decref(perm);
			json_decref(res);
			goto fail;
		}
		for (j = 0; j < p->permissions[i].nresources; j++)
			json_array_append_new(res, json_string(p->permissions[i].resources[j]));
		json_object_set_new(perm, "action", json_string(
			est_action_names[p->permissions[i].action]));
		json_object_set_new(perm, "effect", json_string(
			est_effect_names[p->permissions[i].effect]));
		json_object_set_new(perm, "resources", res);
		json_array_append_new(perms, perm);
	}
	json_object_set_new(root, "permissions", perms);
	return root;
fail:
	json_decref(root);
	json_decref(perms);
	return NULL;
}

int
est_profile_print(const struct est_profile *p, FILE *f)
{
	size_t i, j;

	fprintf(f, "profile:    %s (version %ld)%s\n", p->thing_name ? p->thing_name : "",
		p->version, p->npermissions == 0 ? ", no permissions" : "");
	for (i = 0; i < p->npermissions; i++) {
		fprintf(f, "  %-9s %-5s", est_action_names[p->permissions[i].action],
			est_effect_names[p->permissions[i].effect]);
		for (j = 0; j < p->permissions[i].nresources; j++)
			fprintf(f, " %s", p->permissions[i].resources[j]);
		fputc('\n', f);
	}
	return ferror(f) ? -EST_EIO : 0;
}

/* User data echoed in messages only when it is short printable ASCII, so a
 * hostile name cannot write escape sequences to a terminal. */
static const char *
shown(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (i >= 160 || s[i] < 0x20 || s[i] > 0x7e)
			return NULL;
	return s;
}

static int
thing_name_from(const json_t *iot, const char *where, struct est_profile *p,
		struct est_error *e)
{
	const json_t *name = json_object_get(iot, "ThingName");
	const char *s;

	if (name == NULL)
		return est_fail(e, EST_EDATA, "%s.ThingName: missing", where);
	if (!json_is_string(name))
		return est_fail(e, EST_EDATA, "%s.ThingName: expected a string", where);
	s = json_string_value(name);
	if (!est_thing_name_valid(s) || strlen(s) != json_string_length(name)) {
		if (shown(s) != NULL && *s != '\0')
			return est_fail(e, EST_EDATA, "%s.ThingName: '%s' is not a valid ThingName "
					"(1-128 characters of A-Z a-z 0-9 : _ -)", where, s);
		return est_fail(e, EST_EDATA, "%s.ThingName: not a valid ThingName "
				"(1-128 characters of A-Z a-z 0-9 : _ -)", where);
	}
	if ((p->thing_name = strdup(s)) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	return 0;
}

static int
add_resource(struct est_permission *perm, const json_t *v, struct est_error *e)
{
	int rc;

	if (!json_is_string(v))
		return est_fail(e, EST_EDATA, "expected a string");
	if ((rc = check_resource(json_string_value(v), json_string_length(v), e)) < 0)
		return rc;
	/* A NUL inside the JSON string would cut the resource short. */
	if (strlen(json_string_value(v)) != json_string_length(v))
		return est_fail(e, EST_EDATA, "contains a control character");
	if ((perm->resources[perm->nresources] = strdup(json_string_value(v))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	perm->nresources++;
	return 0;
}

/* Topics.<Action>: an object of strings as the seed writes it
 * ({"Name1": "topic/a"}, values in file order), or an array of strings. */
static int
resources_from(const json_t *t, const char *where, const char *act, struct est_permission *perm,
	       struct est_error *e)
{
	size_t n, i;
	const char *k;
	json_t *v;
	int rc = 0;

	if (t != NULL && !json_is_null(t) && !json_is_object(t) && !json_is_array(t))
		return est_fail(e, EST_EDATA, "%s.Topics.%s: expected an object of topic strings",
				where, act);
	n = t == NULL ? 0 : json_is_object(t) ? json_object_size(t) : json_is_array(t)
		? json_array_size(t) : 0;
	if (n == 0)
		return est_fail(e, EST_EDATA, "%s.Topics.%s: missing, Policies.%s needs at least "
				"one topic", where, act, act);
	if (n > EST_PROFILE_MAX_RESOURCES)
		return est_fail(e, EST_EDATA, "%s.Topics.%s: more than %d topics", where, act,
				EST_PROFILE_MAX_RESOURCES);
	if ((perm->resources = calloc(n, sizeof(char *))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	if (json_is_array(t)) {
		json_array_foreach(t, i, v) {
			if ((rc = add_resource(perm, v, e)) < 0) {
				est_error_prefix(e, "%s.Topics.%s[%zu]", where, act, i);
				return rc;
			}
		}
		return 0;
	}
	json_object_foreach((json_t *)t, k, v) {
		if ((rc = add_resource(perm, v, e)) < 0) {
			est_error_prefix(e, "%s.Topics.%s.%s", where, act, shown(k) ? k : "?");
			return rc;
		}
	}
	return 0;
}

static int
permissions_from(const json_t *iot, const char *where, struct est_profile *p,
		 struct est_error *e)
{
	const json_t *pol = json_object_get(iot, "Policies");
	const json_t *top = json_object_get(iot, "Topics");
	struct est_permission *perm;
	const json_t *v;
	int a, rc;

	if (pol != NULL && !json_is_null(pol) && !json_is_object(pol))
		return est_fail(e, EST_EDATA, "%s.Policies: expected an object", where);
	if (top != NULL && !json_is_null(top) && !json_is_object(top))
		return est_fail(e, EST_EDATA, "%s.Topics: expected an object", where);
	if ((p->permissions = calloc(EST_ACT__MAX, sizeof(*p->permissions))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	for (a = 0; a < EST_ACT__MAX; a++) {
		v = json_is_object(pol) ? json_object_get(pol, est_action_config_names[a]) : NULL;
		if (v == NULL || json_is_null(v))
			continue;
		if (!json_is_boolean(v))
			return est_fail(e, EST_EDATA, "%s.Policies.%s: expected true, false or null",
					where, est_action_config_names[a]);
		perm = &p->permissions[p->npermissions++];
		perm->action = (enum est_action)a;
		perm->effect = json_is_true(v) ? EST_EFFECT_ALLOW : EST_EFFECT_DENY;
		rc = resources_from(json_is_object(top) ? json_object_get(top,
				    est_action_config_names[a]) : NULL, where,
				    est_action_config_names[a], perm, e);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int
est_profile_from_iotdetails(const json_t *iot, const char *where, struct est_profile *p,
			    struct est_error *e)
{
	int rc;

	memset(p, 0, sizeof(*p));
	if (!json_is_object(iot))
		return est_fail(e, EST_EDATA, "%s: expected an object", where);
	p->version = 1;
	if ((rc = thing_name_from(iot, where, p, e)) < 0 ||
	    (rc = permissions_from(iot, where, p, e)) < 0)
		est_profile_free(p);
	return rc;
}

/* Keys of OBJ not among the action names, with a hint when only the case differs. */
static int
warn_actions(const json_t *obj, const char *where, const char *what, char ***w, size_t *n)
{
	const char *k;
	json_t *v;
	int a, hint;

	json_object_foreach((json_t *)obj, k, v) {
		for (a = 0, hint = -1; a < EST_ACT__MAX; a++) {
			if (strcmp(k, est_action_config_names[a]) == 0)
				break;
			if (strcasecmp(k, est_action_config_names[a]) == 0)
				hint = a;
		}
		if (a < EST_ACT__MAX)
			continue;
		if ((hint >= 0 ? est_strv_addf(w, n, "unknown key %s.%s.%s (did you mean %s?)", where, what,
				      shown(k) ? k : "?", est_action_config_names[hint])
		     : est_strv_addf(w, n, "unknown key %s.%s.%s", where, what, shown(k) ? k : "?")) < 0)
			return -EST_EINTERNAL;
	}
	return 0;
}

int
est_profile_iotdetails_warnings(const json_t *iot, const char *where, char ***warnings,
				size_t *n)
{
	const json_t *pol = json_object_get(iot, "Policies");
	const json_t *top = json_object_get(iot, "Topics");
	const json_t *pv;
	const char *k;
	json_t *v;
	int a;

	if (!json_is_object(iot))
		return 0;
	json_object_foreach((json_t *)iot, k, v) {
		if (strcmp(k, "ThingName") != 0 && strcmp(k, "Policies") != 0 &&
		    strcmp(k, "Topics") != 0 &&
		    est_strv_addf(warnings, n, "unknown key %s.%s", where, shown(k) ? k : "?") < 0)
			return -EST_EINTERNAL;
	}
	if (json_is_object(pol) && warn_actions(pol, where, "Policies", warnings, n) < 0)
		return -EST_EINTERNAL;
	if (!json_is_object(top))
		return 0;
	if (warn_actions(top, where, "Topics", warnings, n) < 0)
		return -EST_EINTERNAL;
	for (a = 0; a < EST_ACT__MAX; a++) {
		v = json_object_get(top, est_action_config_names[a]);
		pv = json_is_object(pol) ? json_object_get(pol, est_action_config_names[a]) : NULL;
		if (v != NULL && !json_is_null(v) && (pv == NULL || json_is_null(pv)) &&
		    est_strv_addf(warnings, n, "%s.Topics.%s: ignored, Policies.%s is %s", where,
			 est_action_config_names[a], est_action_config_names[a],
			 pv == NULL ? "absent" : "null") < 0)
			return -EST_EINTERNAL;
	}
	return 0;
}

int
est_profile_from_legacy(const unsigned char *json, size_t len, struct est_profile *p,
			struct est_error *e)
{
	const json_t *iot;
	json_error_t je;
	json_t *root;
	int rc;

	memset(p, 0, sizeof(*p));
	if (len == 0 || len > EST_PROFILE_DER_MAX)
		return est_fail(e, EST_EDATA, "legacy profile: %s", len == 0 ? "empty"
				: "too large");
	root = json_loadb((const char *)json, len, JSON_REJECT_DUPLICATES, &je);
	if (root == NULL)
		return est_fail(e, EST_EDATA, "legacy profile: invalid JSON at %d:%d: %s",
				je.line, je.column, je.text);
	/* The seed wrote IoTDetails itself; tolerate the device entry around it. */
	iot = root;
	if (json_object_get(root, "ThingName") == NULL &&
	    json_is_object(json_object_get(root, "IoTDetails")))
		iot = json_object_get(root, "IoTDetails");
	rc = est_profile_from_iotdetails(iot, "IoTDetails", p, e);
	if (rc < 0)
		est_error_prefix(e, "legacy profile");
	json_decref(root);
	return rc;
}
