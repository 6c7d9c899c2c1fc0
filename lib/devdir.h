/* A device directory as `estctl enroll --config` writes it and `estctl
 * rotate` renews it: key.pem (0600), cert.pem, chain.pem, ca.pem, and
 * est.json recording where the certificate came from (server, label, trust in
 * the server, the device profile), since a renewal request must say all of
 * that again and the certificate alone does not. */
#ifndef EST_DEVDIR_H
#define EST_DEVDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <gnutls/gnutls.h>

#include "err.h"
#include "profile.h"
#include "secret.h"

#define EST_DEVDIR_META "est.json"
/* The copy of the enrollment's TLS trust anchors, when it had its own. */
#define EST_DEVDIR_SERVER_CA "server-ca.pem"

struct est_devdir_meta {
	char *url;              /* ESTAPIURL */
	char *label;            /* the CA label, or NULL */
	char *cacert;           /* TLS trust anchors, relative to the directory, or NULL */
	bool system_store;      /* the server's TLS certificate is checked against the system store */
	bool have_profile;
	struct est_profile profile;
};

/* Write M as DIR/est.json: {"url","label","cacert","system_store",
 * "IoTDetails"} with the profile in the seed config's own IoTDetails form
 * (Topics as arrays), so an operator can read and edit it. */
int est_devdir_meta_write(const char *dir, const struct est_devdir_meta *m, struct est_error *e);

/* Read DIR/est.json into M: 1 when read, 0 when there is none (M zeroed),
 * EST_EDATA naming the field when it is malformed. */
int est_devdir_meta_read(const char *dir, struct est_devdir_meta *m, struct est_error *e);

void est_devdir_meta_free(struct est_devdir_meta *m);

/* When a certificate valid from NOT_BEFORE to NOT_AFTER is due for renewal.
 * The window opens at START: NOT_AFTER - BEFORE when BEFORE >= 0, otherwise
 * NOT_BEFORE + AT * lifetime (0 <= AT < 1). The device's jitter J = H mod
 * (M + 1) seconds, with H the first 8 bytes (big-endian) of SHA-256 of the
 * certificate's serial number (SERIAL, LEN: its DER content octets, as
 * gnutls_x509_crt_get_serial returns them)
 * and M = min(lifetime / 10, (NOT_AFTER - START) / 2), 0 when START is not
 * before NOT_AFTER: so a fleet spreads over a tenth of the lifetime and the
 * jitter never uses more than half of what is left of the window. Returns
 * START + J. */
time_t est_devdir_due(time_t not_before, time_t not_after, double at, long long before,
		      const unsigned char *serial, size_t len);

/* Finish or undo a renewal that a crash interrupted, before DIR is used.
 * The order of est_devdir_swap makes cert.pem.new the marker of a complete
 * new set: without it, leftover key.pem.new / chain.pem.new (and est_file_write
 * temporaries) are removed; with it, the swap is completed. *DID is 0 when
 * there was nothing to do, 1 when a renewal was completed, 2 when leftovers
 * were removed. A cert.pem.new matching neither key is EST_EDATA. */
int est_devdir_recover(const char *dir, int *did, struct est_error *e);

/* Put a renewed certificate in place, keeping the previous pair as
 * key.pem.prev and cert.pem.prev: (1) KEY_PEM (NULL: the key stays) to
 * key.pem.new (0600), CHAIN_PEM to chain.pem.new, then CERT_PEM to
 * cert.pem.new, each fsync'd; (2) key.pem and cert.pem hard-linked to
 * key.pem.prev and cert.pem.prev (through a temporary and a rename); (3)
 * key.pem.new, chain.pem.new, cert.pem.new renamed over key.pem, chain.pem,
 * cert.pem, in that order, and DIR fsync'd. At every point one matching pair
 * exists under known names and est_devdir_recover completes the swap. */
int est_devdir_swap(const char *dir, const struct est_secret *key_pem,
		    const gnutls_datum_t *cert_pem, const gnutls_datum_t *chain_pem,
		    struct est_error *e);

/* DIR/NAME, malloc'd (NULL when out of memory). */
char *est_devdir_path(const char *dir, const char *name);

#endif
