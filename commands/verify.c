/* estctl verify: not delivered yet (issue 2). */
#include "config.h"

#include <stdio.h>

#include "commands.h"

int
cmd_verify(int argc, char **argv)
{
	fprintf(stderr, "estctl verify: not available in this build yet (planned in issue 2)\n");
	return 70;
}
