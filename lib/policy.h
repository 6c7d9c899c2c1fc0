/* The server's policy for device profiles (DESIGN.md 4.2): the CSR requests,
 * the server decides. Loaded from the "policy" object of the server config.
 *
 * JSON shape (every key optional; the values shown are the defaults except
 * where noted):
 *
 *   "policy": {
 *     "actions": {                          -- absent action: not allowed
 *       "connect":   ["client/${thingName}"],
 *       "publish":   ["topic/${thingName}/*"],
 *       "receive":   ["topic/${thingName}/*"],
 *       "subscribe": ["topic/${thingName}/*"]
 *     },
 *     "deny_entries": true,                 -- accept effect=deny permissions
 *     "key_types": ["ec-p256", "ec-p384", "ed25519", "rsa2048", "rsa3072", "rsa4096"],
 *     "default_validity_days": 365,
 *     "max_validity_days": 825,
 *     "max_permissions": 16,                -- entries in the profile
 *     "max_resources": 32                   -- resources per entry
 *   }
 *
 * With no "actions" key the four actions above are allowed with those
 * patterns (a device may talk on its own topics only). Unknown keys, an
 * unknown action or key type, a non-string pattern, a pattern that is a
 * bare wildcard ("*", "#", "+") or whose ${...} is not ${thingName}, and
 * default > max validity are EST_ECONFIG naming the field ("policy.actions.
 * publish[0]: ...").
 *
 * Matching a resource R against a pattern P (after ${thingName} in P is
 * replaced by the profile's ThingName, which est_thing_name_valid keeps free
 * of wildcards):
 *   - P not ending in "/*": R must equal P byte for byte.
 *   - P = "<prefix>/*": R must be "<prefix>/" followed by one or more
 *     non-empty segments separated by '/', none containing '*', '?', '#' or
 *     '+' (the AWS IoT policy and MQTT wildcards). So a device may name any
 *     topic under its prefix, but never a wildcard the operator did not
 *     write literally, and never the prefix itself.
 * A resource that is a bare wildcard ("*", "#", "+") is refused whatever the
 * patterns say. Every permission, allow or deny, must name an allowed action
 * and resources that match one of its patterns (a deny outside the device's
 * own namespace would be meaningless); deny entries also need deny_entries.
 * The ThingName must satisfy est_thing_name_valid and a permission must name
 * at least one resource.
 */
#ifndef EST_POLICY_H
#define EST_POLICY_H

#include <stddef.h>

#include <gnutls/x509.h>
#include <jansson.h>

#include "err.h"
#include "key.h"
#include "profile.h"

struct est_policy {
	/* Patterns per action, with ${thingName} unexpanded; an action is
	 * allowed when it has at least one pattern. */
	size_t npatterns[EST_ACT__MAX];
	char **patterns[EST_ACT__MAX];
	int deny_entries;
	unsigned key_types;             /* bit (1u << enum est_key_type) */
	long long default_validity;     /* seconds */
	long long max_validity;         /* seconds */
	size_t max_permissions;
	size_t max_resources;
};

/* The default policy described above, into P (free with est_policy_free). */
int est_policy_default(struct est_policy *p, struct est_error *e);

/* Build P from the JSON object J (NULL: the defaults). Errors are
 * EST_ECONFIG and name the field under "policy.". */
int est_policy_from_json(const json_t *j, struct est_policy *p, struct est_error *e);

/* P as JSON in the shape above (for `server init` to write the default). */
json_t *est_policy_to_json(const struct est_policy *p);

/* Check PROFILE and the CSR's key type KT against P. 0, or EST_EREFUSED
 * with a message naming the rule, ready for a 403 body, e.g.
 *   "policy: publish resource 'topic/*' does not match any allowed pattern
 *    (topic/${thingName}/*)"
 *   "policy: action subscribe is not allowed"
 *   "policy: key type rsa2048 is not allowed (ec-p256, ed25519)"
 *   "policy: 17 permissions, at most 16 allowed"
 * The first violation is reported. Never EST_EDATA: a malformed profile is
 * caught by est_profile_decode before. */
int est_policy_check(const struct est_policy *p, const struct est_profile *profile,
		     enum est_key_type kt, struct est_error *e);

/* The key type of the CSR's public key (EC P-256/P-384, Ed25519, RSA of
 * exactly 2048/3072/4096 bits), or EST_KEY__MAX for anything else (which
 * est_policy_check refuses as "key type <alg>-<bits> is not allowed"). */
enum est_key_type est_policy_crq_key_type(gnutls_x509_crq_t crq);

/* The AWS IoT policy document for PROFILE (the same JSON the AWS backend
 * will attach):
 *   {"Version":"2012-10-17","Statement":[{"Effect":"Allow"|"Deny",
 *     "Action":["iot:Connect"],"Resource":["arn:aws:iot:*:*:client/Dev"]}, ...]}
 * one statement per permission, in profile order. A resource keeps its
 * "client/" or "topic/" prefix as written in the seed config; for subscribe
 * a leading "topic/" becomes "topicfilter/" (AWS IoT checks SUBSCRIBE
 * against topicfilter ARNs). NULL when out of memory. */
json_t *est_policy_iot_document(const struct est_profile *profile);

void est_policy_free(struct est_policy *p);

#endif
