/* HTTP Basic credentials for the server: a file of lines
 *   USER:$pbkdf2-sha256$ITERATIONS$SALT$HASH
 * (SALT 16 random bytes, HASH 32 bytes, both base64), mode 0600; never a
 * plaintext password. A verified password is remembered for the life of the
 * loaded set as an HMAC under a per-process random key, so a device
 * enrolling repeatedly costs one PBKDF2 rather than one per request; a wrong
 * password always costs the full PBKDF2. */
#ifndef EST_PASSWD_H
#define EST_PASSWD_H

#include <stddef.h>

#include "err.h"
#include "secret.h"

#define EST_PASSWD_ITERATIONS 100000
#define EST_USER_MAX 64

struct est_passwd;

/* True when USER is 1-64 characters of [A-Za-z0-9._@-]. */
int est_passwd_user_valid(const char *user);

/* Load PATH; a missing file is an empty set. EST_ECONFIG names a bad line. */
int est_passwd_load(const char *path, struct est_passwd **out, struct est_error *e);

/* Check the Authorization header value AUTH ("Basic <base64 user:password>").
 * 0 with the user name in USER; EST_EREFUSED for an unknown user or a wrong
 * password (the same time either way); EST_EDATA for a malformed header.
 * Thread-safe. */
int est_passwd_check(struct est_passwd *pw, const char *auth, char user[EST_USER_MAX + 1],
		     struct est_error *e);

/* Add or replace USER's line in PATH (created 0600 when missing). */
int est_passwd_set(const char *path, const char *user, const struct est_secret *password,
		   unsigned iterations, struct est_error *e);

void est_passwd_free(struct est_passwd *pw);

#endif
