#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commit.h"

/* A request waiting for its batch; lives on the waiter's stack. */
struct item {
	const struct est_commit_rec *rec;     /* NULL: an audit-only event */
	const struct est_audit_event *ev;
	pthread_cond_t cv;                    /* signalled when done: only its waiter wakes */
	int done, rc;
	struct est_error err;
	struct item *next;
};

/* A batch applied to the registry, waiting for the audit thread. */
struct batch {
	long long no;
	size_t n, nrec;
	struct batch *next;
	struct item **items;                  /* n, in queue order */
	const struct est_commit_rec **recs;   /* nrec */
	struct est_reg_outcome *outs;         /* nrec */
};

/* The audit thread merges queued batches into one append, up to this many lines. */
#define EVS_MAX (8 * EST_COMMIT_BATCH_MAX)

/* Two threads form a pipeline: the registry thread commits batch k+1 while
 * the audit thread writes and fsyncs batch k, so a batch costs the longer of
 * the two steps rather than their sum, and requests that arrive meanwhile
 * gather into the next batch. Waiters are woken only by the audit thread. */
struct est_committer {
	pthread_mutex_t mu;
	pthread_cond_t work, audit_work, done;
	struct item *head, *tail;         /* queued requests */
	struct batch *ahead, *atail;      /* committed to the registry, not yet audited */
	int stopping, reg_done;
	unsigned waiters;                 /* threads inside submit(): stop waits for them */
	unsigned expected;                /* announced requests not queued yet */
	long long last_commit_ns;         /* how long the last registry commit took */
	pthread_t reg_thread, audit_thread;
	struct est_registry *reg;
	struct est_audit *audit;
	unsigned long long nbatches, nrecords;
	long long batch;                  /* the registry thread's last batch number */
	/* The audit thread's (and recovery's) scratch space. */
	struct est_audit_event evs[EVS_MAX];
	const char *issued[EVS_MAX];
};

static const char unreturned_reason[] = "issuance not completed: the audit log did not record it";

/* Step 1: the registry transaction; the outcomes land in B->outs and the
 * items' rc (a storage failure fails every record of the batch). */
static void
apply_records(struct est_committer *c, struct batch *b)
{
	struct est_error err = { 0 };
	size_t i, k = 0;
	int rc = 0;

	for (i = 0; i < b->n; i++)
		if (b->items[i]->rec != NULL)
			b->recs[k++] = b->items[i]->rec;
	b->nrec = k;
	if (k > 0)
		rc = c->reg->ops->commit_batch(c->reg->ctx, b->recs, k, b->no, b->outs, &err);
	for (i = 0, k = 0; i < b->n; i++) {
		if (b->items[i]->rec == NULL)
			continue;
		if (rc < 0) {
			/* Nothing was written, and no audit line will be made. */
			b->outs[k].rc = rc;
			b->outs[k].err = err;
		}
		b->items[i]->rc = b->outs[k].rc;
		b->items[i]->err = b->outs[k].err;
		k++;
	}
}

/* The audit lines of one applied record; returns how many were added. */
static size_t
record_events(const struct est_commit_rec *rec, const struct est_reg_outcome *out,
	      long long batch, struct est_audit_event *ev)
{
	struct est_audit_event base = {
		.thing = rec->thing_name, .remote = rec->remote, .label = rec->label,
		.auth = rec->auth, .batch = batch,
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
	ev[n].kind = rec->mode == EST_COMMIT_RETURN ? EST_AUDIT_CERT_RETURNED_AGAIN
						   : EST_AUDIT_CERT_ISSUED;
	ev[n++].supersedes = out->superseded[0] != '\0' ? out->superseded : NULL;
	return n;
}

/* Add batch B's lines, in queue order, to c->evs from *NEV on. */
static void
batch_events(struct est_committer *c, const struct batch *b, size_t *nev, size_t *nissued)
{
	size_t i, k = 0;

	for (i = 0; i < b->n; i++) {
		const struct item *it = b->items[i];

		if (it->rec == NULL) {
			c->evs[*nev] = *it->ev;
			c->evs[(*nev)++].batch = b->no;
			continue;
		}
		/* A certificate returned again was issued by an earlier batch. */
		if (b->outs[k].rc == 0 && it->rec->mode != EST_COMMIT_RETURN)
			c->issued[(*nissued)++] = it->rec->cert.serial_hex;
		if (b->outs[k].rc == 0 || b->outs[k].rc == -EST_EREFUSED)
			*nev += record_events(it->rec, &b->outs[k], b->no, &c->evs[*nev]);
		k++;
	}
}

/* Step 2: the lines of the batches in LIST with one durable append. On
 * failure every item fails and the certificates the registry already holds
 * are unreturned. */
static void
audit_batches(struct est_committer *c, struct batch *list)
{
	struct est_error err = { 0 };
	size_t nev = 0, nissued = 0, i;
	struct batch *b;
	int rc;

	for (b = list; b != NULL; b = b->next)
		batch_events(c, b, &nev, &nissued);
	if (nev == 0 || (rc = est_audit_append(c->audit, c->evs, nev, &err)) == 0)
		return;
	for (b = list; b != NULL; b = b->next) {
		for (i = 0; i < b->n; i++) {
			if (b->items[i]->rc == 0 || b->items[i]->rc == -EST_EREFUSED) {
				b->items[i]->rc = rc;
				b->items[i]->err = err;
			}
		}
	}
	/* If this fails too, the registry keeps certificates nobody received:
	 * the allowed direction; an operator reset frees the device. */
	if (nissued > 0)
		c->reg->ops->unreturn(c->reg->ctx, c->issued, nissued, &err);
}

/* Take up to EST_COMMIT_BATCH_MAX queued items into a new batch (c->mu held). */
static struct batch *
take_batch(struct est_committer *c)
{
	struct item *it;
	struct batch *b;
	size_t n = 0;

	for (it = c->head; it != NULL && n < EST_COMMIT_BATCH_MAX; it = it->next)
		n++;
	b = calloc(1, sizeof(*b) + n * (sizeof(*b->items) + sizeof(*b->recs) + sizeof(*b->outs)));
	if (b == NULL)
		return NULL;
	b->outs = (struct est_reg_outcome *)(b + 1);
	b->items = (struct item **)(b->outs + n);
	b->recs = (const struct est_commit_rec **)(b->items + n);
	while (b->n < n) {
		b->items[b->n++] = c->head;
		c->head = c->head->next;
	}
	if (c->head == NULL)
		c->tail = NULL;
	return b;
}

/* Out of memory for a batch: fail the oldest request rather than spin. */
static void
fail_head(struct est_committer *c)
{
	struct item *it = c->head;

	c->head = it->next;
	if (c->head == NULL)
		c->tail = NULL;
	it->rc = est_fail(&it->err, EST_EINTERNAL, "committer: out of memory");
	it->done = 1;
	pthread_cond_signal(&it->cv);
}

static long long
now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* Group commit (c->mu held, the queue not empty): while announced requests
 * are still on their way (most of an issuance is its signature and
 * encoding, so they follow within a fraction of a millisecond), hold the
 * batch back for them, but never longer than the last commit took: waiting
 * longer would cost more than giving them a commit of their own. One
 * commit and one fsync then serve all the concurrent requests instead of
 * one or two each, which is what the committer's CPU and the disk cost. */
static void
gather(struct est_committer *c)
{
	long long until = now_ns() + c->last_commit_ns;
	struct timespec ts;

	ts.tv_sec = (time_t)(until / 1000000000LL);
	ts.tv_nsec = (long)(until % 1000000000LL);
	while (c->expected > 0 && !c->stopping)
		if (pthread_cond_timedwait(&c->work, &c->mu, &ts) == ETIMEDOUT)
			break;
}

static void *
registry_thread(void *arg)
{
	struct est_committer *c = arg;
	struct batch *b;
	long long t0, t1;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (c->head == NULL && !c->stopping)
			pthread_cond_wait(&c->work, &c->mu);
		if (c->head == NULL)
			break;      /* stopping, and the queue is drained */
		gather(c);
		if ((b = take_batch(c)) == NULL) {
			fail_head(c);
			continue;
		}
		pthread_mutex_unlock(&c->mu);
		b->no = ++c->batch;
		t0 = now_ns();
		apply_records(c, b);
		t1 = now_ns();
		pthread_mutex_lock(&c->mu);
		c->last_commit_ns = t1 - t0;
		if (c->atail != NULL)
			c->atail->next = b;
		else
			c->ahead = b;
		c->atail = b;
		pthread_cond_signal(&c->audit_work);
	}
	c->reg_done = 1;
	pthread_cond_signal(&c->audit_work);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

/* Take the audited-next batches, as many as fit one append (c->mu held). */
static struct batch *
take_audit(struct est_committer *c)
{
	struct batch *list = c->ahead, *b = list;
	size_t lines = 2 * b->n;

	while (b->next != NULL && lines + 2 * b->next->n <= EVS_MAX) {
		b = b->next;
		lines += 2 * b->n;
	}
	c->ahead = b->next;
	if (c->ahead == NULL)
		c->atail = NULL;
	b->next = NULL;
	return list;
}

static void *
audit_thread(void *arg)
{
	struct est_committer *c = arg;
	struct batch *list, *b;
	size_t i;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (c->ahead == NULL && !c->reg_done)
			pthread_cond_wait(&c->audit_work, &c->mu);
		if (c->ahead == NULL)
			break;
		list = take_audit(c);
		pthread_mutex_unlock(&c->mu);
		audit_batches(c, list);
		pthread_mutex_lock(&c->mu);
		while ((b = list) != NULL) {
			for (i = 0; i < b->n; i++) {
				b->items[i]->done = 1;
				pthread_cond_signal(&b->items[i]->cv);
			}
			c->nbatches++;
			c->nrecords += b->nrec;
			list = b->next;
			free(b);
		}
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

static void
destroy(struct est_committer *c)
{
	pthread_cond_destroy(&c->done);
	pthread_cond_destroy(&c->audit_work);
	pthread_cond_destroy(&c->work);
	pthread_mutex_destroy(&c->mu);
	free(c);
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
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->work, NULL);
	pthread_cond_init(&c->audit_work, NULL);
	pthread_cond_init(&c->done, NULL);
	if ((rc = recover(c, e)) < 0) {
		destroy(c);
		return rc;
	}
	if ((rc = pthread_create(&c->audit_thread, NULL, audit_thread, c)) != 0) {
		destroy(c);
		return est_fail(e, EST_EINTERNAL, "committer: cannot start a thread: %s", strerror(rc));
	}
	if ((rc = pthread_create(&c->reg_thread, NULL, registry_thread, c)) != 0) {
		pthread_mutex_lock(&c->mu);
		c->reg_done = 1;
		pthread_cond_signal(&c->audit_work);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->audit_thread, NULL);
		destroy(c);
		return est_fail(e, EST_EINTERNAL, "committer: cannot start a thread: %s", strerror(rc));
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
	pthread_cond_init(&it->cv, NULL);
	if (c->tail != NULL)
		c->tail->next = it;
	else
		c->head = it;
	c->tail = it;
	pthread_cond_signal(&c->work);
	while (!it->done)
		pthread_cond_wait(&it->cv, &c->mu);
	if (--c->waiters == 0 && c->stopping)
		pthread_cond_broadcast(&c->done);
	pthread_mutex_unlock(&c->mu);
	pthread_cond_destroy(&it->cv);
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
est_commit_expect(struct est_committer *c)
{
	pthread_mutex_lock(&c->mu);
	c->expected++;
	pthread_mutex_unlock(&c->mu);
}

void
est_commit_unexpect(struct est_committer *c)
{
	pthread_mutex_lock(&c->mu);
	if (c->expected > 0)
		c->expected--;
	/* No wake-up: the request's own submit, which usually follows, wakes
	 * the registry thread with its item already queued. */
	pthread_mutex_unlock(&c->mu);
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
	/* The registry thread drains the queue, then the audit thread the rest. */
	pthread_join(c->reg_thread, NULL);
	pthread_join(c->audit_thread, NULL);
	/* Woken waiters still need the mutex to return: free nothing before. */
	pthread_mutex_lock(&c->mu);
	while (c->waiters > 0)
		pthread_cond_wait(&c->done, &c->mu);
	pthread_mutex_unlock(&c->mu);
	destroy(c);
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
