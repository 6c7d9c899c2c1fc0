/* The group committer: makes each issuance durable in the registry AND the
 * audit log before the caller may return the certificate, batching the
 * commits of concurrent requests so that N requests cost one registry commit
 * and one audit fsync instead of N of each.
 *
 * The registry thread takes everything queued (up to EST_COMMIT_BATCH_MAX
 * records) as one batch, then:
 *   1. applies them to the registry in ONE transaction (est_registry_ops.
 *      commit_batch: one savepoint per record, so a takeover refused at commit
 *      time fails only its own record), durable at COMMIT (SQLite WAL with
 *      synchronous=FULL fsyncs the WAL on every commit);
 *   2. appends the batch's audit lines (certificate_issued, device_registered,
 *      certificate_returned_again for EST_COMMIT_RETURN records,
 *      request_refused for records refused at commit time, and queued
 *      audit-only events) with one write(2) and one fsync(2);
 *   3. wakes the waiters.
 * Step 2 runs on a second (audit) thread, pipelined: while it writes and
 * fsyncs batch k (merging every batch ready, up to 8 x EST_COMMIT_BATCH_MAX
 * lines, into that one write), the registry thread commits batch k+1. So a
 * batch costs the longer of the two fsyncs, not their sum. Waiters are only
 * woken after step 2 of their batch. (If batch k's audit write fails after
 * batch k+1 was checked against k's registrations, a record of k+1 may have
 * been refused because of a certificate that is then unreturned: a spurious
 * refusal while the disk is failing, never a spurious issuance.)
 * The order keeps "no certificate the registry does not know": the registry
 * is durable first. If step 2 fails, every issuance of the batch fails (the
 * server answers 500 and returns no certificate) and the committer marks
 * those certificates "unreturned" in the registry (restoring what they
 * superseded), so the device is not locked out by a certificate it never got.
 * A crash between 1 and 2 is repaired the same way at the next start: each
 * batch has a number stored with its certificates and in its audit lines
 * ("batch"), and est_commit_start() unreturns the certificates of batches the
 * audit log never recorded (with a certificate_unreturned line each).
 * A failure in step 1 fails the whole batch; nothing was written. */
#ifndef EST_COMMIT_H
#define EST_COMMIT_H

#include "audit.h"
#include "err.h"
#include "reg.h"

#define EST_COMMIT_BATCH_MAX 256

struct est_committer;

/* Start the committer's two threads on REG and AUDIT. From now on the
 * committer owns REG (its write connection: use another est_registry for
 * reads) until est_commit_stop(); AUDIT is shared (appends are thread-safe).
 * Runs the crash recovery described above first. */
int est_commit_start(struct est_registry *reg, struct est_audit *audit,
		     struct est_committer **out, struct est_error *e);

/* Queue REC and block until its batch is durable in the registry and the
 * audit log. 0: issued, the certificate may be returned. EST_EREFUSED: the
 * registry refused it (takeover, revoked, not current, not approved; E holds
 * the client-safe reason, already audited as request_refused). EST_EIO or
 * EST_EINTERNAL: storage failed, nothing may be returned (500; E's message
 * names files, so it is for the log, not the client). EST_ETEMPFAIL: the
 * database stayed locked by another process past its busy timeout (503).
 * EST_EUNAVAIL after est_commit_stop() began. Thread-safe; REC need only
 * live until return. */
int est_commit_issue(struct est_committer *c, const struct est_commit_rec *rec,
		     struct est_error *e);

/* Queue an audit-only event (refusals, approval_requested, server_started)
 * and block until it is durable. Its "batch" is set by the committer. */
int est_commit_event(struct est_committer *c, const struct est_audit_event *ev,
		     struct est_error *e);

/* Group commit: announce a request that will probably call est_commit_issue
 * or est_commit_event soon (an enrollment whose CSR is being opened, checked
 * and signed). While announced requests are on their way, the registry
 * thread holds a batch back for them, never longer than its last commit
 * took, so concurrent requests share one commit and one fsync. Every
 * est_commit_expect is matched by one est_commit_unexpect, made right
 * before the request's first est_commit_issue/event, or when it ends
 * without one. Thread-safe; durability is unchanged (every reply still
 * waits for its own batch). */
void est_commit_expect(struct est_committer *c);
void est_commit_unexpect(struct est_committer *c);

/* Drain the queue (every queued record is committed and its waiter woken),
 * stop and join the threads, free C. REG and AUDIT are left open. Call it
 * only once no thread will call est_commit_issue/event again (after the
 * server's workers have finished); NULL-safe. */
void est_commit_stop(struct est_committer *c);

/* Batches and records committed so far (for tests and the benchmark). */
void est_commit_stats(struct est_committer *c, unsigned long long *batches,
		      unsigned long long *records);

#endif
