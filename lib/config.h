/* The client config of DESIGN.md 4.4: the seed's format, accepted as is,
 * with estctl's optional ESTDetails keys. */
#ifndef EST_CONFIG_H
#define EST_CONFIG_H

#include <stddef.h>

#include <jansson.h>

#include "err.h"
#include "profile.h"

struct est_device {
	struct est_profile profile;     /* profile.thing_name is the ThingName */
};

struct est_client_config {
	char *path;                     /* the file it was read from */
	char *url;                      /* ESTAPIURL */
	char *region;                   /* Region */
	char *kv_name;                  /* KV_Name: the enrollment key's id */
	char *cacert;                   /* CACert, resolved against the config's directory */
	char *enrollment_key_file;      /* EnrollmentKeyFile, resolved likewise */
	char *label;                    /* Label */
	char *key_type;                 /* KeyType, as keygen -t */
	char *out_dir;                  /* OutDir, resolved likewise */
	size_t ndevices;
	struct est_device *devices;
	char **warnings;                /* "unknown key ESTDetails.Foo" and the like */
	size_t nwarnings;
};

/* Load and validate PATH. Errors name the field: "Devices[1].IoTDetails.
 * Policies.Publish: expected true, false or null" (EST_EDATA); an unreadable
 * file is EST_ENOINPUT/EST_EIO. Unknown keys become warnings, not errors.
 * The message starts with PATH ("standard input" for "-"); JSON syntax errors
 * read "PATH:LINE:COLUMN: why". Devices must be a non-empty array, ThingNames
 * distinct (ignoring case, as they become directories), ESTAPIURL https://,
 * KeyType one of keygen's asymmetric types. CACert, EnrollmentKeyFile and
 * OutDir are resolved against the config file's directory. */
int est_config_load(const char *path, struct est_client_config *cfg, struct est_error *e);

/* Parse the JSON document in DATA (duplicate keys refused); errors are
 * EST_EDATA as "NAME:LINE:COLUMN: why", comments named as such. */
int est_json_parse(const unsigned char *data, size_t len, const char *name, json_t **out,
		   struct est_error *e);

/* Read PATH ("-" for stdin) and parse it as est_json_parse does. */
int est_json_load_file(const char *path, json_t **out, struct est_error *e);

/* The device named NAME, or NULL. */
const struct est_device *est_config_device(const struct est_client_config *cfg,
					   const char *name);

void est_config_free(struct est_client_config *cfg);

#endif
