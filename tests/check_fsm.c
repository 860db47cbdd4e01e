/*
 * check_fsm - the state machine of a certificate (agent/pipeline/pl_fsm):
 * every stage x event pair, allowed or rejected, against a table written
 * here independently of the one in the code. A transition added or removed
 * there without being added or removed here fails.
 */
#include "pl_fsm.h"

#include <check.h>
#include <stdbool.h>
#include <string.h>

/* The allowed transitions, and nothing else. */
static const struct {
	enum pl_stage from;
	enum pl_event ev;
	enum pl_stage to;
} allowed[] = {
	{ PL_IDLE, PL_EV_CHECK, PL_CHECKING },
	{ PL_IDLE, PL_EV_RENEW, PL_KEYGEN },
	{ PL_IDLE, PL_EV_REDEPLOY, PL_DEPLOYING },
	{ PL_IDLE, PL_EV_RELOAD, PL_RELOADING },
	{ PL_IDLE, PL_EV_REVOKE, PL_REVOKING },
	{ PL_IDLE, PL_EV_CLOSE, PL_CLOSING },
	{ PL_CHECKING, PL_EV_CHECKED, PL_IDLE },
	{ PL_CHECKING, PL_EV_REPAIRED, PL_RELOADING },
	{ PL_KEYGEN, PL_EV_KEY_READY, PL_ISSUING },
	{ PL_KEYGEN, PL_EV_FAILED, PL_IDLE },
	{ PL_ISSUING, PL_EV_ISSUED, PL_DEPLOYING },
	{ PL_ISSUING, PL_EV_FAILED, PL_IDLE },
	{ PL_DEPLOYING, PL_EV_DEPLOYED, PL_RELOADING },
	{ PL_DEPLOYING, PL_EV_REISSUE, PL_KEYGEN },
	{ PL_DEPLOYING, PL_EV_FAILED, PL_IDLE },
	{ PL_RELOADING, PL_EV_RELOADED, PL_VERIFYING },
	{ PL_RELOADING, PL_EV_SETTLED, PL_IDLE },
	{ PL_RELOADING, PL_EV_REFUSED, PL_ROLLING_BACK },
	{ PL_VERIFYING, PL_EV_SETTLED, PL_IDLE },
	{ PL_VERIFYING, PL_EV_REFUSED, PL_ROLLING_BACK },
	{ PL_ROLLING_BACK, PL_EV_ROLLED_BACK, PL_RELOADING },
	{ PL_ROLLING_BACK, PL_EV_FAILED, PL_IDLE },
	{ PL_REVOKING, PL_EV_REVOKED, PL_IDLE },
};

/* Pair i of PL_N_STAGES x PL_N_EVENTS: allowed with the stage above, or rejected. */
START_TEST(test_fsm_every_pair)
{
	enum pl_stage s = (enum pl_stage)(_i / PL_N_EVENTS);
	enum pl_event ev = (enum pl_event)(_i % PL_N_EVENTS);
	int want = -1;

	for (size_t k = 0; k < sizeof(allowed) / sizeof(allowed[0]); k++)
		if (allowed[k].from == s && allowed[k].ev == ev)
			want = (int)allowed[k].to;
	ck_assert_msg(pl_fsm_next(s, ev) == want, "%s --%s--> %d, want %d", pl_stage_name(s),
		      pl_event_name(ev), pl_fsm_next(s, ev), want);
}
END_TEST

/* Every stage and event has a name; out-of-range values are rejected, not read past. */
START_TEST(test_fsm_names_and_range)
{
	for (int s = 0; s < PL_N_STAGES; s++)
		ck_assert_str_ne(pl_stage_name((enum pl_stage)s), "?");
	for (int e = 0; e < PL_N_EVENTS; e++)
		ck_assert_str_ne(pl_event_name((enum pl_event)e), "?");
	ck_assert_str_eq(pl_stage_name(PL_N_STAGES), "?");
	ck_assert_str_eq(pl_event_name(PL_N_EVENTS), "?");
	ck_assert_int_eq(pl_fsm_next(PL_N_STAGES, PL_EV_CHECK), -1);
	ck_assert_int_eq(pl_fsm_next(PL_IDLE, PL_N_EVENTS), -1);
	ck_assert_int_eq(pl_fsm_next((enum pl_stage)-1, PL_EV_CHECK), -1);
}
END_TEST

/*
 * Properties the pipeline relies on: CLOSING is final; only IDLE starts work;
 * every stage with work in flight has a way back to IDLE.
 */
START_TEST(test_fsm_properties)
{
	for (int e = 0; e < PL_N_EVENTS; e++)
		ck_assert_int_eq(pl_fsm_next(PL_CLOSING, (enum pl_event)e), -1);
	for (int s = 0; s < PL_N_STAGES; s++) {
		if (s != PL_IDLE) {
			ck_assert_int_eq(pl_fsm_next((enum pl_stage)s, PL_EV_RENEW), -1);
			ck_assert_int_eq(pl_fsm_next((enum pl_stage)s, PL_EV_CHECK), -1);
			ck_assert_int_eq(pl_fsm_next((enum pl_stage)s, PL_EV_CLOSE), -1);
		}
		if (s == PL_IDLE || s == PL_CLOSING)
			continue;
		/* Breadth-first from s: IDLE must be reachable. */
		bool seen[PL_N_STAGES] = { false };
		int queue[PL_N_STAGES], head = 0, tail = 0;
		queue[tail++] = s;
		seen[s] = true;
		while (head < tail) {
			int at = queue[head++];
			for (int e = 0; e < PL_N_EVENTS; e++) {
				int to = pl_fsm_next((enum pl_stage)at, (enum pl_event)e);
				if (to >= 0 && !seen[to]) {
					seen[to] = true;
					queue[tail++] = to;
				}
			}
		}
		ck_assert_msg(seen[PL_IDLE], "no way back to idle from %s",
			      pl_stage_name((enum pl_stage)s));
	}
}
END_TEST

Suite *fsm_suite(void)
{
	Suite *s = suite_create("fsm");
	TCase *tc = tcase_create("fsm");

	tcase_add_loop_test(tc, test_fsm_every_pair, 0, PL_N_STAGES * PL_N_EVENTS);
	tcase_add_test(tc, test_fsm_names_and_range);
	tcase_add_test(tc, test_fsm_properties);
	suite_add_tcase(s, tc);
	return s;
}
