/* The audit log: one compact JSON object per line, each carrying the SHA-256
 * of the previous line, so that editing, inserting or removing a line breaks
 * the chain at a place est_audit_verify() names.
 *
 * Line format (keys in this order, absent fields omitted):
 *   {"ts":"2025-01-02T03:04:05.678Z","event":"certificate_issued","thing":"DeviceAlpha",
 *    "serial":"4f..","supersedes":"1a..","remote":"127.0.0.1","label":"fleet",
 *    "auth":"sealed","approver":"ops","reason":"...","batch":12,"prev":"<64 hex>"}
 * written with jansson JSON_COMPACT (insertion order, no spaces) and a '\n';
 * "prev" is the SHA-256 (lowercase hex) of the previous line's exact bytes
 * without its newline, 64 zeros on the first line. Each line is at most
 * EST_AUDIT_LINE_MAX bytes.
 *
 * Nothing secret ever reaches the log: the API takes named fields (names,
 * serials, addresses), never a request body, key, password or envelope. The
 * one free-text field, "reason", must be a refusal reason safe to show a
 * client (the same text the server sends in its 4xx body). */
#ifndef EST_AUDIT_H
#define EST_AUDIT_H

#include <stddef.h>

#include "err.h"

#define EST_AUDIT_LINE_MAX 4096

enum est_audit_kind {
	EST_AUDIT_REQUEST_REFUSED,      /* "request_refused" */
	EST_AUDIT_CERT_ISSUED,          /* "certificate_issued" */
	EST_AUDIT_DEVICE_REGISTERED,    /* "device_registered" */
	EST_AUDIT_DEVICE_REVOKED,       /* "device_revoked" */
	EST_AUDIT_DEVICE_RESET,         /* "device_reset" */
	EST_AUDIT_APPROVAL_REQUESTED,   /* "approval_requested" */
	EST_AUDIT_APPROVED,             /* "approved" */
	EST_AUDIT_SERVER_STARTED,       /* "server_started" */
	EST_AUDIT_SERVER_STOPPED,       /* "server_stopped" */
	EST_AUDIT_LOG_REPAIRED,         /* "audit_log_repaired": a torn last line was cut off */
	EST_AUDIT_CERT_UNRETURNED,      /* "certificate_unreturned": registered, never handed out */
	EST_AUDIT_CERT_RETURNED_AGAIN,  /* "certificate_returned_again": a retry by the key's holder */
	EST_AUDIT__MAX
};

/* "request_refused", "certificate_issued", ... */
extern const char *const est_audit_kind_names[EST_AUDIT__MAX];

/* One event. NULL strings and batch 0 are omitted from the line. */
struct est_audit_event {
	enum est_audit_kind kind;
	const char *thing;
	const char *serial;       /* hex serial of the certificate concerned */
	const char *supersedes;   /* re-enrollment: the serial it replaces */
	const char *remote;       /* client address */
	const char *label;        /* EST label ("" for the default path) */
	const char *auth;         /* how the client authenticated: "sealed", "basic:USER", "mtls", "reenroll" */
	const char *approver;     /* approve: who approved */
	const char *reason;       /* refusals: the client-visible reason */
	long long batch;          /* the registry commit batch holding this event (committer only) */
};

/* A sink receives complete events and makes them durable. The file sink is
 * the embedded default; a CloudWatch Logs sink will be a second backend. */
struct est_audit_sink_ops {
	const char *name;
	/* Append EVS[0..N) in order; returns only when they are durable (file:
	 * one write(2) + fsync(2)). On failure nothing of them counts: the file
	 * sink cuts the file back to its previous length. */
	int (*append)(void *ctx, const struct est_audit_event *evs, size_t n, struct est_error *e);
	/* The highest "batch" recorded by the sink (0 if none); for crash recovery. */
	int (*last_batch)(void *ctx, long long *batch, struct est_error *e);
	void (*close)(void *ctx);
};

struct est_audit {
	const struct est_audit_sink_ops *ops;
	void *ctx;
};

/* Open (CREATE: or create, mode 0600) the audit log at PATH for appending.
 * The chain continues from the last line. A final line without a newline
 * (a write torn by a crash, never fsync'd as a whole, so never relied upon)
 * is cut off and an "audit_log_repaired" event recording its length is
 * appended. Any other damage is left for est_audit_verify() to report.
 * Appends take an exclusive flock(2) and re-read the last line when another
 * process (estctl server revoke, ...) appended since, so several processes
 * may share one log. Missing file without CREATE: EST_ENOINPUT. */
int est_audit_open_file(const char *path, int create, struct est_audit *out, struct est_error *e);

/* Append and make durable (see the sink's append); thread-safe. */
int est_audit_append(struct est_audit *a, const struct est_audit_event *evs, size_t n,
		     struct est_error *e);

/* Close and free; safe on a zeroed struct. */
void est_audit_close(struct est_audit *a);

/* Verify the chain of the log at PATH. 0 when every line is a JSON object
 * with "ts", "event" and a "prev" matching the line before it; *LINES is
 * then the number of lines. EST_ENEGATIVE when broken, *LINES the first
 * bad line (1-based) and E's message names it:
 *   "line N: not JSON", "line N: missing ts, event or prev",
 *   "line N: incomplete (no newline at the end)",
 *   "line N: changed, or a line after it removed (line N+1's prev does not match)",
 *   "line 1: prev is not zeros (lines before it removed)".
 * When line N+1's prev does not match line N, line N is named: the usual
 * tampering is an edit of line N. An edit of the very last line that keeps
 * it valid JSON cannot be detected by a chain alone. Other errors:
 * EST_ENOINPUT, EST_EIO. */
int est_audit_verify(const char *path, unsigned long *lines, struct est_error *e);

/* Format one line (no newline) for EV with PREV (64 hex) at time TS_MS
 * (milliseconds since the epoch) into BUF; returns its length or a negative
 * est_err. Exposed for the sinks and tests. */
int est_audit_format(const struct est_audit_event *ev, long long ts_ms, const char *prev,
		     char *buf, size_t bufsize, struct est_error *e);

#endif
