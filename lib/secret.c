#include "config.h"

#include <stdlib.h>

#include <gnutls/gnutls.h>

#include "secret.h"

int
est_secret_alloc(struct est_secret *s, size_t len)
{
	s->data = calloc(1, len + 1);
	s->len = s->data != NULL ? len : 0;
	return s->data != NULL ? 0 : -1;
}

void
est_secret_free(struct est_secret *s)
{
	if (s->data != NULL) {
		gnutls_memset(s->data, 0, s->len + 1);
		free(s->data);
	}
	s->data = NULL;
	s->len = 0;
}
