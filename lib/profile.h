/* The device profile of DESIGN.md 4.2: a ThingName and the IoT permissions it
 * asks for, carried in the CSR and copied into the certificate. */
#ifndef EST_PROFILE_H
#define EST_PROFILE_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>

#include <gnutls/gnutls.h>
#include <jansson.h>

#include "err.h"

#define EST_PROFILE_OID "2.25.335185497663826327032788806889900675368"
/* The profile OID's DER (tag, length, arcs), as OpenSSL encodes it. GnuTLS
 * cannot encode or decode its 128-bit arc (docs/DECISIONS.md), so estctl
 * writes and matches it as bytes. */
#define EST_PROFILE_OID_DER_LEN 22
extern const unsigned char est_profile_oid_der[EST_PROFILE_OID_DER_LEN];
#define EST_LEGACY_PROFILE_OID "0.5.100.101.105.116.115"
#define EST_THING_NAME_MAX 128

/* Caps on what a profile may hold (decode refuses more): one permission per
 * action, EST_PROFILE_MAX_RESOURCES resources of 1..EST_PROFILE_MAX_RESOURCE_LEN
 * bytes each (UTF-8, no control characters), EST_PROFILE_DER_MAX bytes of DER. */
#define EST_PROFILE_MAX_PERMISSIONS 64
#define EST_PROFILE_MAX_RESOURCES 64
#define EST_PROFILE_MAX_RESOURCE_LEN 256
#define EST_PROFILE_DER_MAX (96u << 10)

enum est_action { EST_ACT_CONNECT, EST_ACT_PUBLISH, EST_ACT_RECEIVE, EST_ACT_SUBSCRIBE,
		  EST_ACT__MAX };
enum est_effect { EST_EFFECT_ALLOW, EST_EFFECT_DENY, EST_EFFECT__MAX };

/* "connect", "publish", ...; "Connect", "Publish", ... as the seed config spells them. */
extern const char *const est_action_names[EST_ACT__MAX];
extern const char *const est_action_config_names[EST_ACT__MAX];
extern const char *const est_effect_names[EST_EFFECT__MAX];

struct est_permission {
	enum est_action action;
	enum est_effect effect;
	size_t nresources;
	char **resources;
};

struct est_profile {
	long version;                   /* 1 */
	char *thing_name;
	size_t npermissions;
	struct est_permission *permissions;
};

/* True when NAME is 1-128 characters of [A-Za-z0-9:_-] (safe as a path). */
bool est_thing_name_valid(const char *name);

/* DER of the DeviceProfile (libtasn1, lib/profile.asn) into OUT (gnutls_malloc'd).
 * Permissions are written in action order (connect, publish, receive,
 * subscribe) whatever their order in P, so the encoding is deterministic;
 * an invalid profile (see est_profile_decode) is refused with EST_EDATA. */
int est_profile_encode(const struct est_profile *p, gnutls_datum_t *out, struct est_error *e);

/* Decode DER into P; malformed or oversized input fails with EST_EDATA, as
 * does anything but canonical DER of a valid profile: version 1, a valid
 * ThingName, actions in order and at most once, known enum values, resources
 * within the caps above, no trailing data. P is zeroed on failure. */
int est_profile_decode(const unsigned char *der, size_t len, struct est_profile *p,
		       struct est_error *e);

/* Build P from a seed config's IoTDetails object; errors name the field
 * relative to WHERE (e.g. "Devices[1].IoTDetails"). Policies.<Action> true
 * is allow, false deny, null or absent no entry; an entry takes its resources
 * from Topics.<Action> (an object of strings as in the seed, or an array) and
 * is refused without at least one. Unknown keys are ignored here: see
 * est_profile_iotdetails_warnings. */
int est_profile_from_iotdetails(const json_t *iot, const char *where, struct est_profile *p,
				struct est_error *e);

/* Append to *WARNINGS (*N of them, each malloc'd) what the IoTDetails object
 * IOT holds that est_profile_from_iotdetails ignores: unknown keys ("unknown
 * key WHERE.Foo") and Topics of actions whose policy is null or absent.
 * 0, or -EST_EINTERNAL when out of memory. */
int est_profile_iotdetails_warnings(const json_t *iot, const char *where, char ***warnings,
				    size_t *n);

/* Read the seed's legacy extension (raw UTF-8 JSON of IoTDetails). */
int est_profile_from_legacy(const unsigned char *json, size_t len, struct est_profile *p,
			    struct est_error *e);

/* {"version":1,"thing_name":..,"permissions":[{"action","effect","resources"}]} */
json_t *est_profile_to_json(const struct est_profile *p);

/* Human-readable lines for verify's text output. */
int est_profile_print(const struct est_profile *p, FILE *f);

void est_profile_free(struct est_profile *p);

#endif
