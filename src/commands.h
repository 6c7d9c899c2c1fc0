/* The verbs: one file each under commands/, int cmd_<verb>(argc, argv)
 * with argv[0] the verb's name. */
#ifndef EST_COMMANDS_H
#define EST_COMMANDS_H

int cmd_cacerts(int argc, char **argv);
int cmd_csrattrs(int argc, char **argv);
int cmd_encrypt(int argc, char **argv);
int cmd_enroll(int argc, char **argv);
int cmd_keygen(int argc, char **argv);
int cmd_mkcsr(int argc, char **argv);
int cmd_rotate(int argc, char **argv);
int cmd_server(int argc, char **argv);
int cmd_verify(int argc, char **argv);

#endif
