#include "config.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <gnutls/gnutls.h>

#include "file.h"
#include "key.h"
#include "keystore.h"

struct entry {
	char id[EST_KEYID_MAX + 1];
	struct est_secret key;
};

struct dirstore {
	struct entry *v;
	size_t n;
};

int
est_keyid_valid(const char *id)
{
	size_t i, n = strlen(id);

	if (n == 0 || n > EST_KEYID_MAX || id[0] == '.')
		return 0;
	for (i = 0; i < n; i++)
		if (!(id[i] >= 'a' && id[i] <= 'z') && !(id[i] >= 'A' && id[i] <= 'Z') &&
		    !(id[i] >= '0' && id[i] <= '9') && id[i] != '-' && id[i] != '_' && id[i] != '.')
			return 0;
	return 1;
}

static int
dir_lookup(void *ctx, const char *id, struct est_secret *key, struct est_error *e)
{
	const struct dirstore *d = ctx;
	size_t i;

	for (i = 0; i < d->n; i++)
		if (strcmp(d->v[i].id, id) == 0) {
			if (est_secret_alloc(key, d->v[i].key.len) < 0)
				return est_fail(e, EST_EINTERNAL, "out of memory");
			memcpy(key->data, d->v[i].key.data, d->v[i].key.len);
			return 0;
		}
	return est_fail(e, EST_EREFUSED, "unknown enrollment key id");
}

static void
dir_close(void *ctx)
{
	struct dirstore *d = ctx;
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->n; i++)
		est_secret_free(&d->v[i].key);
	free(d->v);
	free(d);
}

static const struct est_keystore_ops dir_ops = { "dir", dir_lookup, dir_close };

/* Load DIR/NAME if it is "<id>.key"; 1 when it was not a key file. */
static int
load_one(struct dirstore *d, const char *dir, const char *name, struct est_error *e)
{
	char path[PATH_MAX];
	size_t n = strlen(name);
	struct entry *v;
	struct stat st;
	int rc;

	if (n <= 4 || strcmp(name + n - 4, ".key") != 0 || n - 4 > EST_KEYID_MAX)
		return 1;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return 1;
	if (st.st_mode & 077)
		return est_fail(e, EST_ECONFIG, "%s: mode %03o: an enrollment key must not be "
				"readable by group or others (chmod 600)", path,
				(unsigned)(st.st_mode & 0777));
	if ((v = realloc(d->v, (d->n + 1) * sizeof(*v))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	d->v = v;
	memset(&v[d->n], 0, sizeof(*v));
	memcpy(v[d->n].id, name, n - 4);
	if (!est_keyid_valid(v[d->n].id))
		return est_fail(e, EST_ECONFIG, "%s: the key id must be [A-Za-z0-9._-]", path);
	if ((rc = est_enrkey_load(path, &v[d->n].key, e)) < 0) {
		e->code = EST_ECONFIG;
		return -EST_ECONFIG;
	}
	d->n++;
	return 0;
}

int
est_keystore_dir_open(const char *dir, struct est_keystore *out, struct est_error *e)
{
	struct dirstore *d;
	struct dirent *de;
	DIR *dh;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	if ((dh = opendir(dir)) == NULL) {
		dir_close(d);
		return est_fail(e, EST_ECONFIG, "%s: cannot open the enrollment key directory", dir);
	}
	while ((de = readdir(dh)) != NULL)
		if ((rc = load_one(d, dir, de->d_name, e)) < 0)
			break;
	closedir(dh);
	if (rc < 0) {
		dir_close(d);
		return rc;
	}
	out->ops = &dir_ops;
	out->ctx = d;
	return 0;
}

int
est_keystore_lookup(void *ks, const char *id, struct est_secret *key, struct est_error *e)
{
	struct est_keystore *k = ks;

	return k->ops->lookup(k->ctx, id, key, e);
}

void
est_keystore_close(struct est_keystore *ks)
{
	if (ks == NULL || ks->ops == NULL)
		return;
	ks->ops->close(ks->ctx);
	memset(ks, 0, sizeof(*ks));
}
