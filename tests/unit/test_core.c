/* Unit tests of the shared primitives: base64, enrollment keys, paths, files,
 * PIN files, errors. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "b64.h"
#include "file.h"
#include "key.h"
#include "pin.h"
#include "tap.h"

static void
test_b64(void)
{
	static const struct {
		const char *in;
		const char *out;     /* NULL: must be refused */
	} cases[] = {
		{ "aGVsbG8=", "hello" },
		{ "aGVs\nbG8=\n", "hello" },
		{ " a G V s b G 8 = ", "hello" },
		{ "aGVsbG8", NULL },          /* missing padding */
		{ "aGV*bG8=", NULL },         /* not in the alphabet */
		{ "", NULL },
		{ "====", NULL },
	};
	struct est_error e;
	gnutls_datum_t d;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = est_b64_decode(cases[i].in, strlen(cases[i].in), &d, &e);
		if (cases[i].out == NULL)
			tap_ok(rc == -EST_EDATA, "base64 refuses %s", cases[i].in);
		else
			tap_ok(rc == 0 && d.size == strlen(cases[i].out) &&
			       memcmp(d.data, cases[i].out, d.size) == 0, "base64 decodes %s", cases[i].in);
		gnutls_free(d.data);
	}
}

static void
test_b64_wrap(void)
{
	unsigned char raw[100];
	gnutls_datum_t enc, dec;
	struct est_error e;
	int ok;

	memset(raw, 0xab, sizeof(raw));
	ok = est_b64_encode(raw, sizeof(raw), 1, &enc, &e) == 0;
	tap_ok(ok && enc.size == 136 + 3 && enc.data[64] == '\n' && enc.data[enc.size - 1] == '\n',
	       "base64 output has 64-character lines ending in a newline");
	ok = ok && est_b64_decode(enc.data, enc.size, &dec, &e) == 0;
	tap_ok(ok && dec.size == sizeof(raw) && memcmp(dec.data, raw, sizeof(raw)) == 0,
	       "base64 round-trips through line breaks");
	gnutls_free(enc.data);
	if (ok)
		gnutls_free(dec.data);
}

static void
test_enrkey(void)
{
	static const struct {
		const char *text;
		int ok;
	} cases[] = {
		{ "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n", 1 },
		{ "000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", 1 },
		{ "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1", 0 },
		{ "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1fff", 0 },
		{ "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 0 },
		{ "", 0 },
	};
	struct est_secret k, hex;
	struct est_error e;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = est_enrkey_parse((const unsigned char *)cases[i].text, strlen(cases[i].text),
				      "k", &k, &e);
		tap_ok(cases[i].ok ? rc == 0 && k.len == 32 && k.data[31] == 0x1f : rc == -EST_EDATA,
		       "enrollment key text %zu is %s", i, cases[i].ok ? "read" : "refused");
		est_secret_free(&k);
	}
	rc = est_enrkey_generate(&hex, &e);
	tap_ok(rc == 0 && hex.len == 65 && hex.data[64] == '\n' &&
	       strspn((char *)hex.data, "0123456789abcdef") == 64,
	       "a new enrollment key is 64 lowercase hex characters and a newline");
	est_secret_free(&hex);
}

static void
test_stem(void)
{
	static const char *const cases[][2] = {
		{ "fleet-key-1.key", "fleet-key-1" },
		{ "/etc/est/fleet-key-1.key", "fleet-key-1" },
		{ "dir.d/plain", "plain" },
		{ ".hidden", ".hidden" },
		{ "a.b.c", "a.b" },
	};
	size_t i;
	char *s;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s = est_path_stem(cases[i][0]);
		tap_ok(s != NULL && strcmp(s, cases[i][1]) == 0, "stem of %s is %s", cases[i][0],
		       cases[i][1]);
		free(s);
	}
}

static void
test_write(void)
{
	char dir[] = "/tmp/estctl-test-XXXXXX", path[64];
	struct est_error e;
	gnutls_datum_t d;
	struct stat st;
	int rc;

	if (mkdtemp(dir) == NULL) {
		tap_ok(0, "mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/k.pem", dir);
	rc = est_file_write(path, "one", 3, EST_WRITE_EXCL | EST_WRITE_PRIVATE, &e);
	tap_ok(rc == 0 && stat(path, &st) == 0 && (st.st_mode & 0777) == 0600,
	       "a private file is created with mode 0600");
	rc = est_file_write(path, "two", 3, EST_WRITE_EXCL | EST_WRITE_PRIVATE, &e);
	tap_ok(rc == -EST_EEXIST && est_file_read(path, 100, &d, &e) == 0 && d.size == 3 &&
	       memcmp(d.data, "one", 3) == 0, "an exclusive write leaves an existing file alone");
	gnutls_free(d.data);
	rc = est_file_write(path, "three", 5, EST_WRITE_PRIVATE, &e);
	tap_ok(rc == 0 && est_file_read(path, 100, &d, &e) == 0 && d.size == 5,
	       "a forced write replaces the file");
	gnutls_free(d.data);
	rc = est_file_read(path, 2, &d, &e);
	tap_ok(rc == -EST_EDATA, "a file over the size limit is refused");
	unlink(path);
	rc = est_file_read(path, 100, &d, &e);
	tap_ok(rc == -EST_ENOINPUT && strstr(e.msg, "k.pem") != NULL,
	       "a missing file is 'no input' and named");
	rmdir(dir);
}

static void
test_pin_source(void)
{
	static const struct {
		const char *url;
		int rc;              /* 1 found, 0 none, or -EST_EDATA */
		const char *bare;
		const char *path;
	} cases[] = {
		{ "pkcs11:token=a;object=k?pin-source=file:/etc/pin", 1, "pkcs11:token=a;object=k", "/etc/pin" },
		{ "pkcs11:token=a?pin-source=file:///etc/pin", 1, "pkcs11:token=a", "/etc/pin" },
		{ "pkcs11:token=a?pin-source=/etc/pin", 1, "pkcs11:token=a", "/etc/pin" },
		{ "pkcs11:token=a?pin-source=/etc/my%20pin", 1, "pkcs11:token=a", "/etc/my pin" },
		{ "pkcs11:token=a?pin-source=/p&module-name=softhsm2", 1,
		  "pkcs11:token=a?module-name=softhsm2", "/p" },
		{ "pkcs11:token=a?module-name=softhsm2&pin-source=/p", 1,
		  "pkcs11:token=a?module-name=softhsm2", "/p" },
		{ "pkcs11:token=a;pin-source=/p;object=k", 1, "pkcs11:token=a;object=k", "/p" },
		{ "pkcs11:token=a;pin-source=/p?module-name=m", 1, "pkcs11:token=a?module-name=m", "/p" },
		/* A query value may hold '?' and '/' unencoded (RFC 7512, p11-kit). */
		{ "pkcs11:token=a?pin-source=file:/p/pin?x=1", 1, "pkcs11:token=a", "/p/pin?x=1" },
		{ "pkcs11:token=a?module-name=p11?pin-source=/x", 0, NULL, NULL },
		{ "pkcs11:token=a;object=k", 0, NULL, NULL },
		{ "pkcs11:token=a?pin-value=1234", 0, NULL, NULL },
		{ "pkcs11:object=my-pin-source=x", 0, NULL, NULL },
		{ "pkcs11:token=a?pin-source=pin.txt", -EST_EDATA, NULL, NULL },
		{ "pkcs11:token=a?pin-source=file:pin.txt", -EST_EDATA, NULL, NULL },
		{ "pkcs11:token=a?pin-source=file://host/pin", -EST_EDATA, NULL, NULL },
		{ "pkcs11:token=a?pin-source=https://example.com/pin", -EST_EDATA, NULL, NULL },
		{ "pkcs11:token=a?pin-source=/p%2", -EST_EDATA, NULL, NULL },
		{ "pkcs11:token=a?pin-source=/p%00x", -EST_EDATA, NULL, NULL },
		{ "pkcs11:token=a?pin-source=/p&pin-source=/q", -EST_EDATA, NULL, NULL },
		{ "pkcs11:token=a?pin-value=1234&pin-source=/p", -EST_EDATA, NULL, NULL },
	};
	struct est_error e;
	char *bare, *path;
	size_t i;
	int rc, ok;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = est_pin_source_split(cases[i].url, &bare, &path, &e);
		ok = rc == cases[i].rc;
		if (ok && rc == 1)
			ok = strcmp(bare, cases[i].bare) == 0 && strcmp(path, cases[i].path) == 0;
		else if (ok)
			ok = bare == NULL && path == NULL;
		if (ok && rc < 0)
			ok = strstr(e.msg, "1234") == NULL;
		tap_ok(ok, "pin-source of %s", cases[i].url);
		free(bare);
		free(path);
	}
}

/* Write TEXT to PATH with MODE; 0, or -1000. */
static int
pin_write(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0 || chmod(path, mode) < 0)
		return -1000;
	return 0;
}

/* Write TEXT to PATH with MODE and read the PIN from it (at most 8 bytes). */
static int
pin_from(const char *path, const char *text, mode_t mode, struct est_secret *pin,
	 struct est_error *e)
{
	if (pin_write(path, text, mode) < 0)
		return -1000;
	return est_pin_file_read(path, 8, pin, e);
}

static void
test_pin_file(void)
{
	static const struct {
		const char *text;
		mode_t mode;
		int rc;
		const char *pin;
	} cases[] = {
		{ "4321\n", 0600, 0, "4321" },
		{ "4321", 0600, 0, "4321" },
		{ "4321\r\nsecond line\n", 0400, 0, "4321" },
		{ "12345678\n", 0600, 0, "12345678" },
		{ "123456789\n", 0600, -EST_EDATA, NULL },
		{ "123456789012345678901234567890", 0600, -EST_EDATA, NULL },
		{ "\n4321\n", 0600, -EST_EDATA, NULL },
		{ "", 0600, -EST_EDATA, NULL },
		{ "4321\n", 0644, -EST_ECONFIG, NULL },
		{ "4321\n", 0640, -EST_ECONFIG, NULL },
		{ "4321\n", 0602, -EST_ECONFIG, NULL },
	};
	char dir[] = "/tmp/estctl-test-XXXXXX", path[64];
	struct est_secret pin;
	struct est_error e;
	size_t i;
	int rc, ok;

	if (mkdtemp(dir) == NULL) {
		tap_ok(0, "mkdtemp");
		return;
	}
	snprintf(path, sizeof(path), "%s/pin", dir);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = pin_from(path, cases[i].text, cases[i].mode, &pin, &e);
		ok = rc == cases[i].rc;
		if (ok && rc == 0)
			ok = pin.len == strlen(cases[i].pin) && memcmp(pin.data, cases[i].pin, pin.len) == 0;
		else if (ok)
			ok = pin.data == NULL && strstr(e.msg, path) != NULL && strstr(e.msg, "4321") == NULL &&
			     strstr(e.msg, "1234") == NULL;
		tap_ok(ok, "PIN file %zu (mode %03o)", i, (unsigned)cases[i].mode);
		est_secret_free(&pin);
		unlink(path);
	}
	/* Another user's PIN file is refused; root's is taken (root can swap any file). */
	if (geteuid() == 0) {
		rc = -1000;
		if (pin_write(path, "4321\n", 0600) == 0 && chown(path, 65534, 65534) == 0)
			rc = est_pin_file_read(path, 8, &pin, &e);
		tap_ok(rc == -EST_ECONFIG && strstr(e.msg, path) != NULL &&
		       strstr(e.msg, "uid 65534") != NULL && strstr(e.msg, "4321") == NULL,
		       "a PIN file of another user is refused");
		est_secret_free(&pin);
		unlink(path);
	} else {
		tap_skip("a PIN file of another user is refused", "needs root to chown");
	}
	/* The callback GnuTLS calls: the PIN once, never a retry or the final try. */
	if (pin_write(path, "4321\n", 0600) < 0) {
		tap_ok(0, "write %s", path);
	} else {
		struct est_pin_file f = { path, &e };
		char buf[16];

		tap_ok(est_pin_file_cb(&f, 0, "pkcs11:token=t", "t", 0, buf, sizeof(buf)) == 0 &&
		       strcmp(buf, "4321") == 0, "the PIN callback gives the file's PIN");
		memset(buf, 0, sizeof(buf));
		tap_ok(est_pin_file_cb(&f, 0, "pkcs11:token=t", "t", GNUTLS_PIN_COUNT_LOW, buf,
				       sizeof(buf)) == 0 && strcmp(buf, "4321") == 0,
		       "the PIN callback gives it when the count is low");
		memset(buf, 0, sizeof(buf));
		rc = est_pin_file_cb(&f, 1, "pkcs11:token=t", "t", GNUTLS_PIN_WRONG, buf, sizeof(buf));
		tap_ok(rc < 0 && buf[0] == '\0' && strstr(e.msg, "wrong PIN") != NULL,
		       "the PIN callback does not retry a refused PIN");
		rc = est_pin_file_cb(&f, 0, "pkcs11:token=t", "t", GNUTLS_PIN_FINAL_TRY, buf,
				     sizeof(buf));
		tap_ok(rc < 0 && buf[0] == '\0' && strstr(e.msg, path) != NULL &&
		       strstr(e.msg, "one more PIN attempt") != NULL && strstr(e.msg, "4321") == NULL,
		       "the PIN callback does not spend the token's final try");
		unlink(path);
	}
	rc = est_pin_file_read(path, 8, &pin, &e);
	tap_ok(rc == -EST_ENOINPUT && strstr(e.msg, path) != NULL, "a missing PIN file is named");
	rc = est_pin_file_read(dir, 8, &pin, &e);
	tap_ok(rc == -EST_ECONFIG && strstr(e.msg, dir) != NULL, "a directory is no PIN file");
	rmdir(dir);
}

static void
test_exit_codes(void)
{
	static const int want[EST_ERR__MAX] = { 0, 1, 64, 65, 66, 69, 70, 73, 74, 75, 76, 77, 78 };
	int i, ok = 1;

	for (i = 0; i < EST_ERR__MAX; i++)
		ok &= est_exit_code((enum est_err)i) == want[i];
	tap_ok(ok, "every error maps to its documented exit status");
}

int
main(void)
{
	test_b64();
	test_b64_wrap();
	test_enrkey();
	test_stem();
	test_write();
	test_pin_source();
	test_pin_file();
	test_exit_codes();
	return tap_done();
}
