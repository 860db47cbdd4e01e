/*
 * check_main.c - the runner shared by every Check suite. Each check_<module>.c
 * is linked with this file and CS_SUITE names its suite constructor.
 */
#include <check.h>
#include <stdlib.h>

Suite *CS_SUITE(void);

int main(void)
{
	SRunner *sr = srunner_create(CS_SUITE());
	int failed;

	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
