#include "config.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "srvconf.h"

static const char *const auth_names[] = { "sealed", "basic", "cert", NULL };

static void
label_free(struct est_label *l)
{
	free(l->name);
	free(l->anchors);
	json_decref(l->policy);
}

void
est_srvconf_free(struct est_srvconf *c)
{
	size_t i;

	if (c == NULL)
		return;
	free(c->dir);
	free(c->ca_key);
	free(c->ca_cert);
	free(c->tls_cert);
	free(c->tls_key);
	free(c->keys_dir);
	free(c->passwd);
	free(c->registry);
	free(c->audit_log);
	json_decref(c->policy);
	for (i = 0; i < c->nlabels; i++)
		label_free(&c->labels[i]);
	free(c->labels);
	memset(c, 0, sizeof(*c));
}

/* Every key of OBJ must be in ALLOWED or start with '_' (a comment). */
static int
check_keys(const json_t *obj, const char *where, const char *const *allowed, struct est_error *e)
{
	const char *k;
	json_t *v;
	size_t i;

	json_object_foreach((json_t *)obj, k, v) {
		if (k[0] == '_')
			continue;
		for (i = 0; allowed[i] != NULL && strcmp(allowed[i], k) != 0; i++)
			;
		if (allowed[i] == NULL)
			return est_fail(e, EST_ECONFIG, "%s%s%s: unknown key", where,
					*where ? "." : "", k);
	}
	return 0;
}

/* A path: absolute, a pkcs11: URI (when URI_OK), or relative to DIR. */
static int
get_path(const json_t *obj, const char *key, const char *where, const char *dir, int uri_ok,
	 const char *dflt, char **out, struct est_error *e)
{
	const json_t *v = json_object_get(obj, key);
	const char *s = dflt;
	size_t n;

	if (v != NULL && !json_is_null(v)) {
		if (!json_is_string(v) || json_string_length(v) == 0)
			return est_fail(e, EST_ECONFIG, "%s.%s: expected a file name", where, key);
		s = json_string_value(v);
	}
	if (s == NULL) {
		*out = NULL;
		return 0;
	}
	if (s[0] == '/' || (uri_ok && strncmp(s, "pkcs11:", 7) == 0)) {
		*out = strdup(s);
	} else {
		n = strlen(dir) + strlen(s) + 2;
		if ((*out = malloc(n)) != NULL)
			snprintf(*out, n, "%s/%s", dir, s);
	}
	return *out == NULL ? est_fail(e, EST_EINTERNAL, "out of memory") : 0;
}

static int
get_uint(const json_t *obj, const char *key, const char *where, long long min, long long max,
	 long long dflt, long long *out, struct est_error *e)
{
	const json_t *v = json_object_get(obj, key);

	*out = dflt;
	if (v == NULL)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return est_fail(e, EST_ECONFIG, "%s.%s: expected an integer from %lld to %lld",
				where, key, min, max);
	*out = json_integer_value(v);
	return 0;
}

static int
get_bool(const json_t *obj, const char *key, const char *where, int dflt, int *out,
	 struct est_error *e)
{
	const json_t *v = json_object_get(obj, key);

	*out = dflt;
	if (v == NULL)
		return 0;
	if (!json_is_boolean(v))
		return est_fail(e, EST_ECONFIG, "%s.%s: expected true or false", where, key);
	*out = json_is_true(v);
	return 0;
}

static int
get_string(const json_t *obj, const char *key, const char *where, const char *dflt, char *out,
	   size_t outlen, struct est_error *e)
{
	const json_t *v = json_object_get(obj, key);
	const char *s = dflt;

	if (v != NULL) {
		if (!json_is_string(v) || json_string_length(v) == 0)
			return est_fail(e, EST_ECONFIG, "%s.%s: expected a string", where, key);
		s = json_string_value(v);
	}
	if (strlen(s) >= outlen)
		return est_fail(e, EST_ECONFIG, "%s.%s: too long", where, key);
	strcpy(out, s);
	return 0;
}

/* A deep copy of J without the comment keys ('_...') of its objects, for
 * parsers that know nothing of our comment convention (the policy's). */
static json_t *
uncommented(const json_t *j)
{
	json_t *copy = json_deep_copy(j), *v;
	const char *k;
	void *tmp;
	size_t i;

	if (json_is_object(copy)) {
		json_object_foreach_safe(copy, tmp, k, v) {
			if (k[0] == '_')
				json_object_del(copy, k);
			else
				json_object_set_new(copy, k, uncommented(v));
		}
	} else if (json_is_array(copy)) {
		json_array_foreach(copy, i, v)
			json_array_set_new(copy, i, uncommented(v));
	}
	return copy;
}

static int
label_name_valid(const char *s)
{
	size_t i, n = strlen(s);

	if (n > 64 || s[0] == '_')
		return 0;
	for (i = 0; i < n; i++)
		if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') &&
		    !(s[i] >= '0' && s[i] <= '9') && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return 0;
	/* "." and ".." would read as path steps; the op names as labels would be
	 * ambiguous with the unlabelled path. */
	return strcmp(s, ".") && strcmp(s, "..") && strcmp(s, "cacerts") &&
	       strcmp(s, "simpleenroll") && strcmp(s, "simplereenroll") &&
	       strcmp(s, "csrattrs") && strcmp(s, "serverkeygen");
}

static int
label_auth(const json_t *v, const char *where, unsigned *auth, struct est_error *e)
{
	size_t i, j;
	json_t *x;

	*auth = 0;
	if (v == NULL) {
		*auth = EST_AUTH_SEALED | EST_AUTH_BASIC;
		return 0;
	}
	if (!json_is_array(v))
		return est_fail(e, EST_ECONFIG, "%s.auth: expected a list of "
				"\"sealed\", \"basic\", \"cert\"", where);
	json_array_foreach(v, i, x) {
		for (j = 0; auth_names[j] != NULL; j++)
			if (json_is_string(x) && strcmp(json_string_value(x), auth_names[j]) == 0)
				break;
		if (auth_names[j] == NULL)
			return est_fail(e, EST_ECONFIG, "%s.auth[%zu]: expected \"sealed\", "
					"\"basic\" or \"cert\"", where, i);
		*auth |= 1u << j;
	}
	return 0;
}

static int
label_load(const char *dir, const char *name, const json_t *obj, struct est_label *l,
	   struct est_error *e)
{
	static const char *const keys[] = { "auth", "approval", "proof_of_possession",
		"reenroll", "serverkeygen", "key_type", "bootstrap_anchors", "policy", NULL };
	char where[96], kt[32], appr[16];
	int rc;

	snprintf(where, sizeof(where), "labels.\"%s\"", name);
	if (!label_name_valid(name))
		return est_fail(e, EST_ECONFIG, "%s: a label is 1-64 of [A-Za-z0-9._-] and not "
				"an operation name", where);
	if (!json_is_object(obj))
		return est_fail(e, EST_ECONFIG, "%s: expected an object", where);
	if ((l->name = strdup(name)) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	if ((rc = check_keys(obj, where, keys, e)) < 0 ||
	    (rc = label_auth(json_object_get(obj, "auth"), where, &l->auth, e)) < 0 ||
	    (rc = get_bool(obj, "proof_of_possession", where, 0, &l->pop, e)) < 0 ||
	    (rc = get_bool(obj, "reenroll", where, 1, &l->reenroll, e)) < 0 ||
	    (rc = get_bool(obj, "serverkeygen", where, 1, &l->serverkeygen, e)) < 0 ||
	    (rc = get_string(obj, "approval", where, "auto", appr, sizeof(appr), e)) < 0 ||
	    (rc = get_string(obj, "key_type", where, "ec-p256", kt, sizeof(kt), e)) < 0 ||
	    (rc = get_path(obj, "bootstrap_anchors", where, dir, 0, NULL, &l->anchors, e)) < 0)
		return rc;
	if (strcmp(appr, "auto") != 0 && strcmp(appr, "manual") != 0)
		return est_fail(e, EST_ECONFIG, "%s.approval: expected \"auto\" or \"manual\"",
				where);
	l->manual = strcmp(appr, "manual") == 0;
	if (est_key_type_parse(kt, &l->key_type, e) < 0 || l->key_type == EST_KEY_AES256)
		return est_fail(e, EST_ECONFIG, "%s.key_type: expected an asymmetric key type "
				"such as \"ec-p256\"", where);
	if ((l->auth & EST_AUTH_CERT) && l->anchors == NULL)
		return est_fail(e, EST_ECONFIG, "%s: auth \"cert\" needs bootstrap_anchors",
				where);
	if ((l->policy = json_object_get(obj, "policy")) != NULL) {
		if (!json_is_object(l->policy)) {
			l->policy = NULL;
			return est_fail(e, EST_ECONFIG, "%s.policy: expected an object", where);
		}
		l->policy = uncommented(l->policy);
	}
	return 0;
}

static int
labels_load(struct est_srvconf *c, const json_t *labels, struct est_error *e)
{
	const char *k;
	json_t *v, *dflt = NULL;
	int rc = 0;

	if (labels == NULL) {
		/* No labels: the unlabelled path with the defaults. */
		if ((dflt = json_object()) == NULL)
			return est_fail(e, EST_EINTERNAL, "out of memory");
		labels = dflt;
		json_object_set_new(dflt, "", json_object());
	}
	if (!json_is_object(labels)) {
		rc = est_fail(e, EST_ECONFIG, "labels: expected an object");
		goto out;
	}
	if ((c->labels = calloc(json_object_size(labels) + 1, sizeof(*c->labels))) == NULL) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	json_object_foreach((json_t *)labels, k, v) {
		if (k[0] == '_')
			continue;
		if ((rc = label_load(c->dir, k, v, &c->labels[c->nlabels++], e)) < 0)
			goto out;
	}
out:
	json_decref(dflt);
	return rc;
}

static int
paths_load(struct est_srvconf *c, const json_t *root, struct est_error *e)
{
	static const char *const ca_keys[] = { "key", "cert", NULL };
	static const char *const tls_keys[] = { "key", "cert", "priorities", NULL };
	const json_t *ca = json_object_get(root, "ca"), *tls = json_object_get(root, "tls");
	json_t *empty = json_object();
	int rc;

	if (ca == NULL)
		ca = empty;
	if (tls == NULL)
		tls = empty;
	if (!json_is_object(ca) || !json_is_object(tls)) {
		rc = est_fail(e, EST_ECONFIG, "%s: expected an object",
			      json_is_object(ca) ? "tls" : "ca");
		goto out;
	}
	if ((rc = check_keys(ca, "ca", ca_keys, e)) < 0 ||
	    (rc = check_keys(tls, "tls", tls_keys, e)) < 0 ||
	    (rc = get_path(ca, "key", "ca", c->dir, 1, "ca/key.pem", &c->ca_key, e)) < 0 ||
	    (rc = get_path(ca, "cert", "ca", c->dir, 0, "ca/cert.pem", &c->ca_cert, e)) < 0 ||
	    (rc = get_path(tls, "key", "tls", c->dir, 1, "tls/key.pem", &c->tls_key, e)) < 0 ||
	    (rc = get_path(tls, "cert", "tls", c->dir, 0, "tls/cert.pem", &c->tls_cert, e)) < 0 ||
	    (rc = get_string(tls, "priorities", "tls", EST_SRVCONF_PRIORITIES, c->priorities,
			     sizeof(c->priorities), e)) < 0 ||
	    (rc = get_path(root, "enrollment_keys", "", c->dir, 0, "keys", &c->keys_dir, e)) < 0 ||
	    (rc = get_path(root, "passwd", "", c->dir, 0, "passwd", &c->passwd, e)) < 0 ||
	    (rc = get_path(root, "registry", "", c->dir, 0, "registry.db", &c->registry, e)) < 0 ||
	    (rc = get_path(root, "audit_log", "", c->dir, 0, "audit.log", &c->audit_log, e)) < 0)
		goto out;
out:
	json_decref(empty);
	return rc;
}

static int
limits_load(struct est_srvconf *c, const json_t *root, struct est_error *e)
{
	static const char *const keys[] = { "max_body", "timeout", "request_timeout",
		"max_connections", "retry_after", NULL };
	const json_t *l = json_object_get(root, "limits");
	json_t *empty = json_object();
	long long body, to, rto, conns, retry;
	int rc;

	if (l == NULL)
		l = empty;
	if (!json_is_object(l)) {
		rc = est_fail(e, EST_ECONFIG, "limits: expected an object");
		goto out;
	}
	if ((rc = check_keys(l, "limits", keys, e)) < 0 ||
	    (rc = get_uint(l, "max_body", "limits", 1024, 16 << 20, 65536, &body, e)) < 0 ||
	    (rc = get_uint(l, "timeout", "limits", 1, 3600, 10, &to, e)) < 0 ||
	    (rc = get_uint(l, "request_timeout", "limits", 1, 3600, 30, &rto, e)) < 0 ||
	    (rc = get_uint(l, "max_connections", "limits", 1, 65536, 1024, &conns, e)) < 0 ||
	    (rc = get_uint(l, "retry_after", "limits", 1, 86400, 60, &retry, e)) < 0)
		goto out;
	c->max_body = (size_t)body;
	c->timeout = (unsigned)to;
	c->request_timeout = (unsigned)rto;
	c->max_connections = (unsigned)conns;
	c->retry_after = (unsigned)retry;
out:
	json_decref(empty);
	return rc;
}

static int
root_load(struct est_srvconf *c, const json_t *root, struct est_error *e)
{
	static const char *const keys[] = { "listen", "ca", "tls", "enrollment_keys", "passwd",
		"registry", "audit_log", "limits", "policy", "labels", NULL };
	int rc;

	if (!json_is_object(root))
		return est_fail(e, EST_ECONFIG, "expected a JSON object");
	if ((rc = check_keys(root, "", keys, e)) < 0 ||
	    (rc = get_string(root, "listen", "", "127.0.0.1:8443", c->listen, sizeof(c->listen),
			     e)) < 0 ||
	    (rc = paths_load(c, root, e)) < 0 || (rc = limits_load(c, root, e)) < 0)
		return rc;
	c->policy = json_object_get(root, "policy");
	if (c->policy == NULL || !json_is_object(c->policy)) {
		c->policy = NULL;
		return est_fail(e, EST_ECONFIG, "policy: expected an object");
	}
	c->policy = uncommented(c->policy);
	return labels_load(c, json_object_get(root, "labels"), e);
}

int
est_srvconf_load(const char *dir, struct est_srvconf *c, struct est_error *e)
{
	char path[PATH_MAX];
	json_error_t je;
	json_t *root;
	int rc;

	memset(c, 0, sizeof(*c));
	if ((c->dir = strdup(dir)) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	snprintf(path, sizeof(path), "%s/%s", dir, EST_SRVCONF_FILE);
	if ((root = json_load_file(path, JSON_REJECT_DUPLICATES, &je)) == NULL) {
		if (je.line == -1 && strstr(je.text, "unable to open") != NULL)
			rc = est_fail(e, EST_ENOINPUT, "%s: cannot read (not a state directory? "
				      "see estctl server init)", path);
		else
			rc = est_fail(e, EST_ECONFIG, "%s:%d: %s", path, je.line, je.text);
		goto out;
	}
	if ((rc = root_load(c, root, e)) < 0)
		est_error_prefix(e, "%s", path);
out:
	json_decref(root);
	if (rc < 0)
		est_srvconf_free(c);
	return rc;
}

const struct est_label *
est_srvconf_label(const struct est_srvconf *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nlabels; i++)
		if (strcmp(c->labels[i].name, name) == 0)
			return &c->labels[i];
	return NULL;
}

static json_t *
default_policy(long long validity)
{
	struct est_policy p;
	json_t *j;

	if (est_policy_default(&p, NULL) < 0)
		return NULL;
	p.default_validity = validity;
	if (p.max_validity < validity)
		p.max_validity = validity;
	j = est_policy_to_json(&p);
	est_policy_free(&p);
	if (j != NULL)
		json_object_set_new(j, "_comment", json_string(
			"What a device may ask for in its profile: per action the resource "
			"patterns (${thingName} is the device's name; \"prefix/*\" means one or "
			"more segments under prefix, never a wildcard), key types, validity. "
			"A label may carry its own \"policy\"."));
	return j;
}

json_t *
est_srvconf_default(const char *keyid, long long validity)
{
	json_t *policy = default_policy(validity);
	char keys_comment[256];

	if (policy == NULL)
		return NULL;
	snprintf(keys_comment, sizeof(keys_comment),
		 "Sealed CSRs (estctl encrypt) are accepted under every <id>.key in this "
		 "directory; this one was made with id '%s'.", keyid);
	return json_pack("{s:[s,s,s,s], s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s, s:s}, s:s, s:s, "
			 "s:s, s:s, s:s, s:s, s:{s:s, s:i, s:i, s:i, s:i, s:i}, s:o, "
			 "s:{s:[s,s,s], s:{s:s, s:[s,s], s:s, s:b, s:b, s:b, s:s}}}",
		"_comment",
		"estctl server configuration, see estctl-server(1).",
		"Keys starting with '_' are comments; any other unknown key is an error.",
		"Relative paths are relative to this directory.",
		"SIGHUP reloads it (listen, tls.priorities and limits need a restart).",
		"listen", "127.0.0.1:8443",
		"ca", "key", "ca/key.pem", "cert", "ca/cert.pem",
		"tls", "_comment", "TLS 1.2 and 1.3 only, whatever the priority string says.",
		"key", "tls/key.pem", "cert", "tls/cert.pem", "priorities", EST_SRVCONF_PRIORITIES,
		"_enrollment_keys", keys_comment, "enrollment_keys", "keys",
		"_passwd", "HTTP Basic users: estctl server passwd DIR USER.", "passwd", "passwd",
		"registry", "registry.db", "audit_log", "audit.log",
		"limits", "_comment", "bytes and seconds: request body, idle connection, whole "
		"request, open connections, Retry-After of manual approval",
		"max_body", 65536, "timeout", 10, "request_timeout", 30, "max_connections", 1024,
		"retry_after", 60,
		"policy", policy,
		"labels", "_comment",
		"One entry per EST label: \"\" is /.well-known/est/<op>, \"NAME\" is "
		"/.well-known/est/NAME/<op>.",
		"auth: any of \"sealed\", \"basic\", \"cert\" (a client certificate from "
		"bootstrap_anchors, a PEM file). approval: \"auto\" or \"manual\" (202 until "
		"estctl server approve).",
		"proof_of_possession: the CSR's challengePassword must hold the TLS channel "
		"binding. reenroll, serverkeygen: allowed. key_type: what csrattrs asks for and "
		"serverkeygen makes.",
		"", "_comment", "the unlabelled path", "auth", "sealed", "basic",
		"approval", "auto", "proof_of_possession", 0, "reenroll", 1, "serverkeygen", 1,
		"key_type", "ec-p256");
}
