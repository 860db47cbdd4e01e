/*
 * check_main.c - the runner shared by every Check suite. Each check_<module>.c
 * is linked with this file and CS_SUITE names its suite constructor.
 */
#include <check.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdlib.h>

Suite *CS_SUITE(void);

int main(void)
{
	SRunner *sr = srunner_create(CS_SUITE());
	int failed;

	/* What certsyncd's main() sets up for the whole process (cs_http, cs_ctlsock). */
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return EXIT_FAILURE;
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
