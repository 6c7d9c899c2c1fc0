#include "config.h"

#include <ctype.h>
#include <string.h>

#include <nettle/base64.h>

#include "b64.h"

int
est_b64_looks_like(const void *src, size_t len)
{
	const unsigned char *p = src;
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		if (isspace(p[i]))
			continue;
		if (!isalnum(p[i]) && p[i] != '+' && p[i] != '/' && p[i] != '=')
			return 0;
		n++;
	}
	return n > 0;
}

int
est_b64_decode(const void *src, size_t len, gnutls_datum_t *out, struct est_error *e)
{
	const unsigned char *p = src;
	struct base64_decode_ctx ctx;
	unsigned char *dst;
	char *clean;
	size_t i, n = 0, dlen;
	int ok;

	out->data = NULL;
	out->size = 0;
	if ((clean = gnutls_malloc(len + 1)) == NULL)
		return est_fail(e, EST_EINTERNAL, "out of memory");
	for (i = 0; i < len; i++)
		if (!isspace(p[i]))
			clean[n++] = (char)p[i];
	dlen = BASE64_DECODE_LENGTH(n);
	if ((dst = gnutls_malloc(dlen + 1)) == NULL) {
		gnutls_free(clean);
		return est_fail(e, EST_EINTERNAL, "out of memory");
	}
	base64_decode_init(&ctx);
	ok = n > 0 && n % 4 == 0 && base64_decode_update(&ctx, &dlen, dst, n, clean) &&
	     base64_decode_final(&ctx);
	gnutls_memset(clean, 0, n);
	gnutls_free(clean);
	if (!ok) {
		gnutls_memset(dst, 0, BASE64_DECODE_LENGTH(n));
		gnutls_free(dst);
		return est_fail(e, EST_EDATA, "not valid base64");
	}
	dst[dlen] = '\0';
	out->data = dst;
	out->size = (unsigned)dlen;
	return 0;
}

int
est_b64_encode(const void *src, size_t len, int wrap, gnutls_datum_t *out,
	       struct est_error *e)
{
	size_t raw = BASE64_ENCODE_RAW_LENGTH(len), lines = wrap ? (raw + 63) / 64 : 0;
	unsigned char *tmp, *dst;
	size_t i, n = 0;

	out->data = NULL;
	out->size = 0;
	tmp = gnutls_malloc(raw + 1);
	dst = gnutls_malloc(raw + lines + 1);
	if (tmp == NULL || dst == NULL) {
		gnutls_free(tmp);
		gnutls_free(dst);
		return est_fail(e, EST_EINTERNAL, "out of memory");
	}
	base64_encode_raw((char *)tmp, len, src);
	for (i = 0; i < raw; i++) {
		dst[n++] = tmp[i];
		if (wrap && (i % 64 == 63 || i == raw - 1))
			dst[n++] = '\n';
	}
	dst[n] = '\0';
	gnutls_free(tmp);
	out->data = dst;
	out->size = (unsigned)n;
	return 0;
}
