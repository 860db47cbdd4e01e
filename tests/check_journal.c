/*
 * check_journal - native journald logging (cs_journal, cs_log's journal
 * sink) with sd_journal_sendv stubbed at link time (journal_stub.c): the
 * sink is chosen when $JOURNAL_STREAM names stderr; an event's entry
 * carries MESSAGE_ID, CERTSYNC_CERT, CERTSYNC_EVENT, CERTSYNC_SERIAL,
 * CERTSYNC_ISSUER and PRIORITY; an ordinary "mail: text" line carries
 * CERTSYNC_CERT=mail, a line about no cert none; every MESSAGE_ID has its
 * section in the catalog the package installs.
 */
#include "cs_config.h"
#include "cs_events.h"
#include "cs_journal.h"
#include "cs_log.h"
#include "journal_stub.h"
#include "testutil.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* $JOURNAL_STREAM as systemd sets it for a service whose stderr is the journal. */
static void stderr_is_journal(void)
{
	struct stat st;
	char v[64];

	ck_assert_int_eq(fstat(STDERR_FILENO, &st), 0);
	snprintf(v, sizeof(v), "%llu:%llu", (unsigned long long)st.st_dev,
		 (unsigned long long)st.st_ino);
	ck_assert_int_eq(setenv("JOURNAL_STREAM", v, 1), 0);
}

/* Opens the log on the (stubbed) journal, as certsyncd -f under systemd. */
static void open_journal(void)
{
	stderr_is_journal();
	ck_assert_int_eq(cs_journal_log_open("certsyncd", true, CS_LOG_DEBUG), CS_LOG_JOURNAL);
	journal_stub_reset(0);
}

/* Tells the log that the configuration has certs "mail" and "web.example". */
static void two_certs(void)
{
	static struct cs_cfg_cert certs[2];
	static struct cs_config cfg;

	certs[0].name = "web.example";
	certs[1].name = "mail";
	cfg.certs = certs;
	cfg.n_certs = 2;
	cs_journal_names(&cfg);
}

#ifdef CS_HAVE_SYSTEMD

START_TEST(test_journal_choice)
{
	/* Not the journal: no variable, another file, nonsense. */
	unsetenv("JOURNAL_STREAM");
	unsetenv("INVOCATION_ID");
	ck_assert(!cs_journal_wanted(true));
	ck_assert(!cs_journal_wanted(false));
	setenv("JOURNAL_STREAM", "1:1", 1);
	ck_assert(!cs_journal_wanted(true));
	setenv("JOURNAL_STREAM", "x", 1);
	ck_assert(!cs_journal_wanted(true));
	ck_assert_int_eq(cs_journal_log_open("certsyncd", true, CS_LOG_INFO), CS_LOG_STDERR);
	ck_assert_int_eq(cs_journal_log_open("certsyncd", false, CS_LOG_INFO), CS_LOG_SYSLOG);
	/* stderr is the journal's stream: -f (the packaged unit) and --once too. */
	stderr_is_journal();
	ck_assert(cs_journal_wanted(true));
	ck_assert_int_eq(cs_journal_log_open("certsyncd", true, CS_LOG_INFO), CS_LOG_JOURNAL);
	ck_assert_int_eq(cs_log_get_sink(), CS_LOG_JOURNAL);
}
END_TEST

START_TEST(test_journal_event_fields)
{
	struct cs_event ev = {
		.type = CS_EVENT_FAILED,
		.cert = "mail",
		.issuer = "localca",
		.serial = "1A2B3C",
		.renewal = 3,
		.outcome = CS_RENEWAL_FAILED,
		.text = "issuer localca: refused",
	};

	open_journal();
	cs_journal_event(NULL, &ev);
	ck_assert_int_eq(journal_stub_count(), 1);
	ck_assert_str_eq(journal_stub_field(0, "MESSAGE_ID"), "f93cacfa9f0a4e94af0b8729bf0fcb49");
	ck_assert_str_eq(journal_stub_field(0, "MESSAGE_ID"), cs_journal_message_id(CS_EVENT_FAILED));
	ck_assert_str_eq(journal_stub_field(0, "CERTSYNC_CERT"), "mail");
	ck_assert_str_eq(journal_stub_field(0, "CERTSYNC_EVENT"), "failed");
	ck_assert_str_eq(journal_stub_field(0, "CERTSYNC_SERIAL"), "1A2B3C");
	ck_assert_str_eq(journal_stub_field(0, "CERTSYNC_ISSUER"), "localca");
	ck_assert_str_eq(journal_stub_field(0, "PRIORITY"), "4"); /* LOG_WARNING */
	ck_assert_str_eq(journal_stub_field(0, "SYSLOG_IDENTIFIER"), "certsyncd");
	ck_assert_str_eq(journal_stub_field(0, "MESSAGE"),
			 "mail: event failed (renewal 3, outcome failed, serial 1A2B3C, issuer "
			 "localca): issuer localca: refused");

	/* A success is info; what is not known is not there. */
	ev = (struct cs_event){ .type = CS_EVENT_DEPLOYED, .cert = "web.example", .gen = 2 };
	cs_journal_event(NULL, &ev);
	ck_assert_int_eq(journal_stub_count(), 2);
	ck_assert_str_eq(journal_stub_field(1, "MESSAGE_ID"), cs_journal_message_id(CS_EVENT_DEPLOYED));
	ck_assert_str_eq(journal_stub_field(1, "CERTSYNC_CERT"), "web.example");
	ck_assert_str_eq(journal_stub_field(1, "CERTSYNC_EVENT"), "deployed");
	ck_assert_str_eq(journal_stub_field(1, "PRIORITY"), "6"); /* LOG_INFO */
	ck_assert_ptr_null(journal_stub_field(1, "CERTSYNC_SERIAL"));
	ck_assert_ptr_null(journal_stub_field(1, "CERTSYNC_ISSUER"));
	ck_assert_str_eq(journal_stub_field(1, "MESSAGE"), "web.example: event deployed (generation 2)");

	/* A reload that failed is a warning. */
	ev = (struct cs_event){ .type = CS_EVENT_RELOADED, .cert = "mail", .service = "postfix",
				.result = CS_EVENT_ERROR };
	cs_journal_event(NULL, &ev);
	ck_assert_str_eq(journal_stub_field(2, "PRIORITY"), "4");
	ck_assert_str_eq(journal_stub_field(2, "CERTSYNC_EVENT"), "reloaded");
}
END_TEST

START_TEST(test_journal_message_ids)
{
	/* One per type, 32 lowercase hex digits, no two alike. */
	for (int t = 0; t < CS_EVENT_N; t++) {
		const char *id = cs_journal_message_id((enum cs_event_type)t);

		ck_assert_ptr_nonnull(id);
		ck_assert_uint_eq(strlen(id), 32);
		ck_assert_uint_eq(strspn(id, "0123456789abcdef"), 32);
		for (int u = 0; u < t; u++)
			ck_assert_str_ne(id, cs_journal_message_id((enum cs_event_type)u));
	}
	ck_assert_ptr_null(cs_journal_message_id(CS_EVENT_N));
}
END_TEST

START_TEST(test_journal_lines)
{
	open_journal();
	two_certs();
	cs_notice("mail: deployed generation %d", 4);
	cs_info("web.example: valid until tomorrow");
	cs_notice("configuration reloaded");
	cs_info("mailx: not a cert of the configuration");
	cs_info("mail:no space after the colon");
	cs_err("issuer localca: mail: a cert named later in the line");
	ck_assert_int_eq(journal_stub_count(), 6);
	ck_assert_str_eq(journal_stub_field(0, "CERTSYNC_CERT"), "mail");
	ck_assert_str_eq(journal_stub_field(0, "MESSAGE"), "mail: deployed generation 4");
	ck_assert_str_eq(journal_stub_field(0, "PRIORITY"), "5"); /* LOG_NOTICE */
	ck_assert_str_eq(journal_stub_field(0, "SYSLOG_IDENTIFIER"), "certsyncd");
	/* An ordinary line is no event. */
	ck_assert_ptr_null(journal_stub_field(0, "MESSAGE_ID"));
	ck_assert_ptr_null(journal_stub_field(0, "CERTSYNC_EVENT"));
	ck_assert_str_eq(journal_stub_field(1, "CERTSYNC_CERT"), "web.example");
	for (int i = 2; i < 6; i++) {
		ck_assert_ptr_null(journal_stub_field(i, "CERTSYNC_CERT"));
		ck_assert_ptr_nonnull(journal_stub_field(i, "MESSAGE"));
	}
	ck_assert_str_eq(journal_stub_field(5, "PRIORITY"), "3"); /* LOG_ERR */

	/* A configuration without mail (SIGHUP): mail's lines carry nothing any more. */
	static struct cs_cfg_cert one = { .name = "web.example" };
	static struct cs_config cfg = { .certs = &one, .n_certs = 1 };
	cs_journal_names(&cfg);
	cs_info("mail: gone");
	cs_info("web.example: still here");
	ck_assert_ptr_null(journal_stub_field(6, "CERTSYNC_CERT"));
	ck_assert_str_eq(journal_stub_field(7, "CERTSYNC_CERT"), "web.example");

	/* The level filter holds for the journal too. */
	cs_log_set_level(CS_LOG_NOTICE);
	cs_info("mail: not written");
	ck_assert_int_eq(journal_stub_count(), 8);
	cs_log_set_names(NULL, 0);
}
END_TEST

START_TEST(test_journal_refused)
{
	/* journald refuses: the entry goes to syslog (not observable here), nothing breaks. */
	open_journal();
	two_certs();
	journal_stub_reset(-ENOENT);
	cs_warn("mail: journald is not there");
	ck_assert_int_eq(journal_stub_count(), 0);
	journal_stub_reset(0);
	cs_warn("mail: it is back");
	ck_assert_int_eq(journal_stub_count(), 1);
	cs_log_set_names(NULL, 0);
}
END_TEST

#else

START_TEST(test_journal_choice)
{
	/* Built without libsystemd: never the journal. */
	stderr_is_journal();
	ck_assert(!cs_journal_wanted(true));
	ck_assert_int_eq(cs_journal_log_open("certsyncd", true, CS_LOG_INFO), CS_LOG_STDERR);
	two_certs();
}
END_TEST

#endif

START_TEST(test_journal_catalog)
{
	/* Every MESSAGE_ID has a section in the catalog, with a subject. */
	const char *src = getenv("CS_SOURCE_DIR");
	char *path, *text;

	ck_assert_ptr_nonnull(src);
	path = cs_test_path("%s/packaging/journald/certsync.catalog", src);
	text = cs_test_read(path, NULL);
	ck_assert_msg(text != NULL, "%s cannot be read", path);
	for (int t = 0; t < CS_EVENT_N; t++) {
		char head[64];
		const char *at;

		snprintf(head, sizeof(head), "\n-- %s\n", cs_journal_message_id((enum cs_event_type)t));
		at = strstr(text, head);
		ck_assert_msg(at != NULL, "no section %s for %s", head + 1,
			      cs_events_type_name((enum cs_event_type)t));
		ck_assert_msg(strncmp(at + strlen(head), "Subject: ", 9) == 0,
			      "section of %s: no Subject: first", cs_events_type_name((enum cs_event_type)t));
	}
	free(text);
	free(path);
}
END_TEST

Suite *journal_suite(void)
{
	Suite *s = suite_create("journal");
	TCase *tc = tcase_create("journal");

	tcase_add_test(tc, test_journal_choice);
#ifdef CS_HAVE_SYSTEMD
	tcase_add_test(tc, test_journal_event_fields);
	tcase_add_test(tc, test_journal_message_ids);
	tcase_add_test(tc, test_journal_lines);
	tcase_add_test(tc, test_journal_refused);
#endif
	tcase_add_test(tc, test_journal_catalog);
	suite_add_tcase(s, tc);
	return s;
}
