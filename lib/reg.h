/* The device registry: devices, their certificates, and manual approvals.
 * An interface with one backend per file: lib/reg_sqlite.c (embedded
 * default, SQLite in WAL mode); AWS IoT Core will be a second backend.
 *
 * Device states (devices.status):
 *   active   registered; holds at most one active certificate (the current one)
 *   revoked  refused for good: no enrollment or re-enrollment until an operator resets it
 *   reset    an operator reset it (or an issuance was rolled back): a NEW key may enroll;
 *            the row and the certificate history are kept for `server show`
 * Certificate states (certificates.status):
 *   active      the device's current certificate
 *   superseded  replaced by a re-enrollment (or by an operator issuance)
 *   revoked     revoked with its device, or by a reset (a reset revokes every active cert)
 *   unreturned  registered, but the issuance failed after the registry commit (audit
 *               write failed, or a crash before the audit fsync): never handed out
 *
 * Thread safety: one struct est_registry may be used from several threads; the
 * SQLite backend serializes calls on it with a mutex. Open one registry per
 * thread for parallel reads (WAL lets readers run beside the one writer).
 * Several processes may open the same database (busy_timeout 5 s). */
#ifndef EST_REG_H
#define EST_REG_H

#include <stddef.h>
#include <time.h>

#include "err.h"
#include "profile.h"

#define EST_SERIAL_HEX_MAX 40   /* 20-byte serials */
#define EST_SHA256_HEX 64

enum est_dev_status { EST_DEV_NONE, EST_DEV_ACTIVE, EST_DEV_REVOKED, EST_DEV_RESET,
		      EST_DEV__MAX };
enum est_cert_status { EST_CERT_NONE, EST_CERT_ACTIVE, EST_CERT_SUPERSEDED, EST_CERT_REVOKED,
		       EST_CERT_UNRETURNED, EST_CERT__MAX };
enum est_approval { EST_APPROVAL_NONE, EST_APPROVAL_PENDING, EST_APPROVAL_APPROVED,
		    EST_APPROVAL__MAX };

/* "none", "active", "revoked", "reset" / "none", "active", "superseded", ... /
 * "none", "pending", "approved" */
extern const char *const est_dev_status_names[EST_DEV__MAX];
extern const char *const est_cert_status_names[EST_CERT__MAX];
extern const char *const est_approval_names[EST_APPROVAL__MAX];

struct est_reg_cert {
	char serial_hex[EST_SERIAL_HEX_MAX + 1];
	char thing_name[EST_THING_NAME_MAX + 1];
	time_t not_before, not_after, issued_at;
	char key_sha256[EST_SHA256_HEX + 1];
	enum est_cert_status status;
	char supersedes[EST_SERIAL_HEX_MAX + 1];   /* "" when none */
};

struct est_reg_device {
	char thing_name[EST_THING_NAME_MAX + 1];
	enum est_dev_status status;
	time_t created, updated;
	/* The current (active) certificate; cert.serial_hex is "" when none. */
	struct est_reg_cert cert;
	/* Only filled by show (malloc'd, free with est_reg_device_clear); NULL in list. */
	char *profile_json;
	char *iot_policy_json;
};

/* ---- the commit record: what one issuance writes, applied by the committer ---- */

enum est_commit_mode {
	/* A new device, or one an operator reset: refused with EST_EREFUSED when
	 * the thing is active ("thing 'X' is already registered") or revoked
	 * ("thing 'X' is revoked"). Registers the device, the cert active. */
	EST_COMMIT_NEW,
	/* Re-enrollment authenticated by CURRENT_SERIAL: refused unless the device
	 * is active and CURRENT_SERIAL is its active certificate ("thing 'X':
	 * certificate S is not its current certificate"); S becomes superseded,
	 * the new cert active, profile and policy replaced. */
	EST_COMMIT_REENROLL,
	/* Issued on an operator's authority: like NEW, but an active device is
	 * taken over (its active certs become superseded). A revoked device is
	 * still refused: revocation is only undone by a reset. */
	EST_COMMIT_OPERATOR,
	/* A NEW enrollment retried by the holder of the thing's current key (a
	 * client killed before it kept the reply): nothing is written, the
	 * current certificate is handed out again. Refused like NEW ("thing 'X'
	 * is already registered") unless the device is active, CURRENT_SERIAL is
	 * its active certificate, cert.key_sha256 is that certificate's key and
	 * PROFILE_JSON is byte for byte the registered profile; "thing 'X' is
	 * revoked" when revoked. cert.serial_hex = CURRENT_SERIAL, cert.pem unused. */
	EST_COMMIT_RETURN,
	EST_COMMIT__MAX
};

struct est_commit_cert {
	const char *serial_hex;      /* lowercase hex, no colons */
	time_t not_before, not_after;
	const char *key_sha256;      /* hex SHA-256 of the SubjectPublicKeyInfo DER */
	const char *pem;             /* NUL-terminated */
};

struct est_commit_rec {
	enum est_commit_mode mode;
	const char *thing_name;
	const char *profile_json;    /* the validated profile, as JSON text */
	const char *iot_policy_json; /* the AWS IoT policy document generated from it */
	struct est_commit_cert cert;
	const char *current_serial;  /* REENROLL: the certificate the client presented */
	/* The label needs manual approval: refused unless the thing's approval is
	 * approved ("thing 'X' is not approved"); the approval is consumed. */
	int consume_approval;
	/* For the audit lines (see audit.h); none of them secret. */
	const char *remote, *label, *auth;
};

/* ---- the backend interface ---- */

typedef int (*est_reg_device_cb)(const struct est_reg_device *dev, void *arg);
typedef int (*est_reg_cert_cb)(const struct est_reg_cert *cert, void *arg);

/* Outcome of one record of a batch. */
struct est_reg_outcome {
	int rc;                          /* 0 or -EST_EREFUSED (then err holds the reason) */
	struct est_error err;
	int registered;                  /* 1: the device was (re)registered by this record */
	char superseded[EST_SERIAL_HEX_MAX + 1];  /* the serial it superseded, "" if none */
};

struct est_registry_ops {
	const char *name;
	/* The device's state; EST_DEV_NONE (dev zeroed but for the name) when unknown. */
	int (*device_get)(void *ctx, const char *thing, struct est_reg_device *dev,
			  struct est_error *e);
	/* A certificate's row; EST_CERT_NONE (cert zeroed) when unknown. */
	int (*cert_get)(void *ctx, const char *serial_hex, struct est_reg_cert *cert,
			struct est_error *e);
	/* Every device (EXPIRING_BEFORE 0), or the active devices whose current
	 * certificate's notAfter is before EXPIRING_BEFORE, by name; the callback's
	 * nonzero return stops the walk and is returned. */
	int (*list)(void *ctx, time_t expiring_before, est_reg_device_cb cb, void *arg,
		    struct est_error *e);
	/* DEV with profile and policy, then every certificate of THING, newest
	 * first, through CB. Unknown thing: EST_ENOINPUT "thing 'X' is not registered". */
	int (*show)(void *ctx, const char *thing, struct est_reg_device *dev, est_reg_cert_cb cb,
		    void *arg, struct est_error *e);
	/* Revoke the device and its active certificates. Unknown: EST_ENOINPUT;
	 * already revoked: 0 (idempotent). */
	int (*revoke)(void *ctx, const char *thing, struct est_error *e);
	/* Operator reset: the device goes to "reset" (a new key may enroll as
	 * NEW), its active certificates are revoked, its approval cleared, the
	 * history kept. Resets a revoked device too. Unknown: EST_ENOINPUT. */
	int (*reset)(void *ctx, const char *thing, struct est_error *e);
	/* Record a pending approval for THING unless one exists; *STATE is the
	 * state after the call. */
	int (*approval_request)(void *ctx, const char *thing, enum est_approval *state,
				struct est_error *e);
	int (*approval_state)(void *ctx, const char *thing, enum est_approval *state,
			      struct est_error *e);
	/* Approve THING (pending or not yet requested) as APPROVER. */
	int (*approve)(void *ctx, const char *thing, const char *approver, struct est_error *e);
	/* Apply RECS[0..N) in ONE durable transaction (batch number BATCH stored
	 * with each certificate), each record checked and written atomically
	 * (its own savepoint): a refused record (OUT[i].rc) does not affect the
	 * others. A negative return (storage failure) means nothing was written. */
	int (*commit_batch)(void *ctx, const struct est_commit_rec *const *recs, size_t n,
			    long long batch, struct est_reg_outcome *out, struct est_error *e);
	/* Undo the issuance of SERIALS (their batch was never made durable in the
	 * audit log): each becomes "unreturned", the cert it superseded active
	 * again, and a device left without an active cert goes to "reset". */
	int (*unreturn)(void *ctx, const char *const *serials, size_t n, struct est_error *e);
	/* The highest batch number stored, and the serials (malloc'd array of
	 * malloc'd strings) of active/superseded certificates with a batch above
	 * AFTER: what a crash between registry commit and audit fsync left. */
	int (*batches_after)(void *ctx, long long after, long long *max_batch, char ***serials,
			     size_t *n, struct est_error *e);
	void (*close)(void *ctx);
	/* The stored PEM of a certificate (malloc'd in *PEM); unknown serial:
	 * EST_ENOINPUT "certificate S is not in the registry". */
	int (*cert_pem)(void *ctx, const char *serial_hex, char **pem, struct est_error *e);
};

struct est_registry {
	const struct est_registry_ops *ops;
	void *ctx;
};

/* Open the SQLite registry at PATH (CREATE: create it and its schema, mode
 * 0600, if missing; otherwise a missing file is EST_ENOINPUT). WAL,
 * synchronous=FULL, foreign keys, busy_timeout 5000 ms. A database whose
 * PRAGMA user_version is newer than this build's (1) is refused: EST_ECONFIG
 * "PATH: registry schema version N is newer than this estctl supports (1)". */
int est_reg_sqlite_open(const char *path, int create, struct est_registry *out,
			struct est_error *e);

/* Close and free; safe on a zeroed struct. */
void est_reg_close(struct est_registry *r);

/* Free the malloc'd members of DEV and zero it. */
void est_reg_device_clear(struct est_reg_device *dev);

#endif
