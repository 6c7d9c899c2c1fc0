/* estctl server: not delivered yet (issue 3). */
#include "config.h"

#include <stdio.h>

#include "commands.h"

int
cmd_server(int argc, char **argv)
{
	fprintf(stderr, "estctl server: not available in this build yet (planned in issue 3)\n");
	return 70;
}
