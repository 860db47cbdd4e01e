/*
 * np_child - the network process's main (see np_child.c): certsyncd runs it
 * when started as `certsyncd --netproc ROOT [USER]` by its own parent.
 */
#ifndef NP_CHILD_H
#define NP_CHILD_H

/* Never returns on success (exits when the parent goes); 2 when it cannot start. */
int np_child_main(int argc, char **argv);

#endif
