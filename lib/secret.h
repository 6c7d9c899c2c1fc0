/* A buffer for key material whose free function wipes it. */
#ifndef EST_SECRET_H
#define EST_SECRET_H

#include <stddef.h>

struct est_secret {
	unsigned char *data;
	size_t len;
};

/* Allocate LEN zeroed bytes (plus a NUL that is not counted); 0 or -1. */
int est_secret_alloc(struct est_secret *s, size_t len);

/* Wipe and free; safe on a zeroed or already freed secret. */
void est_secret_free(struct est_secret *s);

#endif
