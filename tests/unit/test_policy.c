/* Unit tests of lib/policy: loading, checking profiles, the IoT document. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "tap.h"

/* A profile from "action:effect:res,res;action:effect:res" for THING. */
static int
make_profile(const char *thing, const char *spec, struct est_profile *p)
{
	char *copy = strdup(spec), *perm, *save = NULL, *act, *eff, *res, *r, *save2 = NULL;
	struct est_permission *pp;
	int i;

	memset(p, 0, sizeof(*p));
	p->version = 1;
	p->thing_name = strdup(thing);
	p->permissions = calloc(64, sizeof(*p->permissions));
	for (perm = strtok_r(copy, ";", &save); perm; perm = strtok_r(NULL, ";", &save)) {
		pp = &p->permissions[p->npermissions++];
		act = strtok_r(perm, ":", &save2);
		eff = strtok_r(NULL, ":", &save2);
		res = strtok_r(NULL, "", &save2);
		for (i = 0; i < EST_ACT__MAX; i++)
			if (strcmp(act, est_action_names[i]) == 0)
				pp->action = (enum est_action)i;
		pp->effect = strcmp(eff, "deny") == 0 ? EST_EFFECT_DENY : EST_EFFECT_ALLOW;
		pp->resources = calloc(64, sizeof(char *));
		for (r = res ? strtok_r(res, ",", &save2) : NULL; r; r = strtok_r(NULL, ",", &save2))
			pp->resources[pp->nresources++] = strdup(r);
	}
	free(copy);
	return 0;
}

static void
test_check(void)
{
	static const char strict[] = "{\"actions\": {\"connect\": [\"client/${thingName}\"], "
		"\"publish\": [\"topic/${thingName}/*\", \"topic/fleet/broadcast\"]}, "
		"\"deny_entries\": false, \"key_types\": [\"ec-p256\", \"ed25519\"], "
		"\"max_permissions\": 2, \"max_resources\": 3}";
	static const struct {
		const char *policy;     /* NULL: the default */
		const char *thing;
		enum est_key_type kt;
		const char *profile;
		const char *refusal;    /* NULL: accepted; else a substring of the message */
	} cases[] = {
		{ NULL, "Dev-1", EST_KEY_EC_P256,
		  "connect:allow:client/Dev-1;publish:allow:topic/Dev-1/telemetry,topic/Dev-1/a/b", NULL },
		{ NULL, "Dev-1", EST_KEY_EC_P256, "subscribe:deny:topic/Dev-1/admin", NULL },
		{ NULL, "Dev-1", EST_KEY_EC_P256, "", NULL },
		/* ${thingName} is this device's name, not any name */
		{ NULL, "Dev-1", EST_KEY_EC_P256, "connect:allow:client/Dev-2",
		  "policy: connect resource 'client/Dev-2' does not match any allowed pattern "
		  "(client/${thingName})" },
		{ NULL, "Dev-1", EST_KEY_EC_P256, "publish:allow:topic/Dev-2/telemetry",
		  "publish resource 'topic/Dev-2/telemetry' does not match" },
		{ NULL, "Dev", EST_KEY_EC_P256, "publish:allow:topic/Dev-1/telemetry",
		  "does not match" },
		/* wildcards: bare, inside the tail, or the prefix alone */
		{ NULL, "Dev-1", EST_KEY_EC_P256, "publish:allow:*",
		  "policy: publish resource '*' is a bare wildcard" },
		{ NULL, "Dev-1", EST_KEY_EC_P256, "subscribe:allow:#", "bare wildcard" },
		{ NULL, "Dev-1", EST_KEY_EC_P256, "receive:allow:+", "bare wildcard" },
		{ NULL, "Dev-1", EST_KEY_EC_P256, "publish:allow:topic/*",
		  "policy: publish resource 'topic/*' does not match any allowed pattern "
		  "(topic/${thingName}/*)" },
		{ NULL, "Dev-1", EST_KEY_EC_P256, "publish:allow:topic/Dev-1/*", "does not match" },
		{ NULL, "Dev-1", EST_KEY_EC_P256, "subscribe:allow:topic/Dev-1/#", "does not match" },
		{ NULL, "Dev-1", EST_KEY_EC_P256, "subscribe:allow:topic/Dev-1/+/x", "does not match" },
		{ NULL, "Dev-1", EST_KEY_EC_P256, "publish:allow:topic/Dev-1/", "does not match" },
		{ NULL, "Dev-1", EST_KEY_EC_P256, "publish:allow:topic/Dev-1", "does not match" },
		{ NULL, "Dev-1", EST_KEY_EC_P256, "publish:allow:topic/Dev-1//x", "does not match" },
		{ NULL, "Dev-1", EST_KEY_EC_P256, "connect:allow:client/Dev-1/x", "does not match" },
		{ NULL, "Dev-1", EST_KEY_EC_P256, "publish:allow:", "names no resource" },
		{ NULL, "Dev 1", EST_KEY_EC_P256, "", "ThingName is not valid" },
		{ NULL, "Dev-1", EST_KEY_RSA4096, "", NULL },
		{ NULL, "Dev-1", EST_KEY__MAX, "", "key type unknown is not allowed" },
		/* the strict policy: fewer actions, no deny, two key types, small caps */
		{ strict, "Dev-1", EST_KEY_ED25519,
		  "connect:allow:client/Dev-1;publish:allow:topic/fleet/broadcast,topic/Dev-1/x", NULL },
		{ strict, "Dev-1", EST_KEY_EC_P256, "subscribe:allow:topic/Dev-1/x",
		  "policy: action subscribe is not allowed" },
		{ strict, "Dev-1", EST_KEY_EC_P256, "receive:allow:topic/Dev-1/x",
		  "action receive is not allowed" },
		{ strict, "Dev-1", EST_KEY_EC_P256, "publish:deny:topic/Dev-1/x",
		  "policy: publish deny entries are not accepted" },
		{ strict, "Dev-1", EST_KEY_RSA2048, "",
		  "policy: key type rsa2048 is not allowed (ec-p256, ed25519)" },
		{ strict, "Dev-1", EST_KEY_EC_P384, "", "key type ec-p384 is not allowed" },
		{ strict, "Dev-1", EST_KEY_EC_P256,
		  "connect:allow:client/Dev-1;publish:allow:topic/Dev-1/a;publish:allow:topic/Dev-1/b",
		  "policy: 3 permissions, at most 2 allowed" },
		{ strict, "Dev-1", EST_KEY_EC_P256,
		  "publish:allow:topic/Dev-1/a,topic/Dev-1/b,topic/Dev-1/c,topic/Dev-1/d",
		  "policy: 4 resources, at most 3 allowed" },
		{ strict, "Dev-1", EST_KEY_EC_P256, "publish:allow:topic/fleet/broadcast/x",
		  "(topic/${thingName}/*, topic/fleet/broadcast)" },
	};
	struct est_policy pol;
	struct est_profile prof;
	struct est_error e;
	json_t *j;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		j = cases[i].policy ? json_loads(cases[i].policy, 0, NULL) : NULL;
		if (est_policy_from_json(j, &pol, &e) < 0) {
			tap_ok(0, "case %zu: policy: %s", i, e.msg);
			json_decref(j);
			continue;
		}
		make_profile(cases[i].thing, cases[i].profile, &prof);
		e.msg[0] = '\0';
		rc = est_policy_check(&pol, &prof, cases[i].kt, &e);
		if (cases[i].refusal == NULL)
			tap_ok(rc == 0, "%s policy accepts %s '%s' (%s)", cases[i].policy ? "strict" :
			       "default", cases[i].thing, cases[i].profile, e.msg);
		else
			tap_ok(rc == -EST_EREFUSED && strstr(e.msg, cases[i].refusal) != NULL &&
			       strchr(e.msg, '\n') == NULL, "%s policy refuses %s '%s': %s",
			       cases[i].policy ? "strict" : "default", cases[i].thing,
			       cases[i].profile, e.msg);
		est_profile_free(&prof);
		est_policy_free(&pol);
		json_decref(j);
	}
}

static void
test_load(void)
{
	static const struct {
		const char *json;
		const char *error;      /* NULL: loads */
	} cases[] = {
		{ "{}", NULL },
		{ "{\"actions\": {}}", NULL },
		{ "{\"actions\": {\"publish\": [\"topic/${thingName}/#\"]}}", NULL },
		{ "[]", "policy: expected an object" },
		{ "{\"action\": {}}", "policy.action: unknown key" },
		{ "{\"actions\": {\"Publish\": []}}", "policy.actions.Publish: unknown action" },
		{ "{\"actions\": {\"publish\": \"topic/x\"}}", "expected an array" },
		{ "{\"actions\": {\"publish\": [1]}}", "policy.actions.publish[0]: expected a string" },
		{ "{\"actions\": {\"publish\": [\"*\"]}}", "policy.actions.publish[0]: a bare wildcard" },
		{ "{\"actions\": {\"subscribe\": [\"x\", \"#\"]}}", "subscribe[1]: a bare wildcard" },
		{ "{\"actions\": {\"publish\": [\"topic/${ThingName}/*\"]}}", "unknown variable" },
		{ "{\"actions\": {\"publish\": [\"\"]}}", "expected 1 to" },
		{ "{\"actions\": {\"publish\": [\"/*\"]}}", "has no prefix" },
		{ "{\"key_types\": [\"aes256\"]}", "policy.key_types[0]" },
		{ "{\"key_types\": [\"dsa\"]}", "policy.key_types[0]" },
		{ "{\"deny_entries\": 1}", "policy.deny_entries: expected true or false" },
		{ "{\"max_validity_days\": 0}", "policy.max_validity_days: expected a whole number" },
		{ "{\"default_validity_days\": 900}", "more than max_validity_days (825)" },
		{ "{\"max_permissions\": \"8\"}", "policy.max_permissions" },
	};
	struct est_policy pol;
	struct est_error e;
	json_t *j;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		j = json_loads(cases[i].json, 0, NULL);
		e.msg[0] = '\0';
		rc = est_policy_from_json(j, &pol, &e);
		if (cases[i].error == NULL)
			tap_ok(rc == 0, "policy loads %s (%s)", cases[i].json, e.msg);
		else
			tap_ok(rc == -EST_ECONFIG && strstr(e.msg, cases[i].error) != NULL,
			       "policy refuses %s: %s", cases[i].json, e.msg);
		if (rc == 0)
			est_policy_free(&pol);
		json_decref(j);
	}
}

static void
test_defaults_round_trip(void)
{
	struct est_policy a, b;
	struct est_error e;
	json_t *ja = NULL, *jb = NULL;
	int ok;

	ok = est_policy_default(&a, &e) == 0 && (ja = est_policy_to_json(&a)) != NULL &&
	     est_policy_from_json(ja, &b, &e) == 0 && (jb = est_policy_to_json(&b)) != NULL &&
	     json_equal(ja, jb) && a.default_validity == 365 * 86400LL &&
	     a.max_validity == 825 * 86400LL && a.npatterns[EST_ACT_PUBLISH] == 1 &&
	     strcmp(a.patterns[EST_ACT_CONNECT][0], "client/${thingName}") == 0;
	tap_ok(ok, "the default policy round-trips through JSON");
	est_policy_free(&a);
	est_policy_free(&b);
	json_decref(ja);
	json_decref(jb);
}

static void
test_iot_document(void)
{
	static const char want[] = "{\"Version\": \"2012-10-17\", \"Statement\": ["
		"{\"Effect\": \"Allow\", \"Action\": [\"iot:Connect\"], "
		"\"Resource\": [\"arn:aws:iot:*:*:client/Dev-1\"]}, "
		"{\"Effect\": \"Allow\", \"Action\": [\"iot:Publish\"], "
		"\"Resource\": [\"arn:aws:iot:*:*:topic/Dev-1/a\", \"arn:aws:iot:*:*:topic/Dev-1/b\"]}, "
		"{\"Effect\": \"Allow\", \"Action\": [\"iot:Receive\"], "
		"\"Resource\": [\"arn:aws:iot:*:*:topic/Dev-1/in\"]}, "
		"{\"Effect\": \"Deny\", \"Action\": [\"iot:Subscribe\"], "
		"\"Resource\": [\"arn:aws:iot:*:*:topicfilter/Dev-1/admin\"]}]}";
	struct est_profile prof;
	json_t *doc, *exp = json_loads(want, 0, NULL);

	make_profile("Dev-1", "connect:allow:client/Dev-1;publish:allow:topic/Dev-1/a,"
		     "topic/Dev-1/b;receive:allow:topic/Dev-1/in;subscribe:deny:topic/Dev-1/admin",
		     &prof);
	doc = est_policy_iot_document(&prof);
	tap_ok(doc != NULL && exp != NULL && json_equal(doc, exp),
	       "the IoT policy document has one statement per permission, subscribe as topicfilter");
	json_decref(doc);
	json_decref(exp);
	est_profile_free(&prof);
}

int
main(void)
{
	test_check();
	test_load();
	test_defaults_round_trip();
	test_iot_document();
	return tap_done();
}
