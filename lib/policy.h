/* The server's policy for device profiles (DESIGN.md 4.2): the CSR requests,
 * the server decides. Loaded from the "policy" object of the server config;
 * the JSON shape, its defaults and an example are in docs/policy.md (kept
 * out of this comment: the patterns hold slash-star).
 *
 * Matching a resource R against a pattern P (after ${thingName} in P is
 * replaced by the profile's ThingName, which est_thing_name_valid keeps free
 * of wildcards):
 *   - P not ending in a '/' and '*': R must equal P byte for byte (so a '*',
 *     '#' or '+' in R only passes where the operator wrote it literally).
 *   - P = "<prefix>/" + '*': R must be "<prefix>/" followed by one or more
 *     non-empty segments separated by '/', none containing '*', '?', '#' or
 *     '+' (the AWS IoT policy and MQTT wildcards): any topic under the
 *     prefix, never the prefix itself, never a wildcard.
 * A resource that is a bare wildcard ("*", "#", "+") is refused whatever the
 * patterns say. Every permission, allow or deny, must name an allowed action
 * and resources that match one of its patterns (a deny outside the device's
 * own namespace would be meaningless); deny entries also need deny_entries.
 * The ThingName must satisfy est_thing_name_valid and a permission must name
 * at least one resource. max_permissions caps the profile's entries and
 * max_resources the resources of all entries together.
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
	size_t max_permissions;         /* entries in a profile */
	size_t max_resources;           /* resources over all entries */
};

/* The default policy described above, into P (free with est_policy_free). */
int est_policy_default(struct est_policy *p, struct est_error *e);

/* Build P from the JSON object J (NULL: the defaults). Errors are
 * EST_ECONFIG and name the field under "policy.". */
int est_policy_from_json(const json_t *j, struct est_policy *p, struct est_error *e);

/* P as JSON in the shape above (for `server init` to write the default). */
json_t *est_policy_to_json(const struct est_policy *p);

/* Check PROFILE and the CSR's key type KT against P. 0, or EST_EREFUSED
 * with a one-line message naming the rule, ready for a 403 body, e.g.
 *   "policy: publish resource 'topic/x' does not match any allowed pattern
 *    (client/${thingName})"
 *   "policy: action subscribe is not allowed"
 *   "policy: key type rsa2048 is not allowed (ec-p256, ed25519)"
 *   "policy: 17 permissions, at most 16 allowed"
 * The first violation is reported. Never EST_EDATA: a malformed profile is
 * caught by est_profile_decode before. */
int est_policy_check(const struct est_policy *p, const struct est_profile *profile,
		     enum est_key_type kt, struct est_error *e);

/* The key type of the CSR's public key (EC P-256/P-384, Ed25519, RSA of
 * exactly 2048/3072/4096 bits), or EST_KEY__MAX for anything else (which
 * est_policy_check refuses as "key type unknown is not allowed (...)"). */
enum est_key_type est_policy_crq_key_type(gnutls_x509_crq_t crq);

/* The AWS IoT policy document for PROFILE (the same JSON the AWS backend
 * will attach):
 *   {"Version":"2012-10-17","Statement":[{"Effect":"Allow"|"Deny",
 *     "Action":["iot:Connect"],"Resource":["arn:aws:iot:<any>:<any>:client/Dev"]}, ...]}
 * where <any> is a literal '*' (any region, any account).
 * one statement per permission, in profile order. A resource keeps its
 * "client/" or "topic/" prefix as written in the seed config; for subscribe
 * a leading "topic/" becomes "topicfilter/" (AWS IoT checks SUBSCRIBE
 * against topicfilter ARNs). NULL when out of memory. */
json_t *est_policy_iot_document(const struct est_profile *profile);

void est_policy_free(struct est_policy *p);

#endif
