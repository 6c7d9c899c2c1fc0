/* The PIN of a PKCS#11 key from a file: RFC 7512's pin-source attribute.
 * A pin-value attribute puts the PIN on the command line and in the server's
 * config.json; a pin-source names a file (mode 0600) whose first line is the
 * PIN, read each time the token asks for it and wiped after. */
#ifndef EST_PIN_H
#define EST_PIN_H

#include <stddef.h>

#include "err.h"
#include "secret.h"

/* Split the pin-source attribute off the pkcs11: URI URL: "file:/PATH",
 * "file:///PATH" or an absolute path, percent-decoded into *PATH, and URL
 * without the attribute into *BARE (both malloc'd). 1 when URL has one;
 * 0 (both NULL) when it has none; EST_EDATA for any other source, two of
 * them, or a pin-value beside it. */
int est_pin_source_split(const char *url, char **bare, char **path, struct est_error *e);

/* Read the PIN, the first line of PATH (without its "\n" or "\r\n"), into
 * PIN. The file must be a regular file, not readable or writable by group or
 * others (EST_ECONFIG otherwise, as ssh does for keys), and the PIN 1 to MAX
 * bytes (EST_EDATA). Missing: EST_ENOINPUT; unreadable: EST_EIO. No message
 * ever contains the PIN. */
int est_pin_file_read(const char *path, size_t max, struct est_secret *pin, struct est_error *e);

/* The user data of est_pin_file_cb: the file, and where a failure is
 * explained (NULL: nowhere). */
struct est_pin_file {
	const char *path;
	struct est_error *e;
};

/* A gnutls_pin_callback_t giving the PIN of the struct est_pin_file DATA.
 * Refuses a second attempt (the token refused the PIN: trying the same one
 * again only brings it closer to locking) and the token's final try (a wrong
 * file in a restart loop would lock it), and never prompts. */
int est_pin_file_cb(void *data, int attempt, const char *token_url, const char *token_label,
		    unsigned flags, char *pin, size_t pin_max);

/* A struct est_pin_file for PATH (e NULL) that lives as long as the process,
 * for a loaded key: the token may ask again at any time, and GnuTLS has no
 * hook to free a key's callback data. One per distinct path; NULL when out
 * of memory. Thread-safe. */
const struct est_pin_file *est_pin_file_keep(const char *path);

#endif
