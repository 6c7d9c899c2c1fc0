#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "commit.h"

/* A request waiting for its batch; lives on the waiter's stack. */
struct item {
	const struct est_commit_rec *rec;     /* NULL: an audit-only event */
	const struct est_audit_event *ev;
	int done, rc;
	struct est_error err;
	struct item *next;
};

struct est_committer {
	pthread_mutex_t mu;
	pthread_cond_t work, done;
	struct item *head, *tail;
	int stopping;
	unsigned waiters;           /* threads inside submit(): stop waits for them */
	pthread_t thread;
	struct est_registry *reg;
	struct est_audit *audit;
	unsigned long long nbatches, nrecords;
	/* Only the committer thread touches these. */
	long long batch;
	struct item *items[EST_COMMIT_BATCH_MAX];
	const struct est_commit_rec *recs[EST_COMMIT_BATCH_MAX];
	struct est_reg_outcome outs[EST_COMMIT_BATCH_MAX];
	const char *issued[EST_COMMIT_BATCH_MAX];
	struct est_audit_event evs[2 * EST_COMMIT_BATCH_MAX];
};

static const char unreturned_reason[] = "issuance not completed: the audit log did not record it";

/* Step 1: the registry transaction; the records' outcomes land in c->outs. */
static void
apply_records(struct est_committer *c, size_t n, size_t *nrec)
{
	struct est_error err = { 0 };
	size_t i, k = 0;
	int rc;

	for (i = 0; i < n; i++)
		if (c->items[i]->rec != NULL)
			c->recs[k++] = c->items[i]->rec;
	*nrec = k;
	if (k == 0)
		return;
	rc = c->reg->ops->commit_batch(c->reg->ctx, c->recs, k, c->batch, c->outs, &err);
	for (i = 0, k = 0; i < n; i++) {
		if (c->items[i]->rec == NULL)
			continue;
		if (rc < 0) {
			/* Nothing was written: mark the outcome so no audit line is made. */
			c->outs[k].rc = rc;
			c->outs[k].err = err;
			c->items[i]->rc = rc;
			c->items[i]->err = err;
		} else {
			c->items[i]->rc = c->outs[k].rc;
			c->items[i]->err = c->outs[k].err;
		}
		k++;
	}
}

/* The audit lines of one applied record; returns how many were added. */
static size_t
record_events(struct est_committer *c, const struct est_commit_rec *rec,
	      const struct est_reg_outcome *out, struct est_audit_event *ev)
{
	struct est_audit_event base = {
		.thing = rec->thing_name, .remote = rec->remote, .label = rec->label,
		.auth = rec->auth, .batch = c->batch,
	};
	size_t n = 0;

	if (out->rc != 0) {
		ev[n] = base;
		ev[n].kind = EST_AUDIT_REQUEST_REFUSED;
		ev[n++].reason = out->err.msg;
		return n;
	}
	base.serial = rec->cert.serial_hex;
	if (out->registered) {
		ev[n] = base;
		ev[n++].kind = EST_AUDIT_DEVICE_REGISTERED;
	}
	ev[n] = base;
	ev[n].kind = EST_AUDIT_CERT_ISSUED;
	ev[n++].supersedes = out->superseded[0] != '\0' ? out->superseded : NULL;
	return n;
}

/* Steps 2 and 3's preparation: the batch's audit lines in queue order, then
 * one durable append. On failure every item fails and the certificates the
 * registry already holds are unreturned. */
static void
audit_batch(struct est_committer *c, size_t n)
{
	struct est_error err = { 0 };
	size_t i, k = 0, nev = 0, nissued = 0;
	int rc;

	for (i = 0; i < n; i++) {
		struct item *it = c->items[i];

		if (it->rec == NULL) {
			c->evs[nev] = *it->ev;
			c->evs[nev++].batch = c->batch;
			continue;
		}
		if (c->outs[k].rc == 0)
			c->issued[nissued++] = it->rec->cert.serial_hex;
		if (c->outs[k].rc == 0 || c->outs[k].rc == -EST_EREFUSED)
			nev += record_events(c, it->rec, &c->outs[k], &c->evs[nev]);
		k++;
	}
	if (nev == 0)
		return;
	if ((rc = est_audit_append(c->audit, c->evs, nev, &err)) == 0)
		return;
	for (i = 0; i < n; i++) {
		if (c->items[i]->rc == 0 || c->items[i]->rc == -EST_EREFUSED) {
			c->items[i]->rc = rc;
			c->items[i]->err = err;
		}
	}
	/* If this fails too, the registry keeps certificates nobody received:
	 * the allowed direction; an operator reset frees the device. */
	if (nissued > 0)
		c->reg->ops->unreturn(c->reg->ctx, c->issued, nissued, &err);
}

static size_t
take_batch(struct est_committer *c)
{
	size_t n = 0;

	while (c->head != NULL && n < EST_COMMIT_BATCH_MAX) {
		c->items[n++] = c->head;
		c->head = c->head->next;
	}
	if (c->head == NULL)
		c->tail = NULL;
	return n;
}

static void *
run(void *arg)
{
	struct est_committer *c = arg;
	size_t n, nrec, i;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (c->head == NULL && !c->stopping)
			pthread_cond_wait(&c->work, &c->mu);
		if (c->head == NULL)
			break;      /* stopping, and the queue is drained */
		n = take_batch(c);
		pthread_mutex_unlock(&c->mu);
		c->batch++;
		for (i = 0; i < n; i++)
			c->items[i]->rc = 0;
		apply_records(c, n, &nrec);
		audit_batch(c, n);
		pthread_mutex_lock(&c->mu);
		for (i = 0; i < n; i++)
			c->items[i]->done = 1;
		c->nbatches++;
		c->nrecords += nrec;
		pthread_cond_broadcast(&c->done);
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Certificates a crash left registered but never audited (their batch is
 * above the last one the audit log holds): audit each as unreturned, then
 * unreturn them. In that order, so a crash in between repeats the repair
 * (the certificate_unreturned lines carry no batch) instead of losing it. */
static int
recover(struct est_committer *c, struct est_error *e)
{
	struct est_reg_cert cert[EST_COMMIT_BATCH_MAX];
	long long logged = 0, stored = 0;
	char **serials = NULL;
	size_t n = 0, i, k;
	int rc;

	if ((rc = c->audit->ops->last_batch(c->audit->ctx, &logged, e)) < 0 ||
	    (rc = c->reg->ops->batches_after(c->reg->ctx, logged, &stored, &serials, &n, e)) < 0)
		return rc;
	c->batch = stored > logged ? stored : logged;
	for (i = 0; i < n && rc == 0; i += k) {
		for (k = 0; k < EST_COMMIT_BATCH_MAX && i + k < n && rc == 0; k++) {
			rc = c->reg->ops->cert_get(c->reg->ctx, serials[i + k], &cert[k], e);
			c->evs[k] = (struct est_audit_event){
				.kind = EST_AUDIT_CERT_UNRETURNED, .thing = cert[k].thing_name,
				.serial = serials[i + k], .reason = unreturned_reason,
			};
		}
		if (rc == 0)
			rc = est_audit_append(c->audit, c->evs, k, e);
		if (rc == 0)
			rc = c->reg->ops->unreturn(c->reg->ctx, (const char *const *)serials + i, k, e);
	}
	for (i = 0; i < n; i++)
		free(serials[i]);
	free(serials);
	return rc;
}

int
est_commit_start(struct est_registry *reg, struct est_audit *audit, struct est_committer **out,
		 struct est_error *e)
{
	struct est_committer *c = calloc(1, sizeof(*c));
	int rc;

	*out = NULL;
	if (c == NULL)
		return est_fail(e, EST_EINTERNAL, "committer: out of memory");
	c->reg = reg;
	c->audit = audit;
	if ((rc = recover(c, e)) < 0) {
		free(c);
		return rc;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->work, NULL);
	pthread_cond_init(&c->done, NULL);
	if ((rc = pthread_create(&c->thread, NULL, run, c)) != 0) {
		pthread_cond_destroy(&c->done);
		pthread_cond_destroy(&c->work);
		pthread_mutex_destroy(&c->mu);
		free(c);
		return est_fail(e, EST_EINTERNAL, "committer: cannot start its thread: %s",
				strerror(rc));
	}
	*out = c;
	return 0;
}

/* Queue IT and wait for its batch to be done. */
static int
submit(struct est_committer *c, struct item *it, struct est_error *e)
{
	pthread_mutex_lock(&c->mu);
	if (c->stopping) {
		pthread_mutex_unlock(&c->mu);
		return est_fail(e, EST_EUNAVAIL, "committer: shutting down");
	}
	c->waiters++;
	if (c->tail != NULL)
		c->tail->next = it;
	else
		c->head = it;
	c->tail = it;
	pthread_cond_signal(&c->work);
	while (!it->done)
		pthread_cond_wait(&c->done, &c->mu);
	if (--c->waiters == 0 && c->stopping)
		pthread_cond_broadcast(&c->done);
	pthread_mutex_unlock(&c->mu);
	if (it->rc < 0 && e != NULL)
		*e = it->err;
	return it->rc;
}

int
est_commit_issue(struct est_committer *c, const struct est_commit_rec *rec, struct est_error *e)
{
	struct item it = { .rec = rec };

	return submit(c, &it, e);
}

int
est_commit_event(struct est_committer *c, const struct est_audit_event *ev, struct est_error *e)
{
	struct item it = { .ev = ev };

	return submit(c, &it, e);
}

void
est_commit_stop(struct est_committer *c)
{
	if (c == NULL)
		return;
	pthread_mutex_lock(&c->mu);
	c->stopping = 1;
	pthread_cond_signal(&c->work);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	/* Woken waiters still need the mutex to return: free nothing before. */
	pthread_mutex_lock(&c->mu);
	while (c->waiters > 0)
		pthread_cond_wait(&c->done, &c->mu);
	pthread_mutex_unlock(&c->mu);
	pthread_cond_destroy(&c->done);
	pthread_cond_destroy(&c->work);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

void
est_commit_stats(struct est_committer *c, unsigned long long *batches,
		 unsigned long long *records)
{
	pthread_mutex_lock(&c->mu);
	*batches = c->nbatches;
	*records = c->nrecords;
	pthread_mutex_unlock(&c->mu);
}
