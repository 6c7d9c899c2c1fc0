#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "file.h"

bool
est_path_is_std(const char *path)
{
	return path == NULL || strcmp(path, "-") == 0;
}

static int
read_fd(int fd, size_t max, unsigned char **buf, size_t *len)
{
	size_t cap = 4096, n = 0;
	unsigned char *p = gnutls_malloc(cap + 1), *q;
	ssize_t r;

	if (p == NULL)
		return -ENOMEM;
	for (;;) {
		if (n == cap) {
			if (cap > max) {
				gnutls_memset(p, 0, n);
				gnutls_free(p);
				return -EFBIG;
			}
			/* Grow by hand so a secret never sits in a freed block unwiped. */
			if ((q = gnutls_malloc(cap * 2 + 1)) == NULL) {
				gnutls_memset(p, 0, n);
				gnutls_free(p);
				return -ENOMEM;
			}
			memcpy(q, p, n);
			gnutls_memset(p, 0, n);
			gnutls_free(p);
			p = q;
			cap *= 2;
		}
		r = read(fd, p + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int err = errno;
			gnutls_memset(p, 0, n);
			gnutls_free(p);
			return -err;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > max) {
		gnutls_memset(p, 0, n);
		gnutls_free(p);
		return -EFBIG;
	}
	p[n] = '\0';
	*buf = p;
	*len = n;
	return 0;
}

int
est_file_read(const char *path, size_t max, gnutls_datum_t *out, struct est_error *e)
{
	const char *name = est_path_is_std(path) ? "standard input" : path;
	unsigned char *buf = NULL;
	size_t len = 0;
	int fd = 0, rc;

	out->data = NULL;
	out->size = 0;
	if (!est_path_is_std(path)) {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return est_fail(e, errno == ENOENT ? EST_ENOINPUT : EST_EIO,
					"%s: %s", path, strerror(errno));
	}
	rc = read_fd(fd, max, &buf, &len);
	if (fd != 0)
		close(fd);
	if (rc == -EFBIG)
		return est_fail(e, EST_EDATA, "%s: larger than %zu bytes", name, max);
	if (rc == -EISDIR)
		return est_fail(e, EST_ENOINPUT, "%s: is a directory", name);
	if (rc < 0)
		return est_fail(e, EST_EIO, "%s: %s", name, strerror(-rc));
	out->data = buf;
	out->size = (unsigned)len;
	return 0;
}

int
est_file_read_secret(const char *path, size_t max, struct est_secret *out, struct est_error *e)
{
	gnutls_datum_t d;
	int rc;

	out->data = NULL;
	out->len = 0;
	if ((rc = est_file_read(path, max, &d, e)) < 0)
		return rc;
	rc = est_secret_alloc(out, d.size);
	if (rc == 0)
		memcpy(out->data, d.data, d.size);
	gnutls_memset(d.data, 0, d.size);
	gnutls_free(d.data);
	if (rc < 0)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	return 0;
}

int
est_write_all(int fd, const void *data, size_t len)
{
	const unsigned char *p = data;
	ssize_t w;

	while (len > 0) {
		w = write(fd, p, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

static void
fsync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd;

	if (copy == NULL)
		return;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		(void)fsync(fd);
		close(fd);
	}
	free(copy);
}

/* Write to a fresh temporary in PATH's directory; on success *TMP names it. */
static int
write_temp(const char *path, const void *data, size_t len, unsigned flags, char **tmp,
	   struct est_error *e)
{
	mode_t mask = umask(0);
	int fd, rc;

	umask(mask);
	if (asprintf(tmp, "%s.XXXXXX", path) < 0) {
		*tmp = NULL;
		return est_fail(e, EST_EINTERNAL, "out of memory");
	}
	fd = mkostemp(*tmp, O_CLOEXEC);   /* O_EXCL, mode 0600 */
	if (fd < 0) {
		rc = errno;
		free(*tmp);
		*tmp = NULL;
		return est_fail(e, rc == ENOENT ? EST_ENOINPUT : EST_EIO, "%s: %s", path,
				strerror(rc));
	}
	rc = 0;
	if (!(flags & EST_WRITE_PRIVATE) && fchmod(fd, 0644 & ~mask) < 0)
		rc = -errno;
	if (rc == 0)
		rc = est_write_all(fd, data, len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc < 0) {
		unlink(*tmp);
		free(*tmp);
		*tmp = NULL;
		return est_fail(e, EST_EIO, "%s: %s", path, strerror(-rc));
	}
	return 0;
}

int
est_file_write(const char *path, const void *data, size_t len, unsigned flags,
	       struct est_error *e)
{
	char *tmp = NULL;
	int rc, err = 0;

	if (est_path_is_std(path)) {
		if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0)
			return est_fail(e, EST_EIO, "write failure on standard output: %s",
					strerror(errno));
		return 0;
	}
	if ((rc = write_temp(path, data, len, flags, &tmp, e)) < 0)
		return rc;
	if (flags & EST_WRITE_EXCL) {
		if (link(tmp, path) < 0)
			err = errno;
		unlink(tmp);
	} else if (rename(tmp, path) < 0) {
		err = errno;
		unlink(tmp);
	}
	free(tmp);
	if (err == EEXIST)
		return est_fail(e, EST_EEXIST, "%s: already exists (use --force to replace it)", path);
	if (err != 0)
		return est_fail(e, EST_EIO, "%s: %s", path, strerror(err));
	fsync_dir(path);
	return 0;
}

char *
est_path_stem(const char *path)
{
	const char *base = strrchr(path, '/'), *dot;

	base = base != NULL ? base + 1 : path;
	dot = strrchr(base, '.');
	if (dot == NULL || dot == base)
		return strdup(base);
	return strndup(base, (size_t)(dot - base));
}
