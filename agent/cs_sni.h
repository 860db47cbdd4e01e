/*
 * cs_sni - an [sni] section of the configuration turned into the options of
 * cs_snimap (a copy that outlives the configuration), and brought up to date
 * after a deploy of one of its certs.
 */
#ifndef CS_SNI_H
#define CS_SNI_H

#include "cs_config.h"
#include "cs_snimap.h"

/* Fills o with copies of what n says. Returns 0 or -ENOMEM (o then freed). */
int cs_sni_opts_dup(const struct cs_cfg_sni *n, struct cs_snimap_opts *o);

/* Frees what cs_sni_opts_dup put in o; accepts an empty o. */
void cs_sni_opts_free(struct cs_snimap_opts *o);

/*
 * After cert c's outputs changed (a deploy, a rollback, a repair): every
 * [sni] that names c made current before the services reload, logged
 * ("sni NAME: ..."). Blocks: work queue only. A failure is logged; the
 * agent's own pass of the section (cs_capsync) retries it and reports it.
 */
void cs_sni_after_deploy(const struct cs_cfg_cert *c);

#endif
