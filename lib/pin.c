#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>

#include "pin.h"

/* Where the attribute (or value) at P of URL ends. RFC 7512: path attributes
 * end at ';' or at the '?' that starts the query; query attributes end at
 * '&' only, since a query value may hold '/', '?' and '|' unencoded (as
 * p11-kit reads it). */
static const char *
attr_end(const char *url, const char *p)
{
	const char *q = strchr(url, '?');

	return q != NULL && p > q ? p + strcspn(p, "&") : p + strcspn(p, ";?");
}

/* The attribute NAME of URL from the attribute at P on; NULL when absent. */
static const char *
find_attr(const char *url, const char *p, const char *name)
{
	size_t n = strlen(name);

	for (;;) {
		if (strncmp(p, name, n) == 0 && p[n] == '=')
			return p;
		p = attr_end(url, p);
		if (*p == '\0')
			return NULL;
		p++;
	}
}

static int
hexval(int c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
		: c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The LEN bytes at V percent-decoded into *OUT (malloc'd); "%00" refused. */
static int
decode(const char *v, size_t len, char **out, struct est_error *e)
{
	char *d = malloc(len + 1);
	size_t i, n = 0;
	int hi, lo;

	if ((*out = d) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	for (i = 0; i < len; i++) {
		if (v[i] != '%') {
			d[n++] = v[i];
			continue;
		}
		if (i + 2 >= len || (hi = hexval(v[i + 1])) < 0 || (lo = hexval(v[i + 2])) < 0 ||
		    (hi | lo) == 0)
			goto bad;
		d[n++] = (char)(hi << 4 | lo);
		i += 2;
	}
	d[n] = '\0';
	return 0;
bad:
	free(d);
	*out = NULL;
	return est_fail(e, EST_EDATA, "pin-source: bad percent-encoding");
}

/* URL without the attribute from ATTR to END (a separator or the end):
 * one separator goes with it, so that what stays is still a URI. */
static char *
without(const char *url, const char *attr, const char *end)
{
	size_t head = (size_t)(attr - url);
	char *b;

	if (*end == ';' || *end == '&')
		end++;
	else if (head > 7)      /* last of its component: the separator before */
		head--;
	if ((b = malloc(head + strlen(end) + 1)) != NULL) {
		memcpy(b, url, head);
		strcpy(b + head, end);
	}
	return b;
}

int
est_pin_source_split(const char *url, char **bare, char **path, struct est_error *e)
{
	const char *attr, *v, *end, *p;
	char *dec = NULL;
	int rc;

	*bare = NULL;
	*path = NULL;
	if (strncmp(url, "pkcs11:", 7) != 0 ||
	    (attr = find_attr(url, url + 7, "pin-source")) == NULL)
		return 0;
	v = attr + strlen("pin-source=");
	end = attr_end(url, v);
	if (*end != '\0' && find_attr(url, end + 1, "pin-source") != NULL)
		return est_fail(e, EST_EDATA, "pin-source given twice");
	if (find_attr(url, url + 7, "pin-value") != NULL)
		return est_fail(e, EST_EDATA, "pin-value and pin-source together: give the PIN "
				"once, in the file");
	if ((rc = decode(v, (size_t)(end - v), &dec, e)) < 0)
		return rc;
	p = dec;
	if (strncmp(p, "file://", 7) == 0)      /* an empty authority: file:///PATH */
		p += 7;
	else if (strncmp(p, "file:", 5) == 0)
		p += 5;
	if (*p != '/') {
		free(dec);
		return est_fail(e, EST_EDATA, "pin-source: expected file:/PATH or an absolute path");
	}
	memmove(dec, p, strlen(p) + 1);
	if ((*bare = without(url, attr, end)) == NULL) {
		free(dec);
		return est_fail(e, EST_EINTERNAL, "out of memory");
	}
	*path = dec;
	return 1;
}

/* A PIN file is the key's secret: private to its owner, like ssh's keys. */
static int
check_file(int fd, const char *path, struct est_error *e)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return est_fail(e, EST_EIO, "%s: %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return est_fail(e, EST_ECONFIG, "%s: a PIN file must be a regular file", path);
	if (st.st_mode & 077)
		return est_fail(e, EST_ECONFIG, "%s: mode %03o: a PIN file must not be accessible "
				"to group or others (chmod 600)", path, (unsigned)(st.st_mode & 0777));
	/* Another user's file is that user's secret, or that user's to swap. */
	if (st.st_uid != geteuid() && st.st_uid != 0)
		return est_fail(e, EST_ECONFIG, "%s: owned by uid %u: a PIN file must belong to "
				"the user estctl runs as (uid %u) or to root", path,
				(unsigned)st.st_uid, (unsigned)geteuid());
	return 0;
}

/* Read FD into BUF until a newline, the end, or BUF is full; the length. */
static int
read_head(int fd, const char *path, struct est_secret *buf, size_t *len, struct est_error *e)
{
	ssize_t r;

	*len = 0;
	while (*len < buf->len) {
		r = read(fd, buf->data + *len, buf->len - *len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return est_fail(e, EST_EIO, "%s: cannot read the PIN: %s", path,
					strerror(errno));
		if (r == 0)
			break;
		*len += (size_t)r;
		if (memchr(buf->data + *len - r, '\n', (size_t)r) != NULL)
			break;
	}
	return 0;
}

int
est_pin_file_read(const char *path, size_t max, struct est_secret *pin, struct est_error *e)
{
	struct est_secret buf = { NULL, 0 };
	unsigned char *nl;
	size_t len = 0, n;
	int fd, rc;

	pin->data = NULL;
	pin->len = 0;
	/* O_NONBLOCK: a FIFO must be refused, not waited on. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)) < 0)
		return est_fail(e, errno == ENOENT ? EST_ENOINPUT : EST_EIO,
				"%s: cannot read the PIN: %s", path, strerror(errno));
	if ((rc = check_file(fd, path, e)) < 0)
		goto out;
	/* Room for the PIN, "\r\n", and one more byte to tell a longer line. */
	if (est_secret_alloc(&buf, max + 3) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	if ((rc = read_head(fd, path, &buf, &len, e)) < 0)
		goto out;
	nl = memchr(buf.data, '\n', len);
	n = nl != NULL ? (size_t)(nl - buf.data) : len;
	if (n > 0 && buf.data[n - 1] == '\r')
		n--;
	if (n == 0)
		rc = est_fail(e, EST_EDATA, "%s: the first line, the PIN, is empty", path);
	else if (n > max)
		rc = est_fail(e, EST_EDATA, "%s: the first line, the PIN, is longer than %zu bytes",
			      path, max);
	else if (est_secret_alloc(pin, n) < 0)
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
	else
		memcpy(pin->data, buf.data, n);
out:
	est_secret_free(&buf);
	close(fd);
	return rc;
}

int
est_pin_file_cb(void *data, int attempt, const char *token_url, const char *token_label,
		unsigned flags, char *pin, size_t pin_max)
{
	const struct est_pin_file *f = data;
	struct est_secret s = { NULL, 0 };

	if (f == NULL || pin_max < 2)
		return -1;
	if (attempt > 0 || (flags & GNUTLS_PIN_WRONG)) {
		est_fail(f->e, EST_ENOINPUT, "%s: wrong PIN (the token refused it)", f->path);
		return -1;
	}
	/* A wrong file in a restart loop must not lock the token: the last try is a person's. */
	if (flags & GNUTLS_PIN_FINAL_TRY) {
		est_fail(f->e, EST_ENOINPUT, "%s: not tried: token '%s' allows one more PIN "
			 "attempt before it locks; log in to it once by hand with the right "
			 "PIN (p11tool --login), which resets the count", f->path,
			 token_label != NULL ? token_label : "?");
		return -1;
	}
	if (est_pin_file_read(f->path, pin_max - 1, &s, f->e) < 0)
		return -1;
	memcpy(pin, s.data, s.len);
	pin[s.len] = '\0';
	est_secret_free(&s);
	return 0;
}

/* The files est_pin_file_keep has handed out; never freed (see pin.h). */
struct kept {
	struct kept *next;
	struct est_pin_file f;
	char path[];
};

static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
static struct kept *kept;

const struct est_pin_file *
est_pin_file_keep(const char *path)
{
	struct kept *k;

	pthread_mutex_lock(&kept_lock);
	for (k = kept; k != NULL && strcmp(k->path, path) != 0; k = k->next)
		;
	if (k == NULL && (k = calloc(1, sizeof(*k) + strlen(path) + 1)) != NULL) {
		strcpy(k->path, path);
		k->f.path = k->path;
		k->next = kept;
		kept = k;
	}
	pthread_mutex_unlock(&kept_lock);
	return k != NULL ? &k->f : NULL;
}
