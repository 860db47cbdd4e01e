/*
 * cs_netproc_host - the host calls netproc makes (the account key's public
 * half, a JWS, the EAB, a challenge, a listening socket), once np_permit has
 * let them through: run by the parent's local acme host, answered to the
 * netproc that asked if it still lives.
 */
#include "cs_netproc_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- host calls ---------------------------------------------------------- */

static void pcall_answer(struct pcall *pc, struct cs_frame_buf *b, int fd)
{
	if (cs_netproc__alive(pc->gen))
		cs_netproc__send_buf(b, fd);
	else
		cs_frame_buf_free(b);
	cs_netproc__px_unref(pc->px);
	free(pc);
}

static void pcall_fail(struct pcall *pc, int status, const char *error)
{
	struct cs_frame_buf b = { 0 };

	cs_frame_begin(&b, NP_P_FAIL, pc->id);
	np_proto_put_status(&b, status);
	cs_frame_str(&b, NP_T_ERROR, error);
	pcall_answer(pc, &b, -1);
}

static void on_key(void *arg, int status, const struct cs_der *pub, bool existed, const char *error)
{
	struct pcall *pc = arg;
	struct cs_frame_buf b = { 0 };

	if (status != 0) {
		pcall_fail(pc, status, error);
		return;
	}
	cs_frame_begin(&b, NP_P_KEY, pc->id);
	cs_frame_bytes(&b, NP_T_PUBKEY, pub->p, pub->n);
	cs_frame_u64(&b, NP_T_EXISTED, existed ? 1 : 0);
	pcall_answer(pc, &b, -1);
}

static void on_text(void *arg, int status, const char *text, const char *error)
{
	struct pcall *pc = arg;
	struct cs_frame_buf b = { 0 };

	if (status != 0) {
		pcall_fail(pc, status, error);
		return;
	}
	cs_frame_begin(&b, NP_P_TEXT, pc->id);
	cs_frame_str(&b, NP_T_TEXT, text);
	pcall_answer(pc, &b, -1);
}

static void on_chall(void *arg, int status, const char *error)
{
	struct pcall *pc = arg;
	struct preq *r = cs_netproc__req_find(pc->req);
	struct cs_frame_buf b = { 0 };

	/*
	 * Keep what is set up, so that it is taken down if netproc dies before it
	 * does; set up for a netproc already gone, it comes down at once.
	 */
	if (status == 0 && pc->set && !cs_netproc__alive(pc->gen)) {
		cs_netproc__chall_takedown(pc->px, pc->ch);
		pc->ch = NULL;
	} else if (r != NULL && status == 0 && pc->set) {
		LIST_INSERT_HEAD(&r->challs, pc->ch, link);
		pc->ch = NULL;
	} else if (r != NULL && status == 0) {
		struct chall_rec *c = LIST_FIRST(&r->challs), *next;
		for (; c != NULL; c = next) {
			next = LIST_NEXT(c, link);
			if (strcmp(c->token, pc->ch->token) == 0 && c->type == pc->ch->type) {
				LIST_REMOVE(c, link);
				cs_netproc__chall_free(c);
			}
		}
	}
	cs_netproc__chall_free(pc->ch);
	cs_frame_begin(&b, NP_P_DONE, pc->id);
	np_proto_put_status(&b, status);
	cs_frame_str(&b, NP_T_ERROR, error);
	pcall_answer(pc, &b, -1);
}

static void on_fd(void *arg, int status, int fd, const char *error)
{
	struct pcall *pc = arg;
	struct cs_frame_buf b = { 0 };

	if (status != 0) {
		pcall_fail(pc, status, error);
		return;
	}
	cs_frame_begin(&b, NP_P_FD, pc->id);
	pcall_answer(pc, &b, fd); /* the channel sends a copy */
	close(fd);
}

static struct chall_rec *chall_of(const struct cs_frame_msg *m)
{
	struct chall_rec *c = calloc(1, sizeof(*c));
	const char *cn = cs_frame_str_of(m, NP_T_CERT_NAME);

	if (c == NULL)
		return NULL;
	c->type = (enum cs_acme_challenge)cs_frame_u64_of(m, NP_T_CHALLENGE, 0);
	c->ident = strdup(cs_frame_str_of(m, NP_T_IDENT));
	c->token = strdup(cs_frame_str_of(m, NP_T_TOKEN));
	c->cert_name = strdup(cn ? cn : "");
	if (c->ident == NULL || c->token == NULL || c->cert_name == NULL) {
		cs_netproc__chall_free(c);
		return NULL;
	}
	return c;
}

/* Runs the permitted host call m in the local host of its issuer. */
void cs_netproc__host_call(const struct cs_frame_msg *m)
{
	struct preq *r = cs_netproc__req_find(cs_frame_u64_of(m, NP_T_REQ, 0));
	struct pcall *pc = calloc(1, sizeof(*pc));
	const struct cs_acme_host_ops *h = &cs_acme_host_local_ops;
	struct cs_acme_host_sign sr;
	struct cs_acme_host_chall hc;
	int rc = -ENOMEM;

	if (pc == NULL)
		return; /* netproc's call times out with its request */
	pc->px = r->px;
	pc->gen = S.gen;
	pc->id = m->id;
	pc->req = r->id;
	pc->type = m->type;
	r->px->refs++;
	switch (m->type) {
	case NP_N_KEY:
		rc = h->account_key(pc->px->host, NULL, on_key, pc);
		break;
	case NP_N_SIGN:
		sr = (struct cs_acme_host_sign){ cs_frame_str_of(m, NP_T_KID),
						 cs_frame_str_of(m, NP_T_NONCE),
						 cs_frame_str_of(m, NP_T_URL),
						 cs_frame_str_of(m, NP_T_PAYLOAD) };
		rc = h->sign(pc->px->host, NULL, &sr, on_text, pc);
		break;
	case NP_N_EAB:
		rc = h->eab(pc->px->host, NULL, cs_frame_str_of(m, NP_T_URL), on_text, pc);
		break;
	case NP_N_CHALL:
		pc->set = cs_frame_u64_of(m, NP_T_SET, 0) != 0;
		pc->ch = chall_of(m);
		if (pc->ch == NULL)
			break;
		hc = (struct cs_acme_host_chall){ pc->ch->type, pc->ch->ident, pc->ch->token,
						  pc->ch->cert_name };
		rc = h->challenge(pc->px->host, NULL, &hc, pc->set, on_chall, pc);
		break;
	case NP_N_LISTEN:
		rc = h->listen(pc->px->host, NULL, on_fd, pc);
		break;
	}
	if (rc < 0) {
		cs_netproc__chall_free(pc->ch);
		pc->ch = NULL;
		pcall_fail(pc, rc, "the parent cannot do it now");
	}
}

