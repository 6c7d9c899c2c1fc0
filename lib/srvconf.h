/* The server's configuration: DIR/config.json (jansson). JSON has no
 * comments, so every key starting with '_' is one and is ignored; any other
 * unknown key is an error, so a typo never silently disables a check.
 * Relative paths are relative to the state directory. */
#ifndef EST_SRVCONF_H
#define EST_SRVCONF_H

#include <stddef.h>

#include <jansson.h>

#include "err.h"
#include "key.h"

#define EST_SRVCONF_FILE "config.json"
#define EST_SRVCONF_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE"

/* How a label's enrollments may authenticate (a bit mask). */
enum est_auth {
	EST_AUTH_SEALED = 1,            /* a sealed CSR under a known enrollment key */
	EST_AUTH_BASIC = 2,             /* HTTP Basic against the credentials file */
	EST_AUTH_CERT = 4,              /* a client certificate from a bootstrap anchor */
};

struct est_label {
	char *name;                     /* "" is the unlabelled path */
	unsigned auth;                  /* enum est_auth bits */
	int manual;                     /* approval "manual": 202 until approved */
	int pop;                        /* challengePassword must hold the channel binding */
	int reenroll;                   /* simplereenroll allowed */
	int serverkeygen;               /* serverkeygen allowed */
	enum est_key_type key_type;     /* what csrattrs asks for, serverkeygen makes */
	char *anchors;                  /* PEM file of bootstrap anchors, or NULL */
	json_t *policy;                 /* this label's policy, or NULL for the global one */
};

struct est_srvconf {
	char *dir;
	char *ca_key, *ca_cert;         /* CA key (file or pkcs11: URI) and certificate */
	char *tls_cert, *tls_key;
	char *keys_dir;                 /* enrollment keys, DIR/<id>.key */
	char *passwd;                   /* HTTP Basic credentials file */
	char *registry, *audit_log;
	char listen[128];
	char priorities[512];
	size_t max_body;
	unsigned timeout, request_timeout, max_connections, retry_after;
	json_t *policy;                 /* the global policy (lib/policy.h format) */
	size_t nlabels;
	struct est_label *labels;
};

/* Load DIR/config.json into C. EST_ECONFIG names the field at fault. */
int est_srvconf_load(const char *dir, struct est_srvconf *c, struct est_error *e);

/* The label named NAME ("" for the unlabelled path), or NULL. */
const struct est_label *est_srvconf_label(const struct est_srvconf *c, const char *name);

/* The commented default configuration `server init` writes, naming the
 * enrollment key id KEYID; a new reference. */
json_t *est_srvconf_default(const char *keyid, long long validity);

void est_srvconf_free(struct est_srvconf *c);

#endif
