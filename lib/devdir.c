#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gnutls/crypto.h>
#include <jansson.h>

#include "cert.h"
#include "../lib/config.h"
#include "devdir.h"
#include "file.h"
#include "key.h"

char *
est_devdir_path(const char *dir, const char *name)
{
	char *p;

	return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

/* The profile in the seed's IoTDetails form, which est_profile_from_iotdetails reads. */
static json_t *
iotdetails(const struct est_profile *p)
{
	json_t *o = json_object(), *pol = json_object(), *top = json_object(), *res;
	size_t i, j;

	json_object_set_new(o, "ThingName", json_string(p->thing_name));
	for (i = 0; i < p->npermissions; i++) {
		const struct est_permission *pm = &p->permissions[i];
		const char *a = est_action_config_names[pm->action];

		json_object_set_new(pol, a, json_boolean(pm->effect == EST_EFFECT_ALLOW));
		res = json_array();
		for (j = 0; j < pm->nresources; j++)
			json_array_append_new(res, json_string(pm->resources[j]));
		json_object_set_new(top, a, res);
	}
	json_object_set_new(o, "Policies", pol);
	json_object_set_new(o, "Topics", top);
	return o;
}

int
est_devdir_meta_write(const char *dir, const struct est_devdir_meta *m, struct est_error *e)
{
	json_t *o = json_object();
	char *s = NULL, *text = NULL, *path = est_devdir_path(dir, EST_DEVDIR_META);
	int rc;

	json_object_set_new(o, "url", json_string(m->url));
	if (m->label != NULL)
		json_object_set_new(o, "label", json_string(m->label));
	if (m->cacert != NULL)
		json_object_set_new(o, "cacert", json_string(m->cacert));
	if (m->system_store)
		json_object_set_new(o, "system_store", json_true());
	if (m->have_profile)
		json_object_set_new(o, "IoTDetails", iotdetails(&m->profile));
	if (path == NULL || (s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) == NULL ||
	    asprintf(&text, "%s\n", s) < 0) {
		text = NULL;
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	rc = est_file_write(path, text, strlen(text), EST_WRITE_EXCL, e);
out:
	free(text);
	free(s);
	free(path);
	json_decref(o);
	return rc;
}

static int
opt_string(json_t *o, const char *key, const char *path, char **out, struct est_error *e)
{
	json_t *v = json_object_get(o, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0)
		return est_fail(e, EST_EDATA, "%s: %s: expected a non-empty string", path, key);
	if ((*out = strdup(json_string_value(v))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	return 0;
}

static int
meta_parse(json_t *o, const char *path, struct est_devdir_meta *m, struct est_error *e)
{
	json_t *v;
	int rc;

	if (!json_is_object(o))
		return est_fail(e, EST_EDATA, "%s: expected an object", path);
	if ((rc = opt_string(o, "url", path, &m->url, e)) < 0 ||
	    (rc = opt_string(o, "label", path, &m->label, e)) < 0 ||
	    (rc = opt_string(o, "cacert", path, &m->cacert, e)) < 0)
		return rc;
	if (m->url == NULL)
		return est_fail(e, EST_EDATA, "%s: url is missing", path);
	v = json_object_get(o, "system_store");
	if (v != NULL && !json_is_boolean(v))
		return est_fail(e, EST_EDATA, "%s: system_store: expected true or false", path);
	m->system_store = v != NULL && json_is_true(v);
	if ((v = json_object_get(o, "IoTDetails")) == NULL)
		return 0;
	if ((rc = est_profile_from_iotdetails(v, "IoTDetails", &m->profile, e)) < 0) {
		est_error_prefix(e, "%s", path);
		return rc;
	}
	m->have_profile = true;
	return 0;
}

int
est_devdir_meta_read(const char *dir, struct est_devdir_meta *m, struct est_error *e)
{
	char *path = est_devdir_path(dir, EST_DEVDIR_META);
	json_t *o = NULL;
	int rc;

	memset(m, 0, sizeof(*m));
	if (path == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	if (access(path, F_OK) != 0 && errno == ENOENT) {
		rc = 0;
		goto out;
	}
	if ((rc = est_json_load_file(path, &o, e)) < 0 || (rc = meta_parse(o, path, m, e)) < 0) {
		est_devdir_meta_free(m);
		goto out;
	}
	rc = 1;
out:
	json_decref(o);
	free(path);
	return rc;
}

void
est_devdir_meta_free(struct est_devdir_meta *m)
{
	free(m->url);
	free(m->label);
	free(m->cacert);
	if (m->have_profile)
		est_profile_free(&m->profile);
	memset(m, 0, sizeof(*m));
}

time_t
est_devdir_due(time_t not_before, time_t not_after, double at, long long before,
	       const unsigned char *serial, size_t len)
{
	unsigned char h[32];
	long long life = (long long)not_after - (long long)not_before, start, max;
	uint64_t v = 0;
	int i;

	if (life <= 0)
		return not_before;
	start = before >= 0 ? (long long)not_after - before
		: (long long)not_before + (long long)((double)life * at);
	max = start < (long long)not_after ? ((long long)not_after - start) / 2 : 0;
	if (max > life / 10)
		max = life / 10;
	if (max <= 0 || gnutls_hash_fast(GNUTLS_DIG_SHA256, serial, len, h) < 0)
		return (time_t)start;
	for (i = 0; i < 8; i++)
		v = v << 8 | h[i];
	return (time_t)(start + (long long)(v % (uint64_t)(max + 1)));
}

static bool
exists(const char *dir, const char *name)
{
	char *p = est_devdir_path(dir, name);
	bool yes = p != NULL && access(p, F_OK) == 0;

	free(p);
	return yes;
}

/* *MATCH = whether DIR/KEY is the private key of DIR/CERT's first certificate. */
static int
pair_match(const char *dir, const char *key, const char *cert, bool *match, struct est_error *e)
{
	char *kp = est_devdir_path(dir, key), *cp = est_devdir_path(dir, cert);
	struct est_cert_list l = { NULL, 0 };
	gnutls_privkey_t k = NULL;
	int rc;

	*match = false;
	if (kp == NULL || cp == NULL) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	if ((rc = est_key_load(kp, &k, e)) < 0 || (rc = est_cert_load_bundle(cp, &l, e)) < 0)
		goto out;
	rc = est_cert_key_match(l.crts[0], k, match, e);
out:
	if (k != NULL)
		gnutls_privkey_deinit(k);
	est_cert_list_free(&l);
	free(kp);
	free(cp);
	return rc;
}

static int
rename_in(const char *dir, const char *from, const char *to, struct est_error *e)
{
	char *f = est_devdir_path(dir, from), *t = est_devdir_path(dir, to);
	int rc = 0;

	if (f == NULL || t == NULL)
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
	else if (rename(f, t) != 0)
		rc = est_fail(e, EST_EIO, "%s: renaming to %s: %s", f, to, strerror(errno));
	free(f);
	free(t);
	return rc;
}

/* NAME.prev becomes a hard link to NAME, replacing the old one atomically. */
static int
link_prev(const char *dir, const char *name, struct est_error *e)
{
	char *from = est_devdir_path(dir, name), *tmp = NULL, *prev = NULL;
	int rc = 0;

	if (from == NULL || asprintf(&tmp, "%s.prev.tmp", from) < 0 ||
	    asprintf(&prev, "%s.prev", from) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	unlink(tmp);
	if (link(from, tmp) != 0 || rename(tmp, prev) != 0) {
		rc = est_fail(e, EST_EIO, "%s: keeping it as %s.prev: %s", from, name, strerror(errno));
		unlink(tmp);
	}
out:
	free(from);
	free(tmp);
	free(prev);
	return rc;
}

static void
fsync_dir(const char *dir)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
}

/* key.pem.new, chain.pem.new, the .prev temporaries, and what est_file_write
 * leaves when killed while writing any *.new ("cert.pem.new.XXXXXX"). */
static bool
leftover(const char *n)
{
	static const char *const pre[] = { "key.pem.new", "chain.pem.new", "cert.pem.new.",
					   "key.pem.prev.tmp", "cert.pem.prev.tmp" };
	size_t i;

	for (i = 0; i < sizeof(pre) / sizeof(pre[0]); i++)
		if (strncmp(n, pre[i], strlen(pre[i])) == 0)
			return true;
	return false;
}

static int
remove_leftovers(const char *dir, struct est_error *e)
{
	struct dirent *d;
	DIR *dp;
	int n = 0;

	if ((dp = opendir(dir)) == NULL)
		return est_fail(e, errno == ENOENT ? EST_ENOINPUT : EST_EIO, "%s: %s", dir,
				strerror(errno));
	while ((d = readdir(dp)) != NULL)
		if (leftover(d->d_name) && unlinkat(dirfd(dp), d->d_name, 0) == 0)
			n++;
	closedir(dp);
	return n;
}

/* Steps (2) and (3) of est_devdir_swap; NEW_KEY says whether key.pem.new is there. */
static int
finish(const char *dir, bool new_key, bool link_first, struct est_error *e)
{
	int rc;

	if (link_first && ((rc = link_prev(dir, "key.pem", e)) < 0 ||
			   (rc = link_prev(dir, "cert.pem", e)) < 0))
		return rc;
	if (new_key && (rc = rename_in(dir, "key.pem.new", "key.pem", e)) < 0)
		return rc;
	if (exists(dir, "chain.pem.new") && (rc = rename_in(dir, "chain.pem.new", "chain.pem", e)) < 0)
		return rc;
	if ((rc = rename_in(dir, "cert.pem.new", "cert.pem", e)) < 0)
		return rc;
	fsync_dir(dir);
	return 0;
}

int
est_devdir_recover(const char *dir, int *did, struct est_error *e)
{
	bool m;
	int rc;

	*did = 0;
	if (!exists(dir, "cert.pem.new")) {
		if ((rc = remove_leftovers(dir, e)) < 0)
			return rc;
		*did = rc > 0 ? 2 : 0;
		return 0;
	}
	*did = 1;
	if (exists(dir, "key.pem.new")) {
		/* Nothing renamed yet: key.pem and cert.pem are still the old pair. */
		if ((rc = pair_match(dir, "key.pem.new", "cert.pem.new", &m, e)) < 0)
			return rc;
		if (!m)
			return est_fail(e, EST_EDATA, "%s: cert.pem.new is not the certificate of "
					"key.pem.new: remove both to keep the current pair", dir);
		return finish(dir, true, true, e);
	}
	if ((rc = pair_match(dir, "key.pem", "cert.pem.new", &m, e)) < 0)
		return rc;
	if (!m)
		return est_fail(e, EST_EDATA, "%s: cert.pem.new is not the certificate of key.pem: "
				"the previous pair is key.pem.prev and cert.pem.prev", dir);
	/* The key stayed (--keep-key) and cert.pem is the old certificate still,
	 * or key.pem is already the new key: .prev is only made in the first case. */
	if ((rc = pair_match(dir, "key.pem", "cert.pem", &m, e)) < 0)
		return rc;
	return finish(dir, false, m, e);
}

static int
write_in(const char *dir, const char *name, const void *data, size_t len, unsigned flags,
	 struct est_error *e)
{
	char *p = est_devdir_path(dir, name);
	int rc;

	if (p == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	rc = est_file_write(p, data, len, flags, e);
	free(p);
	return rc;
}

int
est_devdir_swap(const char *dir, const struct est_secret *key_pem,
		const gnutls_datum_t *cert_pem, const gnutls_datum_t *chain_pem,
		struct est_error *e)
{
	int rc;

	if ((rc = remove_leftovers(dir, e)) < 0)
		return rc;
	if (key_pem != NULL && (rc = write_in(dir, "key.pem.new", key_pem->data, key_pem->len,
					      EST_WRITE_EXCL | EST_WRITE_PRIVATE, e)) < 0) {
		remove_leftovers(dir, NULL);
		return rc;
	}
	if ((rc = write_in(dir, "chain.pem.new", chain_pem->data, chain_pem->size, 0, e)) < 0 ||
	    (rc = write_in(dir, "cert.pem.new", cert_pem->data, cert_pem->size, 0, e)) < 0) {
		remove_leftovers(dir, NULL);    /* the current pair was not touched */
		return rc;
	}
	return finish(dir, key_pem != NULL, true, e);
}
