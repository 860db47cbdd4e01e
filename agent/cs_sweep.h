/*
 * cs_sweep - at start, removes the temporary files that writers killed
 * before their rename left behind, in every directory the agent writes to
 * (outputs, state_dir/certs, state_dir/generations/NAME, ACME account and
 * challenge directories, local CA directories, the metrics file's). A temp
 * file of a bundle is a copy of a private key: it must not outlive the crash.
 */
#ifndef CS_SWEEP_H
#define CS_SWEEP_H

#include "cs_config.h"

/*
 * Sweeps the directories of cfg. Call it only while no writer runs (before
 * the pipeline starts, under the state_dir lock). Returns the number of files
 * removed; what it removes and what it cannot read are logged.
 */
int cs_sweep_all(const struct cs_config *cfg);

#endif
