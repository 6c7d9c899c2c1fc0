#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <gnutls/abstract.h>

#include "policy.h"

#define THING_VAR "${thingName}"
#define DAY 86400LL
/* Longest pattern and longest expanded pattern we handle. */
#define PATTERN_MAX 512

static const char *const default_patterns[EST_ACT__MAX] = {
	[EST_ACT_CONNECT] = "client/" THING_VAR,
	[EST_ACT_PUBLISH] = "topic/" THING_VAR "/*",
	[EST_ACT_RECEIVE] = "topic/" THING_VAR "/*",
	[EST_ACT_SUBSCRIBE] = "topic/" THING_VAR "/*",
};

static int
bare_wildcard(const char *s)
{
	return strcmp(s, "*") == 0 || strcmp(s, "#") == 0 || strcmp(s, "+") == 0;
}

/* Append a copy of PAT to action A's patterns; 0 or -1 (out of memory). */
static int
add_pattern(struct est_policy *p, enum est_action a, const char *pat)
{
	char **v = realloc(p->patterns[a], (p->npatterns[a] + 1) * sizeof(*v));

	if (v == NULL)
		return -1;
	p->patterns[a] = v;
	if ((v[p->npatterns[a]] = strdup(pat)) == NULL)
		return -1;
	p->npatterns[a]++;
	return 0;
}

/* Defaults for everything but the patterns. */
static void
set_scalars(struct est_policy *p)
{
	int t;

	memset(p, 0, sizeof(*p));
	p->deny_entries = 1;
	for (t = 0; t < EST_KEY_AES256; t++)
		p->key_types |= 1u << t;
	p->default_validity = 365 * DAY;
	p->max_validity = 825 * DAY;
	p->max_permissions = 8;
	p->max_resources = 32;
}

int
est_policy_default(struct est_policy *p, struct est_error *e)
{
	int a;

	set_scalars(p);
	for (a = 0; a < EST_ACT__MAX; a++) {
		if (add_pattern(p, (enum est_action)a, default_patterns[a]) < 0) {
			est_policy_free(p);
			return est_fail(e, EST_EINTERNAL, "out of memory");
		}
	}
	return 0;
}

void
est_policy_free(struct est_policy *p)
{
	size_t a, i;

	for (a = 0; a < EST_ACT__MAX; a++) {
		for (i = 0; i < p->npatterns[a]; i++)
			free(p->patterns[a][i]);
		free(p->patterns[a]);
		p->patterns[a] = NULL;
		p->npatterns[a] = 0;
	}
}

/* A pattern the operator wrote: not empty, not a bare wildcard, and every
 * "${" opens exactly ${thingName} (a typo such as ${ThingName} would
 * otherwise be matched literally and quietly refuse every device). */
static int
check_pattern(const char *pat, const char *field, struct est_error *e)
{
	const char *s;

	if (*pat == '\0' || strlen(pat) > PATTERN_MAX / 2)
		return est_fail(e, EST_ECONFIG, "%s: expected 1 to %d characters", field,
				PATTERN_MAX / 2);
	if (bare_wildcard(pat))
		return est_fail(e, EST_ECONFIG, "%s: a bare wildcard '%s' would allow every "
				"resource", field, pat);
	if (strcmp(pat, "/*") == 0)
		return est_fail(e, EST_ECONFIG, "%s: '/*' has no prefix", field);
	for (s = pat; (s = strstr(s, "${")) != NULL; s += 2)
		if (strncmp(s, THING_VAR, strlen(THING_VAR)) != 0)
			return est_fail(e, EST_ECONFIG, "%s: unknown variable (only %s)", field,
					THING_VAR);
	return 0;
}

static int
action_of(const char *name, enum est_action *a)
{
	int i;

	for (i = 0; i < EST_ACT__MAX; i++) {
		if (strcmp(name, est_action_names[i]) == 0) {
			*a = (enum est_action)i;
			return 0;
		}
	}
	return -1;
}

static int
parse_actions(json_t *j, struct est_policy *p, struct est_error *e)
{
	char field[96];
	const char *k;
	enum est_action a;
	json_t *v, *s;
	size_t i;

	if (!json_is_object(j))
		return est_fail(e, EST_ECONFIG, "policy.actions: expected an object");
	json_object_foreach(j, k, v) {
		if (action_of(k, &a) < 0)
			return est_fail(e, EST_ECONFIG, "policy.actions.%.32s: unknown action "
					"(expected connect, publish, receive or subscribe)", k);
		if (!json_is_array(v))
			return est_fail(e, EST_ECONFIG, "policy.actions.%s: expected an array "
					"of patterns", k);
		json_array_foreach(v, i, s) {
			snprintf(field, sizeof(field), "policy.actions.%s[%zu]", k, i);
			if (!json_is_string(s))
				return est_fail(e, EST_ECONFIG, "%s: expected a string", field);
			if (check_pattern(json_string_value(s), field, e) < 0)
				return -EST_ECONFIG;
			if (add_pattern(p, a, json_string_value(s)) < 0)
				return est_fail(e, EST_EINTERNAL, "out of memory");
		}
	}
	return 0;
}

static int
parse_key_types(json_t *j, struct est_policy *p, struct est_error *e)
{
	enum est_key_type t;
	json_t *s;
	size_t i;

	if (!json_is_array(j))
		return est_fail(e, EST_ECONFIG, "policy.key_types: expected an array of key types");
	p->key_types = 0;
	json_array_foreach(j, i, s) {
		if (!json_is_string(s) || est_key_type_parse(json_string_value(s), &t, NULL) < 0 ||
		    t == EST_KEY_AES256)
			return est_fail(e, EST_ECONFIG, "policy.key_types[%zu]: expected one of "
					"ec-p256, ec-p384, ed25519, rsa2048, rsa3072, rsa4096", i);
		p->key_types |= 1u << t;
	}
	return 0;
}

/* A whole number in [1, MAX] from J into *OUT. */
static int
parse_count(json_t *j, const char *key, long long max, long long *out, struct est_error *e)
{
	if (!json_is_integer(j) || json_integer_value(j) < 1 || json_integer_value(j) > max)
		return est_fail(e, EST_ECONFIG, "policy.%s: expected a whole number from 1 to %lld",
				key, max);
	*out = json_integer_value(j);
	return 0;
}

/* One top-level key K with value V into P. */
static int
parse_key(const char *k, json_t *v, struct est_policy *p, struct est_error *e)
{
	long long n;
	int rc;

	if (strcmp(k, "actions") == 0)
		return parse_actions(v, p, e);
	if (strcmp(k, "key_types") == 0)
		return parse_key_types(v, p, e);
	if (strcmp(k, "deny_entries") == 0) {
		if (!json_is_boolean(v))
			return est_fail(e, EST_ECONFIG, "policy.deny_entries: expected true or false");
		p->deny_entries = json_is_true(v);
		return 0;
	}
	if (strcmp(k, "default_validity_days") == 0 || strcmp(k, "max_validity_days") == 0) {
		if ((rc = parse_count(v, k, 100 * 366, &n, e)) < 0)
			return rc;
		*(k[0] == 'd' ? &p->default_validity : &p->max_validity) = n * DAY;
		return 0;
	}
	if (strcmp(k, "max_permissions") == 0 || strcmp(k, "max_resources") == 0) {
		if ((rc = parse_count(v, k, 10000, &n, e)) < 0)
			return rc;
		*(k[4] == 'p' ? &p->max_permissions : &p->max_resources) = (size_t)n;
		return 0;
	}
	return est_fail(e, EST_ECONFIG, "policy.%.48s: unknown key", k);
}

int
est_policy_from_json(const json_t *j, struct est_policy *p, struct est_error *e)
{
	const char *k;
	json_t *v, *obj = (json_t *)j;
	int a, rc = 0;

	set_scalars(p);
	if (j != NULL && !json_is_object(j))
		return est_fail(e, EST_ECONFIG, "policy: expected an object");
	json_object_foreach(obj, k, v)
		if ((rc = parse_key(k, v, p, e)) < 0)
			goto out;
	if (p->default_validity > p->max_validity) {
		rc = est_fail(e, EST_ECONFIG, "policy.default_validity_days: %lld is more than "
			      "max_validity_days (%lld)", p->default_validity / DAY,
			      p->max_validity / DAY);
		goto out;
	}
	if (j == NULL || json_object_get(j, "actions") == NULL)
		for (a = 0; a < EST_ACT__MAX && rc == 0; a++)
			if (add_pattern(p, (enum est_action)a, default_patterns[a]) < 0)
				rc = est_fail(e, EST_EINTERNAL, "out of memory");
out:
	if (rc < 0)
		est_policy_free(p);
	return rc;
}

json_t *
est_policy_to_json(const struct est_policy *p)
{
	json_t *j = json_object(), *acts = json_object(), *kts = json_array(), *v;
	size_t a, i;
	int t, bad = j == NULL || acts == NULL || kts == NULL;

	for (a = 0; a < EST_ACT__MAX && !bad; a++) {
		if (p->npatterns[a] == 0)
			continue;
		bad |= (v = json_array()) == NULL || json_object_set_new(acts, est_action_names[a], v);
		for (i = 0; i < p->npatterns[a] && !bad; i++)
			bad |= json_array_append_new(v, json_string(p->patterns[a][i])) != 0;
	}
	for (t = 0; t < EST_KEY_AES256 && !bad; t++)
		if (p->key_types & (1u << t))
			bad |= json_array_append_new(kts, json_string(est_key_type_names[t])) != 0;
	if (!bad)
		bad = json_object_set_new(j, "actions", acts) |
		      json_object_set_new(j, "deny_entries", json_boolean(p->deny_entries)) |
		      json_object_set_new(j, "key_types", kts) |
		      json_object_set_new(j, "default_validity_days",
					  json_integer(p->default_validity / DAY)) |
		      json_object_set_new(j, "max_validity_days",
					  json_integer(p->max_validity / DAY)) |
		      json_object_set_new(j, "max_permissions",
					  json_integer((json_int_t)p->max_permissions)) |
		      json_object_set_new(j, "max_resources",
					  json_integer((json_int_t)p->max_resources));
	else {
		json_decref(acts);
		json_decref(kts);
	}
	if (bad) {
		json_decref(j);
		return NULL;
	}
	return j;
}

/* PAT with ${thingName} replaced by THING into BUF; -1 when too long. */
static int
expand(const char *pat, const char *thing, char *buf, size_t size)
{
	size_t n = 0, vl = strlen(THING_VAR), tl = strlen(thing);

	while (*pat != '\0') {
		if (strncmp(pat, THING_VAR, vl) == 0) {
			if (n + tl >= size)
				return -1;
			memcpy(buf + n, thing, tl);
			n += tl;
			pat += vl;
		} else {
			if (n + 1 >= size)
				return -1;
			buf[n++] = *pat++;
		}
	}
	buf[n] = '\0';
	return 0;
}

/* One or more non-empty '/'-separated segments free of wildcards. */
static int
plain_segments(const char *s)
{
	if (*s == '\0' || *s == '/' || s[strlen(s) - 1] == '/' || strstr(s, "//") != NULL)
		return 0;
	return strpbrk(s, "*?#+") == NULL;
}

static int
matches(const char *pat, const char *thing, const char *res)
{
	char want[PATTERN_MAX];
	size_t n;

	if (expand(pat, thing, want, sizeof(want)) < 0)
		return 0;
	n = strlen(want);
	if (n >= 2 && strcmp(want + n - 2, "/*") == 0)
		return strncmp(res, want, n - 1) == 0 && plain_segments(res + n - 1);
	return strcmp(res, want) == 0;
}

/* "p1, p2, ..." of action A into BUF, for refusal messages. */
static const char *
pattern_list(const struct est_policy *p, enum est_action a, char *buf, size_t size)
{
	size_t i, n = 0;

	buf[0] = '\0';
	for (i = 0; i < p->npatterns[a] && n < size; i++)
		n += (size_t)snprintf(buf + n, size - n, "%s%s", i ? ", " : "", p->patterns[a][i]);
	return buf;
}

static const char *
key_type_list(unsigned mask, char *buf, size_t size)
{
	size_t n = 0;
	int t;

	buf[0] = '\0';
	for (t = 0; t < EST_KEY_AES256 && n < size; t++)
		if (mask & (1u << t))
			n += (size_t)snprintf(buf + n, size - n, "%s%s", n ? ", " : "",
					      est_key_type_names[t]);
	return buf;
}

static int
check_permission(const struct est_policy *p, const char *thing,
		 const struct est_permission *perm, struct est_error *e)
{
	const char *act = est_action_names[perm->action], *r;
	char list[256];
	size_t i, j;

	if (p->npatterns[perm->action] == 0)
		return est_fail(e, EST_EREFUSED, "policy: action %s is not allowed", act);
	if (perm->effect == EST_EFFECT_DENY && !p->deny_entries)
		return est_fail(e, EST_EREFUSED, "policy: %s deny entries are not accepted", act);
	if (perm->nresources == 0)
		return est_fail(e, EST_EREFUSED, "policy: %s permission names no resource", act);
	for (i = 0; i < perm->nresources; i++) {
		r = perm->resources[i];
		if (bare_wildcard(r))
			return est_fail(e, EST_EREFUSED, "policy: %s resource '%s' is a bare "
					"wildcard", act, r);
		for (j = 0; j < p->npatterns[perm->action]; j++)
			if (matches(p->patterns[perm->action][j], thing, r))
				break;
		if (j == p->npatterns[perm->action])
			return est_fail(e, EST_EREFUSED, "policy: %s resource '%.128s' does not "
					"match any allowed pattern (%s)", act, r,
					pattern_list(p, perm->action, list, sizeof(list)));
	}
	return 0;
}

int
est_policy_check(const struct est_policy *p, const struct est_profile *profile,
		 enum est_key_type kt, struct est_error *e)
{
	char list[128];
	size_t i, nres = 0;
	int rc;

	if (!est_thing_name_valid(profile->thing_name))
		return est_fail(e, EST_EREFUSED, "policy: the ThingName is not valid "
				"(1-128 characters of A-Z a-z 0-9 : _ -)");
	if ((unsigned)kt >= EST_KEY_AES256 || !(p->key_types & (1u << kt)))
		return est_fail(e, EST_EREFUSED, "policy: key type %s is not allowed (%s)",
				(unsigned)kt < EST_KEY_AES256 ? est_key_type_names[kt] : "unknown",
				key_type_list(p->key_types, list, sizeof(list)));
	if (profile->npermissions > p->max_permissions)
		return est_fail(e, EST_EREFUSED, "policy: %zu permissions, at most %zu allowed",
				profile->npermissions, p->max_permissions);
	for (i = 0; i < profile->npermissions; i++)
		nres += profile->permissions[i].nresources;
	if (nres > p->max_resources)
		return est_fail(e, EST_EREFUSED, "policy: %zu resources, at most %zu allowed",
				nres, p->max_resources);
	for (i = 0; i < profile->npermissions; i++) {
		if ((unsigned)profile->permissions[i].action >= EST_ACT__MAX)
			return est_fail(e, EST_EREFUSED, "policy: unknown action");
		rc = check_permission(p, profile->thing_name, &profile->permissions[i], e);
		if (rc < 0)
			return rc;
	}
	return 0;
}

enum est_key_type
est_policy_crq_key_type(gnutls_x509_crq_t crq)
{
	gnutls_pubkey_t pub = NULL;
	enum est_key_type t = EST_KEY__MAX;

	if (gnutls_pubkey_init(&pub) == 0 && gnutls_pubkey_import_x509_crq(pub, crq, 0) == 0)
		t = est_pubkey_type(pub);
	gnutls_pubkey_deinit(pub);
	return t;
}

/* "arn:aws:iot:*:*:" + RES, with a subscribe's "topic/" as "topicfilter/". */
static json_t *
resource_arn(enum est_action a, const char *res)
{
	if (a == EST_ACT_SUBSCRIBE && strncmp(res, "topic/", 6) == 0)
		return json_sprintf("arn:aws:iot:*:*:topicfilter/%s", res + 6);
	return json_sprintf("arn:aws:iot:*:*:%s", res);
}

static json_t *
statement(const struct est_permission *perm)
{
	static const char *const iot_actions[EST_ACT__MAX] = {
		"iot:Connect", "iot:Publish", "iot:Receive", "iot:Subscribe",
	};
	json_t *st, *acts, *res;
	size_t i;
	int bad;

	st = json_object();
	acts = json_array();
	res = json_array();
	bad = st == NULL || acts == NULL || res == NULL ||
	      json_array_append_new(acts, json_string(iot_actions[perm->action]));
	for (i = 0; i < perm->nresources && !bad; i++)
		bad = json_array_append_new(res, resource_arn(perm->action, perm->resources[i]));
	if (bad) {
		json_decref(acts);
		json_decref(res);
		json_decref(st);
		return NULL;
	}
	if (json_object_set_new(st, "Effect", json_string(perm->effect == EST_EFFECT_DENY
							  ? "Deny" : "Allow")) |
	    json_object_set_new(st, "Action", acts) | json_object_set_new(st, "Resource", res)) {
		json_decref(st);
		return NULL;
	}
	return st;
}

json_t *
est_policy_iot_document(const struct est_profile *profile)
{
	json_t *doc = json_object(), *sts = json_array();
	size_t i;
	int bad = doc == NULL || sts == NULL;

	for (i = 0; i < profile->npermissions && !bad; i++)
		if ((unsigned)profile->permissions[i].action < EST_ACT__MAX)
			bad = json_array_append_new(sts, statement(&profile->permissions[i]));
	if (bad) {
		json_decref(sts);
		json_decref(doc);
		return NULL;
	}
	if (json_object_set_new(doc, "Version", json_string("2012-10-17")) |
	    json_object_set_new(doc, "Statement", sts)) {
		json_decref(doc);
		return NULL;
	}
	return doc;
}
