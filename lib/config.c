#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "file.h"
#include "key.h"

/* A config is a few devices' worth of JSON; anything larger is a mistake. */
#define CONFIG_MAX (4u << 20)

int
est_json_parse(const unsigned char *data, size_t len, const char *name, json_t **out,
	       struct est_error *e)
{
	json_error_t je;
	size_t tl;

	*out = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &je);
	if (*out != NULL)
		return 0;
	/* The seed's README shows // comments; say so rather than "'}' expected". */
	tl = strlen(je.text);
	if (tl >= 8 && strcmp(je.text + tl - 8, "near '/'") == 0)
		return est_fail(e, EST_EDATA, "%s:%d:%d: comments are not allowed in JSON", name,
				je.line, je.column);
	return est_fail(e, EST_EDATA, "%s:%d:%d: %s", name, je.line, je.column, je.text);
}

int
est_json_load_file(const char *path, json_t **out, struct est_error *e)
{
	gnutls_datum_t d = { NULL, 0 };
	int rc;

	*out = NULL;
	if ((rc = est_file_read(path, CONFIG_MAX, &d, e)) < 0)
		return rc;
	rc = est_json_parse(d.data, d.size, est_path_is_std(path) ? "standard input" : path,
			    out, e);
	gnutls_free(d.data);
	return rc;
}

/* PATH as given when absolute, else relative to the config file's directory
 * (the current one for a config read from standard input). */
static char *
resolve(const struct est_client_config *cfg, const char *path)
{
	const char *slash = strrchr(cfg->path, '/');
	size_t dir;
	char *s;

	if (path[0] == '/' || slash == NULL || est_path_is_std(cfg->path))
		return strdup(path);
	dir = (size_t)(slash - cfg->path) + 1;
	if ((s = malloc(dir + strlen(path) + 1)) == NULL)
		return NULL;
	memcpy(s, cfg->path, dir);
	strcpy(s + dir, path);
	return s;
}

/* A key as shown in a warning: JSON keys may hold any character. */
static const char *
printable(const char *k)
{
	size_t i;

	for (i = 0; k[i] != '\0'; i++)
		if (i >= 100 || k[i] < 0x20 || k[i] > 0x7e)
			return "(unprintable key)";
	return k;
}

static int
label_valid(const char *s)
{
	size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-");

	return n >= 1 && n <= 64 && s[n] == '\0' && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int
kv_name_valid(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return 0;
	return i >= 1 && i <= 128;
}

/* One string member of ESTDetails, checked by its kind. */
static int
details_value(struct est_client_config *cfg, const char *key, const json_t *v, char **dst,
	      int kind, struct est_error *e)
{
	enum est_key_type t = EST_KEY__MAX;
	const char *s;

	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return est_fail(e, EST_EDATA, "ESTDetails.%s: expected a non-empty string", key);
	s = json_string_value(v);
	if (kind == 'u' && strncmp(s, "https://", 8) != 0)
		return est_fail(e, EST_EDATA, "ESTDetails.%s: expected an https:// URL", key);
	if (kind == 'k' && !kv_name_valid(s))
		return est_fail(e, EST_EDATA, "ESTDetails.%s: expected 1-128 printable characters "
				"without spaces", key);
	if (kind == 'l' && !label_valid(s))
		return est_fail(e, EST_EDATA, "ESTDetails.%s: expected 1-64 characters of "
				"A-Z a-z 0-9 . _ ~ -", key);
	if (kind == 't' && (est_key_type_parse(s, &t, e) < 0 || t == EST_KEY_AES256)) {
		if (t == EST_KEY_AES256)
			est_fail(e, EST_EDATA, "'aes256' is not a device key type");
		e->code = EST_EDATA;
		est_error_prefix(e, "ESTDetails.%s", key);
		return -EST_EDATA;
	}
	*dst = kind == 'p' ? resolve(cfg, s) : strdup(s);
	return *dst == NULL ? est_fail(e, EST_EINTERNAL, "out of memory") : 0;
}

static int
load_details(struct est_client_config *cfg, const json_t *d, struct est_error *e)
{
	const struct {
		const char *key;
		size_t off;
		int kind;       /* u URL, k key id, p path, l label, t key type, s string */
	} keys[] = {
		{ "ESTAPIURL", offsetof(struct est_client_config, url), 'u' },
		{ "Region", offsetof(struct est_client_config, region), 's' },
		{ "KV_Name", offsetof(struct est_client_config, kv_name), 'k' },
		{ "CACert", offsetof(struct est_client_config, cacert), 'p' },
		{ "EnrollmentKeyFile", offsetof(struct est_client_config, enrollment_key_file), 'p' },
		{ "Label", offsetof(struct est_client_config, label), 'l' },
		{ "KeyType", offsetof(struct est_client_config, key_type), 't' },
		{ "OutDir", offsetof(struct est_client_config, out_dir), 'p' },
	};
	const char *k;
	json_t *v;
	size_t i;
	int rc;

	if (d == NULL)
		return 0;
	if (!json_is_object(d))
		return est_fail(e, EST_EDATA, "ESTDetails: expected an object");
	json_object_foreach((json_t *)d, k, v) {
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (strcmp(k, keys[i].key) == 0)
				break;
		if (i == sizeof(keys) / sizeof(keys[0])) {
			if (est_strv_addf(&cfg->warnings, &cfg->nwarnings, "unknown key ESTDetails.%s", printable(k)) < 0)
				return est_fail(e, EST_EINTERNAL, "out of memory");
			continue;
		}
		rc = details_value(cfg, k, v, (char **)((char *)cfg + keys[i].off), keys[i].kind, e);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int
load_device(struct est_client_config *cfg, size_t i, const json_t *dev, struct est_error *e)
{
	char where[48];
	const char *k;
	json_t *v;
	size_t j;
	int rc;

	if (!json_is_object(dev))
		return est_fail(e, EST_EDATA, "Devices[%zu]: expected an object", i);
	json_object_foreach((json_t *)dev, k, v) {
		if (strcmp(k, "IoTDetails") != 0 &&
		    est_strv_addf(&cfg->warnings, &cfg->nwarnings, "unknown key Devices[%zu].%s", i, printable(k)) < 0)
			return est_fail(e, EST_EINTERNAL, "out of memory");
	}
	snprintf(where, sizeof(where), "Devices[%zu].IoTDetails", i);
	if ((v = json_object_get(dev, "IoTDetails")) == NULL)
		return est_fail(e, EST_EDATA, "%s: missing", where);
	if ((rc = est_profile_from_iotdetails(v, where, &cfg->devices[i].profile, e)) < 0)
		return rc;
	cfg->ndevices++;
	if (est_profile_iotdetails_warnings(v, where, &cfg->warnings, &cfg->nwarnings) < 0)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	/* Case-insensitively: each device lands in <OutDir>/<ThingName>/. */
	for (j = 0; j < i; j++)
		if (strcasecmp(cfg->devices[j].profile.thing_name,
			       cfg->devices[i].profile.thing_name) == 0)
			return est_fail(e, EST_EDATA, "%s.ThingName: '%s' is already used by "
					"Devices[%zu]", where, cfg->devices[i].profile.thing_name, j);
	return 0;
}

static int
load_devices(struct est_client_config *cfg, const json_t *devs, struct est_error *e)
{
	size_t i;
	int rc;

	if (devs == NULL)
		return est_fail(e, EST_EDATA, "Devices: missing");
	if (!json_is_array(devs) || json_array_size(devs) == 0)
		return est_fail(e, EST_EDATA, "Devices: expected a non-empty array");
	cfg->devices = calloc(json_array_size(devs), sizeof(*cfg->devices));
	if (cfg->devices == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	for (i = 0; i < json_array_size(devs); i++)
		if ((rc = load_device(cfg, i, json_array_get(devs, i), e)) < 0)
			return rc;
	return 0;
}

static int
load_root(struct est_client_config *cfg, const json_t *root, struct est_error *e)
{
	const char *k;
	json_t *v;
	int rc;

	if (!json_is_object(root))
		return est_fail(e, EST_EDATA, "expected a JSON object at the top");
	json_object_foreach((json_t *)root, k, v) {
		if (strcmp(k, "ESTDetails") != 0 && strcmp(k, "Devices") != 0 &&
		    est_strv_addf(&cfg->warnings, &cfg->nwarnings, "unknown key %s", printable(k)) < 0)
			return est_fail(e, EST_EINTERNAL, "out of memory");
	}
	if ((rc = load_details(cfg, json_object_get(root, "ESTDetails"), e)) < 0)
		return rc;
	return load_devices(cfg, json_object_get(root, "Devices"), e);
}

int
est_config_load(const char *path, struct est_client_config *cfg, struct est_error *e)
{
	json_t *root = NULL;
	int rc;

	memset(cfg, 0, sizeof(*cfg));
	if ((cfg->path = strdup(path)) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	if ((rc = est_json_load_file(path, &root, e)) < 0)
		goto out;
	if ((rc = load_root(cfg, root, e)) < 0)
		est_error_prefix(e, "%s", est_path_is_std(path) ? "standard input" : path);
out:
	json_decref(root);
	if (rc < 0)
		est_config_free(cfg);
	return rc;
}

const struct est_device *
est_config_device(const struct est_client_config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->ndevices; i++)
		if (strcmp(cfg->devices[i].profile.thing_name, name) == 0)
			return &cfg->devices[i];
	return NULL;
}

void
est_config_free(struct est_client_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->ndevices; i++)
		est_profile_free(&cfg->devices[i].profile);
	for (i = 0; i < cfg->nwarnings; i++)
		free(cfg->warnings[i]);
	free(cfg->warnings);
	free(cfg->devices);
	free(cfg->path);
	free(cfg->url);
	free(cfg->region);
	free(cfg->kv_name);
	free(cfg->cacert);
	free(cfg->enrollment_key_file);
	free(cfg->label);
	free(cfg->key_type);
	free(cfg->out_dir);
	memset(cfg, 0, sizeof(*cfg));
}
