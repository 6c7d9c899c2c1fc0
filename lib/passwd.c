#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <nettle/pbkdf2.h>

#include "b64.h"
#include "file.h"
#include "passwd.h"

#define SALT_LEN 16
#define HASH_LEN 32
#define SCHEME "$pbkdf2-sha256$"

struct user {
	char name[EST_USER_MAX + 1];
	unsigned iterations;
	unsigned char salt[SALT_LEN], hash[HASH_LEN];
	unsigned char memo[HASH_LEN];   /* HMAC(memo_key, password) once verified */
	int memo_set;
};

struct est_passwd {
	pthread_mutex_t lock;
	unsigned char memo_key[32];
	struct user *v;
	size_t n;
};

int
est_passwd_user_valid(const char *u)
{
	size_t i, n = strlen(u);

	if (n == 0 || n > EST_USER_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!(u[i] >= 'a' && u[i] <= 'z') && !(u[i] >= 'A' && u[i] <= 'Z') &&
		    !(u[i] >= '0' && u[i] <= '9') && u[i] != '-' && u[i] != '_' && u[i] != '.' &&
		    u[i] != '@')
			return 0;
	return 1;
}

static void
derive(const unsigned char *pw, size_t len, const unsigned char *salt, unsigned iter,
       unsigned char out[HASH_LEN])
{
	struct hmac_sha256_ctx ctx;

	hmac_sha256_set_key(&ctx, len, pw);
	PBKDF2(&ctx, hmac_sha256_update, hmac_sha256_digest, SHA256_DIGEST_SIZE, iter, SALT_LEN,
	       salt, HASH_LEN, out);
	gnutls_memset(&ctx, 0, sizeof(ctx));
}

/* Decode base64 of exactly LEN bytes into OUT. */
static int
b64_exact(const char *s, size_t slen, unsigned char *out, size_t len)
{
	gnutls_datum_t d = { NULL, 0 };
	int ok;

	if (est_b64_decode(s, slen, &d, NULL) < 0)
		return 0;
	ok = d.size == len;
	if (ok)
		memcpy(out, d.data, len);
	gnutls_free(d.data);
	return ok;
}

/* "user:$pbkdf2-sha256$ITER$SALT$HASH" */
static int
parse_line(char *line, struct user *u)
{
	char *colon = strchr(line, ':'), *p, *salt, *hash, *end;
	unsigned long iter;

	if (colon == NULL || (size_t)(colon - line) > EST_USER_MAX)
		return 0;
	*colon = '\0';
	if (!est_passwd_user_valid(line) || strncmp(colon + 1, SCHEME, strlen(SCHEME)) != 0)
		return 0;
	p = colon + 1 + strlen(SCHEME);
	errno = 0;
	iter = strtoul(p, &end, 10);
	if (errno || end == p || *end != '$' || iter < 1000 || iter > 100000000)
		return 0;
	salt = end + 1;
	if ((hash = strchr(salt, '$')) == NULL)
		return 0;
	memset(u, 0, sizeof(*u));
	strcpy(u->name, line);
	u->iterations = (unsigned)iter;
	return b64_exact(salt, (size_t)(hash - salt), u->salt, SALT_LEN) &&
	       b64_exact(hash + 1, strlen(hash + 1), u->hash, HASH_LEN);
}

static int
parse_all(struct est_passwd *pw, char *text, const char *path, struct est_error *e)
{
	char *line, *save = NULL;
	unsigned lineno = 0;
	struct user *v;

	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		line[strcspn(line, "\r")] = '\0';
		if (line[0] == '\0' || line[0] == '#')
			continue;
		if ((v = realloc(pw->v, (pw->n + 1) * sizeof(*v))) == NULL)
			return est_fail(e, EST_EINTERNAL, "out of memory");
		pw->v = v;
		if (!parse_line(line, &v[pw->n]))
			return est_fail(e, EST_ECONFIG, "%s:%u: expected USER:" SCHEME
					"ITERATIONS$SALT$HASH", path, lineno);
		pw->n++;
	}
	return 0;
}

int
est_passwd_load(const char *path, struct est_passwd **out, struct est_error *e)
{
	gnutls_datum_t text = { NULL, 0 };
	struct est_passwd *pw;
	int rc;

	*out = NULL;
	if ((pw = calloc(1, sizeof(*pw))) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	pthread_mutex_init(&pw->lock, NULL);
	if ((rc = gnutls_rnd(GNUTLS_RND_KEY, pw->memo_key, sizeof(pw->memo_key))) < 0) {
		rc = est_fail(e, EST_EINTERNAL, "random: %s", gnutls_strerror(rc));
		goto out;
	}
	rc = est_file_read(path, EST_FILE_MAX, &text, e);
	if (rc == -EST_ENOINPUT) {
		rc = 0;         /* no users yet */
		goto out;
	}
	if (rc < 0)
		goto out;
	rc = parse_all(pw, (char *)text.data, path, e);
out:
	gnutls_free(text.data);
	if (rc < 0)
		est_passwd_free(pw);
	else
		*out = pw;
	return rc;
}

void
est_passwd_free(struct est_passwd *pw)
{
	if (pw == NULL)
		return;
	if (pw->v != NULL)
		gnutls_memset(pw->v, 0, pw->n * sizeof(*pw->v));
	free(pw->v);
	gnutls_memset(pw->memo_key, 0, sizeof(pw->memo_key));
	pthread_mutex_destroy(&pw->lock);
	free(pw);
}

static struct user *
find(struct est_passwd *pw, const char *name)
{
	size_t i;

	for (i = 0; i < pw->n; i++)
		if (strcmp(pw->v[i].name, name) == 0)
			return &pw->v[i];
	return NULL;
}

/* Split "Basic <b64>" into USER and the password (in CRED, wiped by the caller). */
static int
basic_decode(const char *auth, struct est_secret *cred, char user[EST_USER_MAX + 1],
	     const unsigned char **pass, size_t *plen, struct est_error *e)
{
	gnutls_datum_t d = { NULL, 0 };
	unsigned char *colon;
	size_t ulen;

	if (strncasecmp(auth, "Basic", 5) != 0 || (auth[5] != ' ' && auth[5] != '\t'))
		return est_fail(e, EST_EREFUSED, "not HTTP Basic credentials");
	auth += 6;
	while (*auth == ' ' || *auth == '\t')
		auth++;
	if (est_b64_decode(auth, strlen(auth), &d, NULL) < 0)
		return est_fail(e, EST_EDATA, "malformed Basic credentials");
	cred->data = d.data;
	cred->len = d.size;
	if ((colon = memchr(d.data, ':', d.size)) == NULL)
		return est_fail(e, EST_EDATA, "malformed Basic credentials");
	ulen = (size_t)(colon - d.data);
	if (ulen > EST_USER_MAX)
		return est_fail(e, EST_EREFUSED, "wrong user name or password");
	memcpy(user, d.data, ulen);
	user[ulen] = '\0';
	*pass = colon + 1;
	*plen = d.size - ulen - 1;
	return 0;
}

int
est_passwd_check(struct est_passwd *pw, const char *auth, char user[EST_USER_MAX + 1],
		 struct est_error *e)
{
	static const unsigned char dummy_salt[SALT_LEN];
	struct est_secret cred = { NULL, 0 };
	unsigned char memo[HASH_LEN], h[HASH_LEN];
	struct hmac_sha256_ctx mac;
	const unsigned char *pass;
	struct user *u;
	size_t plen;
	int rc, ok = 0;

	if ((rc = basic_decode(auth, &cred, user, &pass, &plen, e)) < 0)
		goto out;
	u = est_passwd_user_valid(user) ? find(pw, user) : NULL;
	hmac_sha256_set_key(&mac, sizeof(pw->memo_key), pw->memo_key);
	hmac_sha256_update(&mac, plen, pass);
	hmac_sha256_digest(&mac, sizeof(memo), memo);
	pthread_mutex_lock(&pw->lock);
	ok = u != NULL && u->memo_set && memeql_sec(memo, u->memo, sizeof(memo));
	pthread_mutex_unlock(&pw->lock);
	if (!ok) {
		/* Unknown users cost the same derivation as known ones. */
		derive(pass, plen, u != NULL ? u->salt : dummy_salt,
		       u != NULL ? u->iterations : EST_PASSWD_ITERATIONS, h);
		ok = u != NULL && memeql_sec(h, u->hash, sizeof(h));
		if (ok) {
			pthread_mutex_lock(&pw->lock);
			memcpy(u->memo, memo, sizeof(memo));
			u->memo_set = 1;
			pthread_mutex_unlock(&pw->lock);
		}
	}
	if (!ok)
		rc = est_fail(e, EST_EREFUSED, "wrong user name or password");
out:
	gnutls_memset(&mac, 0, sizeof(mac));
	gnutls_memset(memo, 0, sizeof(memo));
	gnutls_memset(h, 0, sizeof(h));
	if (cred.data != NULL) {
		gnutls_memset(cred.data, 0, cred.len);
		gnutls_free(cred.data);
	}
	return rc;
}

static int
make_line(const char *user, const struct est_secret *password, unsigned iter, char **line,
	  struct est_error *e)
{
	unsigned char salt[SALT_LEN], hash[HASH_LEN];
	gnutls_datum_t s64 = { NULL, 0 }, h64 = { NULL, 0 };
	size_t n;
	int rc;

	if ((rc = gnutls_rnd(GNUTLS_RND_NONCE, salt, sizeof(salt))) < 0)
		return est_fail(e, EST_EINTERNAL, "random: %s", gnutls_strerror(rc));
	derive(password->data, password->len, salt, iter, hash);
	if ((rc = est_b64_encode(salt, sizeof(salt), 0, &s64, e)) < 0 ||
	    (rc = est_b64_encode(hash, sizeof(hash), 0, &h64, e)) < 0)
		goto out;
	n = strlen(user) + strlen(SCHEME) + 16 + s64.size + h64.size + 4;
	if ((*line = malloc(n)) == NULL) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	snprintf(*line, n, "%s:" SCHEME "%u$%s$%s\n", user, iter, s64.data, h64.data);
out:
	gnutls_memset(hash, 0, sizeof(hash));
	gnutls_free(s64.data);
	gnutls_free(h64.data);
	return rc;
}

/* OLD's lines except USER's, then LINE. */
static char *
replace_user(const char *old, size_t oldlen, const char *user, const char *line)
{
	size_t ul = strlen(user), n = 0;
	const char *p = old, *end = old + oldlen, *nl;
	char *out;

	if ((out = malloc(oldlen + strlen(line) + 2)) == NULL)
		return NULL;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		nl = nl != NULL ? nl + 1 : end;
		if (!((size_t)(nl - p) > ul && strncmp(p, user, ul) == 0 && p[ul] == ':')) {
			memcpy(out + n, p, (size_t)(nl - p));
			n += (size_t)(nl - p);
			if (out[n - 1] != '\n')
				out[n++] = '\n';
		}
		p = nl;
	}
	strcpy(out + n, line);
	return out;
}

int
est_passwd_set(const char *path, const char *user, const struct est_secret *password,
	       unsigned iterations, struct est_error *e)
{
	gnutls_datum_t old = { NULL, 0 };
	char *line = NULL, *text = NULL;
	int rc;

	if (!est_passwd_user_valid(user))
		return est_fail(e, EST_EUSAGE, "%s: a user name is 1-64 of [A-Za-z0-9._@-]", user);
	rc = est_file_read(path, EST_FILE_MAX, &old, e);
	if (rc < 0 && rc != -EST_ENOINPUT)
		return rc;
	if ((rc = make_line(user, password, iterations, &line, e)) < 0)
		goto out;
	if ((text = replace_user(old.data ? (char *)old.data : "", old.size, user, line)) == NULL) {
		rc = est_fail(e, EST_EINTERNAL, "out of memory");
		goto out;
	}
	rc = est_file_write(path, text, strlen(text), EST_WRITE_PRIVATE, e);
out:
	gnutls_free(old.data);
	free(line);
	free(text);
	return rc;
}
