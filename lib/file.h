/* Reading inputs and writing outputs: "-" is stdin/stdout, files are written
 * to a temporary beside the target, fsync'd and renamed (or linked) into place,
 * so a reader never sees half a file and a crash leaves the old one. */
#ifndef EST_FILE_H
#define EST_FILE_H

#include <stdbool.h>
#include <stddef.h>

#include <gnutls/gnutls.h>

#include "err.h"
#include "secret.h"

/* Inputs larger than this are refused as bad data. */
#define EST_FILE_MAX (16u << 20)

/* Read PATH ("-" for stdin) whole into OUT (gnutls_malloc'd, NUL-terminated,
 * the NUL not counted). Missing file: EST_ENOINPUT; too large: EST_EDATA. */
int est_file_read(const char *path, size_t max, gnutls_datum_t *out, struct est_error *e);

/* As est_file_read, into a secret that is wiped when freed. */
int est_file_read_secret(const char *path, size_t max, struct est_secret *out, struct est_error *e);

enum est_write_flags {
	EST_WRITE_EXCL = 1,     /* refuse an existing file (EST_EEXIST) */
	EST_WRITE_PRIVATE = 2,  /* mode 0600 instead of 0644 (less the umask) */
};

/* Write DATA to PATH ("-" for stdout) atomically. With EST_WRITE_EXCL the
 * final step is link(2), so an existing file is never replaced. */
int est_file_write(const char *path, const void *data, size_t len, unsigned flags,
		   struct est_error *e);

/* Write all of DATA to FD, retrying on EINTR and short writes; 0 or -errno. */
int est_write_all(int fd, const void *data, size_t len);

/* The final component of PATH without its last extension, malloc'd
 * ("/etc/est/fleet-key-1.key" -> "fleet-key-1"); NULL when out of memory. */
char *est_path_stem(const char *path);

/* True when PATH names stdin/stdout. */
bool est_path_is_std(const char *path);

#endif
