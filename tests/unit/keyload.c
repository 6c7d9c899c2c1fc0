/* keyload FILE: load a private key with est_key_load and print its type name.
 * A check program for tests/bats/keygen.bats (keys written by openssl and
 * certtool must be read); exits as estctl would on failure. */
#include "config.h"

#include <stdio.h>

#include "key.h"

int
main(int argc, char **argv)
{
	gnutls_privkey_t key = NULL;
	struct est_error e;
	enum est_key_type t;

	if (argc != 2) {
		fputs("usage: keyload FILE\n", stderr);
		return 64;
	}
	if (est_key_load(argv[1], &key, &e) < 0) {
		fprintf(stderr, "keyload: %s\n", e.msg);
		return est_exit_code(e.code);
	}
	t = est_key_type_of(key);
	gnutls_privkey_deinit(key);
	if (t == EST_KEY__MAX) {
		fputs("keyload: a key est_key_load accepted has no type\n", stderr);
		return 70;
	}
	printf("%s\n", est_key_type_names[t]);
	return 0;
}
