/* estctl enroll: not delivered yet (issue 4). */
#include "config.h"

#include <stdio.h>

#include "commands.h"

int
cmd_enroll(int argc, char **argv)
{
	fprintf(stderr, "estctl enroll: not available in this build yet (planned in issue 4)\n");
	return 70;
}
