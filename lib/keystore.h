/* The enrollment key store: the AES keys that seal CSRs (DESIGN.md 4.3),
 * found by id. An interface: a directory of key files is the embedded
 * default; AWS Secrets Manager will be a second backend. */
#ifndef EST_KEYSTORE_H
#define EST_KEYSTORE_H

#include "err.h"
#include "secret.h"

/* Longest key id accepted. */
#define EST_KEYID_MAX 64

struct est_keystore_ops {
	const char *name;
	/* Copy the 32-byte key named ID into KEY; EST_EREFUSED when unknown. */
	int (*lookup)(void *ctx, const char *id, struct est_secret *key, struct est_error *e);
	void (*close)(void *ctx);
};

struct est_keystore {
	const struct est_keystore_ops *ops;
	void *ctx;
};

/* True when ID is 1-64 characters of [A-Za-z0-9._-], not starting with '.'. */
int est_keyid_valid(const char *id);

/* Open the directory DIR: every "<id>.key" in it is loaded now (a reload
 * opens a new store). A key file readable by group or others, or one that is
 * not 64 hex characters, is EST_ECONFIG naming it. */
int est_keystore_dir_open(const char *dir, struct est_keystore *out, struct est_error *e);

/* Look up ID (an est_env_lookup_fn when CTX is a struct est_keystore *). */
int est_keystore_lookup(void *ks, const char *id, struct est_secret *key, struct est_error *e);

/* Close and free; safe on a zeroed struct. */
void est_keystore_close(struct est_keystore *ks);

#endif
