/*
 * check_config - the configuration parser: every value type, every error,
 * includes, and that all errors of a file are reported at once with the file,
 * line and key.
 */
#include "cs_config.h"
#include "cs_registry.h"
#include "cs_fp.h"
#include "cs_log.h"
#include "testutil.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <limits.h>


/* ---- value parsers, table-driven ---- */

static const struct {
	const char *in;
	int ok;
	int64_t seconds;
} durations[] = {
	{ "30s", 1, 30 },	 { "15m", 1, 900 },	     { "12h", 1, 43200 },
	{ "90d", 1, 7776000 }, { "2w", 1, 1209600 },    { "10y", 1, 315360000 },
	{ "1d 12h", 1, 129600 }, { "90", 0, 0 },	     { "d", 0, 0 },
	{ "-5d", 0, 0 },	 { "5x", 0, 0 },	     { "", 0, 0 },
	{ "0d", 0, 0 },	 { "12h30", 0, 0 },	     { "99999999d", 0, 0 },
};

START_TEST(test_config_duration)
{
	int64_t v = -1;
	char err[256] = "";
	int rc = cs_config_parse_duration(durations[_i].in, &v, err, sizeof(err));

	if (durations[_i].ok) {
		ck_assert_int_eq(rc, 0);
		ck_assert_int_eq(v, durations[_i].seconds);
	} else {
		ck_assert_int_eq(rc, -1);
		ck_assert_ptr_nonnull(strstr(err, "is not a duration"));
	}
}
END_TEST

static const struct {
	const char *in;
	int ok;
	int is_percent;
	double percent;
	int64_t seconds;
} spans[] = {
	{ "33%", 1, 1, 33.0, 0 },  { "2.5%", 1, 1, 2.5, 0 },	  { "0%", 1, 1, 0.0, 0 },
	{ "30d", 1, 0, 0, 2592000 }, { "12h", 1, 0, 0, 43200 },  { "100%", 0, 0, 0, 0 },
	{ "%", 0, 0, 0, 0 },	     { "-3%", 0, 0, 0, 0 },	  { "abc%", 0, 0, 0, 0 },
	{ "33", 0, 0, 0, 0 },
};

START_TEST(test_config_span)
{
	struct cs_cfg_span s;
	char err[256] = "";
	int rc = cs_config_parse_span(spans[_i].in, &s, err, sizeof(err));

	if (!spans[_i].ok) {
		ck_assert_int_eq(rc, -1);
		ck_assert_msg(strstr(err, spans[_i].in) != NULL, "error names the value: %s", err);
		return;
	}
	ck_assert_int_eq(rc, 0);
	ck_assert(s.set);
	ck_assert_int_eq(s.is_percent, spans[_i].is_percent);
	if (s.is_percent)
		ck_assert_double_eq_tol(s.percent, spans[_i].percent, 1e-9);
	else
		ck_assert_int_eq(s.seconds, spans[_i].seconds);
}
END_TEST

static const struct {
	const char *in;
	int ok;
	unsigned mode;
} modes[] = {
	{ "0600", 1, 0600 }, { "0640", 1, 0640 }, { "0644", 1, 0644 }, { "0750", 1, 0750 },
	{ "01777", 1, 01777 }, { "600", 0, 0 },   { "0689", 0, 0 },	  { "0x1ff", 0, 0 },
	{ "rw-", 0, 0 },     { "077777", 0, 0 },
};

START_TEST(test_config_mode)
{
	mode_t m = 0;
	char err[256] = "";
	int rc = cs_config_parse_mode(modes[_i].in, &m, err, sizeof(err));

	if (modes[_i].ok) {
		ck_assert_int_eq(rc, 0);
		ck_assert_uint_eq(m, modes[_i].mode);
	} else {
		ck_assert_int_eq(rc, -1);
		ck_assert_ptr_nonnull(strstr(err, "octal file mode"));
	}
}
END_TEST

static const struct {
	const char *in;
	int ok;
	int value;
} bools[] = {
	{ "yes", 1, 1 }, { "no", 1, 0 },  { "true", 1, 1 },  { "false", 1, 0 }, { "on", 1, 1 },
	{ "off", 1, 0 }, { "1", 1, 1 },	  { "0", 1, 0 },     { "YES", 1, 1 },	 { "maybe", 0, 0 },
	{ "", 0, 0 },
};

START_TEST(test_config_bool)
{
	bool b = false;
	char err[256] = "";
	int rc = cs_config_parse_bool(bools[_i].in, &b, err, sizeof(err));

	if (bools[_i].ok) {
		ck_assert_int_eq(rc, 0);
		ck_assert_int_eq(b, bools[_i].value);
	} else {
		ck_assert_int_eq(rc, -1);
		ck_assert_ptr_nonnull(strstr(err, "is not yes or no"));
	}
}
END_TEST

START_TEST(test_config_user_group)
{
	uid_t u = 99;
	gid_t g = 99;
	char err[256] = "";

	ck_assert_int_eq(cs_config_parse_user("root", &u, err, sizeof(err)), 0);
	ck_assert_uint_eq(u, 0);
	ck_assert_int_eq(cs_config_parse_user("1234", &u, err, sizeof(err)), 0);
	ck_assert_uint_eq(u, 1234);
	ck_assert_int_eq(cs_config_parse_user("no-such-user-cs", &u, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "unknown user 'no-such-user-cs'");
	ck_assert_int_eq(cs_config_parse_group("root", &g, err, sizeof(err)), 0);
	ck_assert_uint_eq(g, 0);
	ck_assert_int_eq(cs_config_parse_group("no-such-group-cs", &g, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "unknown group 'no-such-group-cs'");
}
END_TEST

static const struct {
	const char *in;
	int ok;
} names[] = {
	{ "milly.example.com", 1 }, { "*.example.com", 1 }, { "localhost", 1 },
	{ "127.0.0.1", 1 },	    { "::1", 1 },	    { "2001:db8::25", 1 },
	{ "a-b.c", 1 },		    { "-bad.example", 0 },  { "bad-.example", 0 },
	{ "a..b", 0 },		    { "a b.example", 0 },   { "x.*.example", 0 },
	{ "", 0 },		    { "under_score.example", 0 },
};

START_TEST(test_config_name)
{
	char err[256] = "";
	int rc = cs_config_parse_name(names[_i].in, err, sizeof(err));

	ck_assert_int_eq(rc, names[_i].ok ? 0 : -1);
	if (!names[_i].ok)
		ck_assert_ptr_nonnull(strstr(err, "is neither a DNS name"));
}
END_TEST

static const struct {
	const char *in;
	int ok;
} urls[] = {
	{ "smtp://127.0.0.1:25", 1 },
	{ "submission://mail.example.com:587", 1 },
	{ "imap://127.0.0.1:143", 1 },
	{ "pop3://127.0.0.1", 1 },
	{ "smtps://[::1]:465", 1 },
	{ "imaps://127.0.0.1:993?sni=mail.example.com", 1 },
	{ "pop3s://h:995", 1 },
	{ "sieve://127.0.0.1:4190", 1 },
	{ "sieves://127.0.0.1", 0 },
	{ "smtp://host:25/path", 0 },
	{ "imaps://host?server=x", 0 },
	{ "http://127.0.0.1:80", 0 },
	{ "smtp://", 0 },
	{ "smtp://:25", 0 },
	{ "smtp://host:0", 0 },
	{ "smtp://host:99999", 0 },
	{ "127.0.0.1:25", 0 },
	{ "smtp://[::1", 0 },
};

START_TEST(test_config_verify_url)
{
	char err[256] = "";
	int rc = cs_config_parse_verify_url(urls[_i].in, err, sizeof(err));

	ck_assert_msg(rc == (urls[_i].ok ? 0 : -1), "%s: rc %d", urls[_i].in, rc);
	if (!urls[_i].ok)
		ck_assert_ptr_nonnull(strstr(err, "is not a verify URL"));
}
END_TEST

START_TEST(test_config_format_duration)
{
	char buf[64];

	cs_config_format_duration(90 * 86400, buf, sizeof(buf));
	ck_assert_str_eq(buf, "90d");
	cs_config_format_duration(86400 + 6 * 3600 + 5, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1d 6h");
	cs_config_format_duration(59, buf, sizeof(buf));
	ck_assert_str_eq(buf, "59s");
}
END_TEST

/* ---- whole files ---- */

static const char good_conf[] =
	"# a complete configuration, as in the documentation\n"
	"[agent]\n"
	"state_dir    = /var/lib/certsync          # schedule, generations\n"
	"socket       = /run/certsync/certsync.sock\n"
	"socket_group = root\n"
	"admin_group  = 0\n"
	"socket_mode  = 0660\n"
	"renew_before = 33%\n"
	"jitter       = 5%\n"
	"log_level    = debug\n"
	"metrics_file = /var/lib/node_exporter/certsync.prom\n"
	"\n"
	"[issuer \"local\"]\n"
	"type     = local-ca\n"
	"dir      = /var/lib/certsync/ca\n"
	"subject  = /C=US/ST=Minnesota/L=Saint Paul/O=The Milly Server/OU=milly.example.com/CN=Milly CA\n"
	"key      = ec:P-384\n"
	"validity = 90d\n"
	"ca_validity = 10y\n"
	"\n"
	"[issuer \"acme\"]\n"
	"type      = acme\n"
	"directory = https://acme.example/directory\n"
	"contact   = mailto:hostmaster@example.com\n"
	"challenge = http-01\n"
	"webroot   = /var/www/html\n"
	"ca_bundle = /etc/ssl/certs/ca-certificates.crt\n"
	"\n"
	"[cert \"mail\"]\n"
	"issuer    = local\n"
	"names     = milly.example.com, smtp.milly.example.com, 192.0.2.25\n"
	"key       = rsa:3072\n"
	"usage     = server\n"
	"bundle    = /etc/postfix/milly.pem\n"
	"fullchain = /etc/dovecot/private/milly.crt\n"
	"keyfile   = /etc/dovecot/private/milly.key\n"
	"owner     = root\n"
	"group     = root\n"
	"mode      = 0640\n"
	"reuse_key = yes\n"
	"reload    = postfix, dovecot\n"
	"verify    = smtp://127.0.0.1:25, imap://127.0.0.1:143, imaps://127.0.0.1:993\n"
	"renew_before = 30d\n"
	"\n"
	"[capath \"postfix\"]\n"
	"dir     = /etc/postfix/certs\n"
	"cafile  = /etc/postfix/CAcert.pem\n"
	"issuers = local\n"
	"reload  = postfix\n"
	"\n"
	"[clientcerts \"relay\"]\n"
	"dir     = /etc/postfix/clientcerts\n"
	"map     = /etc/postfix/relay_clientcerts\n"
	"digest  = sha1\n"
	"fingerprint = pubkey\n"
	"map_type = lmdb\n"
	"reload  = postfix\n"
	"\n"
	"[reload \"postfix\"]\n"
	"type       = postfix\n"
	"config_dir = /etc/postfix\n"
	"\n"
	"[reload \"dovecot\"]\n"
	"type   = dovecot\n"
	"config = /etc/dovecot/dovecot.conf\n"
	"\n"
	"[reload \"hook\"]\n"
	"type    = exec\n"
	"command = /usr/local/bin/notify \"cert renewed\"\n"
	"timeout = 30s\n";

START_TEST(test_config_good_file)
{
	struct cs_cfg_errors errs;
	char *path = cs_test_write(cs_test_tmp, "good.conf", good_conf, 0644);
	struct cs_config *cfg = cs_config_load(path, &errs);

	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "unexpected: %s\n", errs.v[i]);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_int_eq(errs.n, 0);
	ck_assert_str_eq(cfg->agent.state_dir, "/var/lib/certsync");
	ck_assert_uint_eq(cfg->agent.socket_group, 0);
	ck_assert_uint_eq(cfg->agent.socket_mode, 0660);
	ck_assert_int_eq(cfg->agent.log_level, CS_LOG_DEBUG);
	ck_assert(cfg->agent.renew_before.is_percent);
	ck_assert_double_eq_tol(cfg->agent.renew_before.percent, 33.0, 1e-9);
	ck_assert_int_eq(cfg->n_issuers, 2);
	const struct cs_cfg_issuer *local = cs_config_issuer(cfg, "local");
	ck_assert_ptr_nonnull(local);
	ck_assert_str_eq(local->type, "local-ca");
	ck_assert_str_eq(local->driver->type, "local-ca");
	const struct cs_cfg_localca *lc = local->cfg;
	ck_assert_int_eq(lc->key, CS_KEY_EC_P384);
	ck_assert_int_eq(lc->validity, 90 * 86400);
	ck_assert_str_eq(lc->subject, "/C=US/ST=Minnesota/L=Saint Paul/O=The Milly "
					 "Server/OU=milly.example.com/CN=Milly CA");
	const struct cs_cfg_issuer *acme = cs_config_issuer(cfg, "acme");
	ck_assert_str_eq(acme->type, "acme");
	ck_assert_str_eq(acme->driver->type, "acme");
	const struct cs_cfg_acme *ac = acme->cfg;
	ck_assert_int_eq(ac->contact.n, 1);
	ck_assert_str_eq(ac->webroot, "/var/www/html");
	const struct cs_cfg_cert *c = cs_config_cert(cfg, "mail");
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(c->names.n, 3);
	ck_assert_str_eq(c->names.v[2], "192.0.2.25");
	ck_assert_int_eq(c->key, CS_KEY_RSA_3072);
	ck_assert(c->reuse_key);
	ck_assert_uint_eq(c->mode, 0640);
	ck_assert_uint_eq(c->cert_mode, 0644);
	ck_assert_str_eq(c->bundle, "/etc/postfix/milly.pem");
	ck_assert_int_eq(c->reload.n, 2);
	ck_assert_int_eq(c->verify.n, 3);
	ck_assert(!c->renew_before.is_percent);
	ck_assert_int_eq(c->renew_before.seconds, 30 * 86400);
	ck_assert_int_eq(cfg->n_capaths, 1);
	ck_assert_str_eq(cfg->capaths[0].issuers.v[0], "local");
	ck_assert_int_eq(cfg->clientcerts[0].digest, CS_DIGEST_SHA1);
	ck_assert_int_eq(cfg->clientcerts[0].fingerprint, CS_FP_OF_PUBKEY);
	ck_assert_str_eq(cfg->clientcerts[0].map_type, "lmdb");
	const struct cs_cfg_reload *hook = cs_config_reload(cfg, "hook");
	ck_assert_int_eq(hook->type, CS_RELOAD_EXEC);
	ck_assert_str_eq(hook->command, "/usr/local/bin/notify \"cert renewed\"");
	ck_assert_int_eq(hook->timeout, 30);
	cs_config_free(cfg);
	free(path);
}
END_TEST

/* `issuer = a, b`: the list in order, the first as issuer/iss, failover_after. */
START_TEST(test_config_issuer_list)
{
	struct cs_cfg_errors errs;
	char *path = cs_test_write(cs_test_tmp, "list.conf",
				   "[issuer \"one\"]\ntype = local-ca\ndir = /srv/one\n"
				   "[issuer \"two\"]\ntype = local-ca\ndir = /srv/two\n"
				   "[cert \"www\"]\nissuer = two, one\nnames = www.example\n"
				   "bundle = /srv/www.pem\n"
				   "[cert \"mx\"]\nissuer = one\nnames = mx.example\n"
				   "bundle = /srv/mx.pem\nfailover_after = 1\n",
				   0644);
	struct cs_config *cfg = cs_config_load(path, &errs);

	ck_assert_ptr_nonnull(cfg);
	const struct cs_cfg_cert *www = &cfg->certs[0], *mx = &cfg->certs[1];
	ck_assert_str_eq(www->issuer, "two");
	ck_assert_uint_eq(www->issuers.n, 2);
	ck_assert_str_eq(www->issuers.v[1], "one");
	ck_assert_uint_eq(www->n_iss, 2);
	ck_assert_ptr_eq(www->iss, cs_config_issuer(cfg, "two"));
	ck_assert_ptr_eq(www->iss_all[0], www->iss);
	ck_assert_ptr_eq(www->iss_all[1], cs_config_issuer(cfg, "one"));
	ck_assert_uint_eq(www->failover_after, CS_CFG_FAILOVER_AFTER);
	ck_assert_str_eq(mx->issuer, "one");
	ck_assert_uint_eq(mx->n_iss, 1);
	ck_assert_uint_eq(mx->failover_after, 1);
	cs_config_free(cfg);
	cs_config_errors_free(&errs);
	free(path);
}
END_TEST

/* DANE and [notify]: what is not said takes its documented default. */
START_TEST(test_config_dane_notify_defaults)
{
	struct cs_cfg_errors errs;
	char *path = cs_test_write(cs_test_tmp, "dane.conf",
				   "[issuer \"ca\"]\ntype = local-ca\ndir = /srv/ca\n"
				   "[cert \"mx\"]\nissuer = ca\n"
				   "names = *.example, mx.example, 192.0.2.1, mx2.example\n"
				   "bundle = /srv/mx.pem\ndane = 3 1 1\ndane_hook = /usr/bin/h\n"
				   "[cert \"web\"]\nissuer = ca\nnames = www.example\n"
				   "bundle = /srv/www.pem\n"
				   "[notify \"ops\"]\nmail_to = ops@example, pm@example\n"
				   "[notify \"pager\"]\non = renewal\ncommand = /usr/bin/page \"a b\"\n"
				   "certs = web\ninterval = 10m\n",
				   0644);
	struct cs_config *cfg = cs_config_load(path, &errs);

	ck_assert_msg(cfg != NULL, "%s", errs.n ? errs.v[0] : "?");
	const struct cs_cfg_dane *d = &cfg->certs[0].dane;
	ck_assert_int_eq(d->usage, 3);
	ck_assert_int_eq(d->update, CS_DANE_UPDATE_HOOK);
	ck_assert_uint_eq(d->ports.n, 1);
	ck_assert_str_eq(d->ports.v[0], "25");
	/* The cert's names without the wildcard and the address. */
	ck_assert_uint_eq(d->names.n, 2);
	ck_assert_str_eq(d->names.v[0], "mx.example");
	ck_assert_str_eq(d->names.v[1], "mx2.example");
	ck_assert_str_eq(d->resolver, "127.0.0.1:53");
	ck_assert_int_eq(d->ttl, 3600);
	ck_assert_int_eq(cfg->certs[1].dane.usage, 0);
	ck_assert_uint_eq(cfg->n_notifies, 2);
	const struct cs_cfg_notify *ops = &cfg->notifies[0], *pager = &cfg->notifies[1];
	ck_assert_uint_eq(ops->on, CS_NOTIFY_FAILURE | CS_NOTIFY_RECOVERY | CS_NOTIFY_EXPIRY);
	ck_assert_uint_eq(ops->mail_to.n, 2);
	ck_assert_str_eq(ops->sendmail, "/usr/sbin/sendmail");
	ck_assert_int_eq(ops->interval, 3600);
	ck_assert_int_eq(ops->timeout, 30);
	ck_assert_uint_eq(ops->certs.n, 0);
	ck_assert_uint_eq(pager->on, CS_NOTIFY_RENEWAL);
	ck_assert_str_eq(pager->command, "/usr/bin/page \"a b\"");
	ck_assert_int_eq(pager->interval, 600);
	ck_assert_str_eq(pager->certs.v[0], "web");
	cs_config_free(cfg);
	cs_config_errors_free(&errs);
	free(path);
}
END_TEST

START_TEST(test_config_defaults)
{
	struct cs_cfg_errors errs;
	char *path = cs_test_write(cs_test_tmp, "min.conf",
				   "[issuer \"ca\"]\ntype = local-ca\ndir = /srv/ca\n"
				   "[cert \"www\"]\nissuer = ca\nnames = www.example\n"
				   "bundle = /srv/www.pem\n",
				   0644);
	struct cs_config *cfg = cs_config_load(path, &errs);

	ck_assert_ptr_nonnull(cfg);
	ck_assert_str_eq(cfg->agent.state_dir, "/var/lib/certsync");
	ck_assert_str_eq(cfg->agent.socket, "/run/certsync/certsync.sock");
	ck_assert(!cfg->agent.renew_before.set);
	const struct cs_cfg_localca *lc = cfg->issuers[0].cfg;
	ck_assert_int_eq(lc->key, CS_KEY_EC_P256);
	ck_assert_int_eq(lc->validity, 90 * 86400);
	ck_assert_int_eq(lc->ca_validity, 3650 * 86400);
	ck_assert_ptr_nonnull(lc->subject);
	ck_assert_int_eq(cfg->certs[0].key, CS_KEY_EC_P256);
	ck_assert_int_eq(cfg->certs[0].usage, CS_USAGE_SERVER);
	ck_assert_uint_eq(cfg->certs[0].mode, 0600);
	ck_assert_uint_eq(cfg->certs[0].owner, (uid_t)-1);
	cs_config_free(cfg);
	free(path);
}
END_TEST

/*
 * verify_interval: a duration, 0 or none, in [agent] (default 6h) and in
 * [cert] (set only when given there).
 */
static const struct {
	const char *agent, *cert; /* NULL: not given */
	int64_t agent_s;
	bool cert_set;
	int64_t cert_s;
} intervals[] = {
	{ NULL, NULL, 6 * 3600, false, 0 },
	{ "30m", NULL, 1800, false, 0 },
	{ "none", NULL, 0, false, 0 },
	{ "0", "2s", 0, true, 2 },
	{ NULL, "0", 6 * 3600, true, 0 },
	{ NULL, "none", 6 * 3600, true, 0 },
	{ "1d", "0s", 86400, true, 0 },
	{ "1h 30m", "90s", 5400, true, 90 },
};

START_TEST(test_config_verify_interval)
{
	struct cs_cfg_errors errs;
	char *conf, *path;

	ck_assert_int_ge(asprintf(&conf,
				  "[agent]\n%s%s\n[issuer \"ca\"]\ntype = local-ca\ndir = /srv/ca\n"
				  "[cert \"www\"]\nissuer = ca\nnames = www.example\n"
				  "bundle = /srv/www.pem\nverify = smtp://127.0.0.1\n%s%s\n",
				  intervals[_i].agent ? "verify_interval = " : "",
				  intervals[_i].agent ? intervals[_i].agent : "",
				  intervals[_i].cert ? "verify_interval = " : "",
				  intervals[_i].cert ? intervals[_i].cert : ""),
			 0);
	path = cs_test_write(cs_test_tmp, "interval.conf", conf, 0644);
	struct cs_config *cfg = cs_config_load(path, &errs);

	for (size_t i = 0; i < errs.n; i++)
		fprintf(stderr, "case %d: unexpected: %s\n", _i, errs.v[i]);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_int_eq(cfg->agent.verify_interval.seconds, intervals[_i].agent_s);
	ck_assert_int_eq(cfg->certs[0].verify_interval.set, intervals[_i].cert_set);
	ck_assert_int_eq(cfg->certs[0].verify_interval.seconds, intervals[_i].cert_s);
	cs_config_free(cfg);
	free(conf);
	free(path);
}
END_TEST

/* [agent] live_dir is every cert's, unless a cert says otherwise or none. */
START_TEST(test_config_live_dir)
{
	struct cs_cfg_errors errs;
	char *path = cs_test_write(cs_test_tmp, "live.conf",
				   "[agent]\nlive_dir = /srv/live/\n"
				   "[issuer \"ca\"]\ntype = local-ca\ndir = /srv/ca\n"
				   "[cert \"www\"]\nissuer = ca\nnames = www.example\n"
				   "[cert \"own\"]\nissuer = ca\nnames = own.example\n"
				   "live_dir = /srv/own\n"
				   "[cert \"fixed\"]\nissuer = ca\nnames = fixed.example\n"
				   "live_dir = none\nbundle = /srv/fixed.pem\n",
				   0644);
	struct cs_config *cfg = cs_config_load(path, &errs);

	for (size_t i = 0; cfg == NULL && i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.v[i]);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_str_eq(cfg->agent.live_dir, "/srv/live/");
	ck_assert_str_eq(cfg->certs[0].live_dir, "/srv/live");
	ck_assert_str_eq(cfg->certs[0].live_path[CS_CFG_LIVE_FILES - 1],
			 "/srv/live/www/privkey.pem");
	ck_assert_str_eq(cfg->certs[0].live_path[0], "/srv/live/www/bundle.pem");
	ck_assert_str_eq(cfg->certs[1].live_dir, "/srv/own");
	ck_assert_str_eq(cfg->certs[1].live_path[1], "/srv/own/own/fullchain.pem");
	ck_assert_ptr_null(cfg->certs[2].live_dir);
	ck_assert_ptr_null(cfg->certs[2].live_path[0]);
	cs_config_free(cfg);
	free(path);
}
END_TEST

START_TEST(test_config_sni)
{
	struct cs_cfg_errors errs;
	char *path = cs_test_write(cs_test_tmp, "sni.conf",
				   "[agent]\nlive_dir = /srv/live\n"
				   "[issuer \"ca\"]\ntype = local-ca\ndir = /srv/ca\n"
				   "[cert \"a\"]\nissuer = ca\nnames = a.example, *.a.example\n"
				   "live_dir = none\nbundle = /srv/a.pem\nreload = pf\n"
				   "[cert \"b\"]\nissuer = ca\nnames = b.example\n"
				   "[cert \"c\"]\nissuer = ca\nnames = c.example\nlive_dir = none\n"
				   "keyfile = /srv/c.key\nfullchain = /srv/c.pem\n"
				   "[sni \"pf\"]\ntype = postfix\ncerts = a, b, c\n"
				   "map = /etc/pf/sni\nreload = pf\n"
				   "[sni \"dc\"]\ntype = dovecot\ncerts = b, c\n"
				   "conf = /etc/dc/sni.conf\ndovecot_version = 2.4\nreload = dc\n"
				   "[reload \"pf\"]\ntype = postfix\nconfig_dir = /etc/pf\n"
				   "[reload \"dc\"]\ntype = dovecot\nconfig = /etc/dc/dovecot.conf\n",
				   0644);
	struct cs_config *cfg = cs_config_load(path, &errs);
	const struct cs_cfg_sni *pf, *dc;

	for (size_t i = 0; cfg == NULL && i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.v[i]);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_uint_eq(cfg->n_snis, 2);
	pf = &cfg->snis[0];
	dc = &cfg->snis[1];
	ck_assert_int_eq(pf->type, CS_SNI_POSTFIX);
	ck_assert_str_eq(pf->map_type, "hash");
	ck_assert_int_eq(pf->mode, 0600);
	ck_assert_str_eq(pf->config_dir, "/etc/pf");
	/* Postfix: one key-first file where there is one; a wildcard as ".parent". */
	ck_assert_uint_eq(pf->n_entries, 4);
	ck_assert_str_eq(pf->entries[0].name, "a.example");
	ck_assert_str_eq(pf->entries[1].name, ".a.example");
	ck_assert_ptr_null(pf->entries[1].key);
	ck_assert_str_eq(pf->entries[1].chain, "/srv/a.pem");
	ck_assert_str_eq(pf->entries[2].name, "b.example");
	ck_assert_ptr_null(pf->entries[2].key);
	ck_assert_str_eq(pf->entries[2].chain, "/srv/live/b/bundle.pem");
	ck_assert_str_eq(pf->entries[3].key, "/srv/c.key");
	ck_assert_str_eq(pf->entries[3].chain, "/srv/c.pem");
	/* Dovecot: the live pair, read at each reload; 2.4 names; its own mode. */
	ck_assert_int_eq(dc->type, CS_SNI_DOVECOT);
	ck_assert_int_eq(dc->dovecot_version, 24);
	ck_assert_int_eq(dc->mode, 0644);
	ck_assert_str_eq(dc->dovecot_config, "/etc/dc/dovecot.conf");
	ck_assert_uint_eq(dc->n_entries, 2);
	ck_assert_str_eq(dc->entries[0].key, "/srv/live/b/privkey.pem");
	ck_assert_str_eq(dc->entries[0].chain, "/srv/live/b/fullchain.pem");
	/* Separate key and chain files for Dovecot: a warning names the cert. */
	ck_assert_uint_eq(cfg->warnings.n, 1);
	ck_assert_msg(strstr(cfg->warnings.v[0], "[sni \"dc\"]: cert c has separate keyfile"),
		      "%s", cfg->warnings.v[0]);
	/* Each cert knows its tables and reloads their services once. */
	ck_assert_uint_eq(cfg->certs[0].n_sni, 1);
	ck_assert_uint_eq(cfg->certs[0].reload.n, 1);
	ck_assert_uint_eq(cfg->certs[1].n_sni, 2);
	ck_assert_ptr_eq(cfg->certs[1].sni[1], dc);
	ck_assert_uint_eq(cfg->certs[1].reload.n, 2);
	ck_assert_str_eq(cfg->certs[1].reload.v[0], "pf");
	ck_assert_str_eq(cfg->certs[1].reload.v[1], "dc");
	cs_config_free(cfg);
	free(path);
}
END_TEST

/*
 * Each case: a configuration (appended to a valid base that defines issuer
 * "ca", reloader "pf" and cert "base") and the error expected, as the line
 * number in the whole file and a fragment of the message. The base is 11
 * lines long, so the case's first line is line 12.
 */
static const char err_base[] = "[agent]\n"		     /* 1 */
			       "state_dir = /tmp/cs\n"	     /* 2 */
			       "[issuer \"ca\"]\n"	     /* 3 */
			       "type = local-ca\n"	     /* 4 */
			       "dir = /srv/ca\n"	     /* 5 */
			       "[reload \"pf\"]\n"	     /* 6 */
			       "type = postfix\n"	     /* 7 */
			       "[cert \"base\"]\n"	     /* 8 */
			       "issuer = ca\n"		     /* 9 */
			       "names = base.example\nbundle = /srv/base.pem\n"; /* 10, 11 */

static const struct {
	const char *conf;
	int line;
	const char *fragment;
} error_cases[] = {
	{ "[bogus]\n", 12, "[bogus]: unknown section" },
	{ "[cert mail]\n", 12, "must be in double quotes" },
	{ "[cert]\n", 12, "this section needs a name" },
	{ "[cert \"a b\"]\n", 12, "a name may hold only" },
	{ "[cert \"base\"]\nissuer = ca\n", 12, "duplicate section, first defined at" },
	{ "[cert \"x\"\n", 12, "section header without ']'" },
	{ "just words\n", 12, "expected 'key = value'" },
	{ "[agent]\n", 12, "duplicate section" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\ncolour = blue\n",
	  16, "[cert \"m\"] colour: unknown key" },
	/* DANE: each key checked, and how records are published is complete. */
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\ndane = 3 2 1\n",
	  16, "[cert \"m\"] dane: '3 2 1' is not a record type certsync publishes" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\ndane = 3 1 1\n",
	  12, "[cert \"m\"]: dane is set but not how records are published" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\ndane = 3 1 1\n"
	  "dane_update = rfc2136\n",
	  12, "dane_update = rfc2136 needs dane_server" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\ndane = 3 1 1\n"
	  "dane_update = none\ndane_ports = 25, 99999\n",
	  18, "[cert \"m\"] dane_ports: '99999' is not a TCP port" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\ndane = 3 1 1\n"
	  "dane_update = none\ndane_resolver = ::1:53\n",
	  18, "[cert \"m\"] dane_resolver: '::1:53' is not a resolver address" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\ndane_ttl = 5m\n",
	  16, "[cert \"m\"] dane_ttl: set, but dane is not" },
	{ "[cert \"m\"]\nissuer = ca\nnames = *.example\nbundle = /srv/m.pem\ndane = 3 1 1\n"
	  "dane_update = none\n",
	  12, "no host name to publish TLSA records for" },
	/* [notify]: a way to tell, known events, addresses, existing certs. */
	{ "[notify \"n\"]\non = failure\n", 12, "[notify \"n\"]: nothing to tell with" },
	{ "[notify \"n\"]\ncommand = /bin/true\non = failure, typo\n", 14,
	  "[notify \"n\"] on: 'typo' is not one of" },
	{ "[notify \"n\"]\nmail_to = postmaster\n", 13,
	  "[notify \"n\"] mail_to: not a mail address" },
	{ "[notify \"n\"]\ncommand = /bin/true\ncerts = nosuch\n", 14,
	  "no [cert \"nosuch\"] section is defined" },
	/* Must-staple: refused with its reason, not as an unknown key. */
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\nmust_staple = yes\n",
	  16, "[cert \"m\"] must_staple: refused: OCSP must-staple is no longer possible: the CAs "
	      "stopped OCSP" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\n"
	  "ocsp_must_staple = true\n",
	  16, "[cert \"m\"] ocsp_must_staple: refused: OCSP must-staple is no longer possible" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\nbundle = /x\n", 16,
	  "bundle: duplicate key, first set at line 15" },
	{ "[cert \"m\"]\nissuer = nope\nnames = m.example\nbundle = /srv/m.pem\n", 13,
	  "issuer: no [issuer \"nope\"] section is defined" },
	{ "[cert \"m\"]\nissuer = ca, nope\nnames = m.example\nbundle = /srv/m.pem\n", 13,
	  "[cert \"m\"] issuer: no [issuer \"nope\"] section is defined" },
	{ "[cert \"m\"]\nissuer = ca, ca\nnames = m.example\nbundle = /srv/m.pem\n", 13,
	  "[cert \"m\"] issuer: issuer \"ca\" is listed twice" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\nfailover_after = 0\n",
	  16, "[cert \"m\"] failover_after: '0' is not a number from 1 to 100" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\nreload = pf, dc\n",
	  16, "reload: no [reload \"dc\"] section is defined" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = srv/m.pem\n", 15,
	  "bundle: 'srv/m.pem' is not an absolute path" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\nkey = dsa:1024\n",
	  16, "key: 'dsa:1024' is not a key type" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\nmode = 644\n", 16,
	  "mode: '644' is not an octal file mode" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\nmode = 0644\n", 16,
	  "must not be readable by others" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\nmode = 0660\n", 16,
	  "mode: 0660: files holding the private key must not be group-writable" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\nmode = 0700\n", 16,
	  "mode: 0700: files holding the private key must not be executable" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\nmode = 02640\n", 16,
	  "mode: 2640: files holding the private key must not be setuid, setgid or sticky" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\ncert_mode = 06777\n",
	  16, "cert_mode: 6777: certificate files must not be setuid, setgid or sticky" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\ncert_mode = 01644\n",
	  16, "cert_mode: 1644: certificate files must not be setuid, setgid or sticky" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\ncert_mode = 0666\n",
	  16, "cert_mode: 0666: certificate files must not be world-writable" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /dev/shm/m.pem\n", 15,
	  "bundle: /dev/shm/m.pem is under /dev: certsync writes only ordinary files" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\n"
	  "keyfile = //proc/./self/k.pem\n", 16, "keyfile: //proc/./self/k.pem is under /proc" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /tmp/../sys/m.pem\n", 15,
	  "bundle: /tmp/../sys/m.pem is under /sys" },
	{ "[capath \"c\"]\ndir = /dev/certs\n", 13, "dir: /dev/certs is under /dev" },
	{ "[clientcerts \"r\"]\ndir = /srv/cc\nmap = /proc/map\n", 14,
	  "map: /proc/map is under /proc" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\nowner = nobody-cs\n",
	  16, "owner: unknown user 'nobody-cs'" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\ngroup = nogroup-cs\n",
	  16, "group: unknown group 'nogroup-cs'" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\nreuse_key = perhaps\n",
	  16, "reuse_key: 'perhaps' is not yes or no" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\nusage = both\n", 16,
	  "usage: 'both' is not one of: server, client" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example, bad_name\nbundle = /srv/m.pem\n", 14,
	  "names: 'bad_name' is neither a DNS name" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example,,x.example\nbundle = /srv/m.pem\n", 14,
	  "names: empty item in the list" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\nverify = ftp://h\n",
	  16, "verify: 'ftp://h' is not a verify URL" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\nrenew_before = 3 days\n",
	  16, "renew_before: '3 days' is neither a percentage" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\njitter = 120%\n",
	  16, "jitter: '120%' is not a percentage between 0% and 99%" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\n"
	  "verify_interval = often\n",
	  16, "verify_interval: 'often' is not a duration" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/m.pem\n"
	  "verify_interval = -1h\n",
	  16, "verify_interval: '-1h' is not a duration" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\n", 12,
	  "no output: set at least one of bundle" },
	{ "[cert \"m\"]\nissuer = ca\nbundle = /srv/m.pem\n", 12, "'names' is required" },
	{ "[cert \"m\"]\nnames = m.example\nbundle = /srv/m.pem\n", 12, "'issuer' is required" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nfullchain = /srv/m.crt\n", 12,
	  "the certificate is written without its key" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nbundle = /srv/base.pem\n", 15,
	  "/srv/base.pem is also written as bundle of [cert \"base\"]" },
	{ "[issuer \"i\"]\ndir = /srv/i\n", 12, "'type' is required (one of: local-ca, acme)" },
	{ "[issuer \"i\"]\ntype = vault\n", 13, "type: 'vault' is not one of: local-ca, acme" },
	{ "[issuer \"i\"]\ntype = local-ca\n", 12, "'dir' is required for type = local-ca" },
	{ "[issuer \"i\"]\ntype = local-ca\ndir = /srv/i\nvalidity = forever\n", 15,
	  "validity: 'forever' is not a duration" },
	{ "[issuer \"i\"]\ntype = local-ca\ndir = /srv/i\nvalidity = 20y\n", 12,
	  "validity is longer than ca_validity" },
	{ "[issuer \"i\"]\ntype = local-ca\ndir = /srv/i\nwebroot = /var/www\n", 15,
	  "webroot: not a key of type = local-ca" },
	{ "[issuer \"i\"]\ntype = acme\nwebroot = /var/www\n", 12, "'directory' is required" },
	{ "[issuer \"i\"]\ntype = acme\ndirectory = https://a/dir\n", 12,
	  "challenge = http-01 needs webroot or http_listen" },
	{ "[issuer \"i\"]\ntype = acme\ndirectory = https://a/d\nchallenge = dns-01\n", 12,
	  "challenge = dns-01 needs dns_hook" },
	{ "[issuer \"i\"]\ntype = acme\ndirectory = https://a/d\nchallenge = dns-02\n", 15,
	  "challenge: 'dns-02' is not one of: http-01, dns-01, tls-alpn-01" },
	{ "[issuer \"i\"]\ntype = acme\ndirectory = https://a/d\nhttp_listen = 80\n", 15,
	  "http_listen: '80' is not ADDRESS:PORT" },
	{ "[issuer \"i\"]\ntype = acme\ndirectory = https://a/d\nwebroot = /w\ncontact = me@x\n",
	  16, "contact: 'me@x' is not a mailto: URL" },
	{ "[issuer \"i\"]\ntype = acme\ndirectory = https://a/d\nwebroot = /w\neab_kid = k\n", 12,
	  "eab_kid and eab_hmac_key go together" },
	{ "[issuer \"i\"]\ntype = acme\ndirectory = https://a/d\nwebroot = /w\naccount_key = ed25519\n",
	  16, "account_key: ACME account keys are ec:P-256" },
	{ "[issuer \"i\"]\ntype = acme\ndirectory = ftp://a/d\nwebroot = /w\n", 14,
	  "directory: not an http(s) URL" },
	{ "[capath \"c\"]\ncafile = /srv/ca.pem\n", 12, "'dir' is required" },
	{ "[capath \"c\"]\ndir = /srv/c\nissuers = nope\n", 14,
	  "issuers: no [issuer \"nope\"] of type local-ca is defined" },
	{ "[capath \"c\"]\ndir = /srv/c\nreload = nope\n", 14,
	  "reload: no [reload \"nope\"] section is defined" },
	{ "[clientcerts \"r\"]\ndir = /srv/cc\n", 12, "'map' is required" },
	{ "[clientcerts \"r\"]\ndir = /srv/cc\nmap = /srv/map\ndigest = sha512\n", 15,
	  "digest: 'sha512' is not one of: sha256, sha1, md5" },
	{ "[clientcerts \"r\"]\ndir = /srv/cc\nmap = /srv/map\nmap_type = dbm\n", 15,
	  "map_type: 'dbm' is not one of: hash, lmdb, cdb" },
	{ "[clientcerts \"r\"]\ndir = /srv/cc\nmap = /srv/map\nfingerprint = key\n", 15,
	  "fingerprint: 'key' is not one of: cert, pubkey" },
	{ "[reload \"r\"]\ntype = exec\n", 12, "'command' is required for type = exec" },
	{ "[reload \"r\"]\ntype = systemd\n", 13, "type: 'systemd' is not one of: postfix" },
	{ "[reload \"r\"]\ntype = postfix\nconfig = /etc/dovecot.conf\n", 14,
	  "config: not a key of type = postfix" },
	{ "[reload \"r\"]\ntype = exec\ncommand = /bin/true\ntimeout = soon\n", 15,
	  "timeout: 'soon' is not a duration" },
	{ "[reload \"r\"]\ntype = plugin\n", 12, "'plugin' is required for type = plugin" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nlive_dir = srv/live\n", 15,
	  "live_dir: 'srv/live' is not an absolute path" },
	{ "[cert \".m\"]\nissuer = ca\nnames = m.example\nlive_dir = /srv/live\n", 15,
	  "live_dir: a cert's name must not begin with '.' when live_dir is in use" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nlive_dir = /srv/live\n"
	  "keyfile = /srv/live/m.key\n",
	  16, "keyfile: /srv/live/m.key is inside live_dir /srv/live" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nlive_dir = none\n", 12,
	  "no output: set at least one of bundle, fullchain, cert, chain, keyfile, live_dir" },
	{ "[sni \"s\"]\ncerts = base\nmap = /srv/sni\n", 12, "'type' is required (one of: postfix" },
	{ "[sni \"s\"]\ntype = postfix\ncerts = base\n", 12, "'map' is required" },
	{ "[sni \"s\"]\ntype = dovecot\ncerts = base\n", 12, "'conf' is required" },
	{ "[sni \"s\"]\ntype = postfix\nmap = /srv/sni\n", 12, "'certs' is required" },
	{ "[sni \"s\"]\ntype = postfix\ncerts = base, nope\nmap = /srv/sni\n", 14,
	  "certs: no [cert \"nope\"] section is defined" },
	{ "[sni \"s\"]\ntype = postfix\ncerts = base, base\nmap = /srv/sni\n", 14,
	  "certs: cert base is listed twice" },
	{ "[sni \"s\"]\ntype = postfix\ncerts = base\nmap = /srv/sni\nmap_type = texthash\n", 16,
	  "map_type: 'texthash' is not one of: hash, btree, lmdb, cdb" },
	{ "[sni \"s\"]\ntype = dovecot\ncerts = base\nconf = /srv/s.conf\nmap = /srv/sni\n", 16,
	  "map: not a key of type = dovecot" },
	{ "[sni \"s\"]\ntype = dovecot\ncerts = base\nconf = /srv/s.conf\ndovecot_version = 3\n",
	  16, "dovecot_version: '3' is not one of: 2.3, 2.4" },
	{ "[sni \"s\"]\ntype = postfix\ncerts = base\nmap = /srv/sni\nreload = dc\n", 16,
	  "reload: no [reload \"dc\"] section is defined" },
	{ "[sni \"s\"]\ntype = postfix\ncerts = base\nmap = /proc/sni\n", 15,
	  "map: /proc/sni is under /proc" },
	{ "[cert \"m\"]\nissuer = ca\nnames = m.example\nfullchain = /srv/m.pem\n"
	  "[sni \"s\"]\ntype = postfix\ncerts = m\nmap = /srv/sni\n",
	  18, "certs: cert m has no output holding its key and chain" },
	{ "[cert \"m\"]\nissuer = ca\nnames = base.example\nbundle = /srv/m.pem\n"
	  "[sni \"s\"]\ntype = postfix\ncerts = base, m\nmap = /srv/sni\n",
	  18, "certs: the name base.example is in both cert base and cert m" },
};

START_TEST(test_config_errors)
{
	struct cs_cfg_errors errs;
	char *conf, *path, want[512];
	bool found = false;

	ck_assert_int_ge(asprintf(&conf, "%s%s", err_base, error_cases[_i].conf), 0);
	path = cs_test_write(cs_test_tmp, "bad.conf", conf, 0644);
	struct cs_config *cfg = cs_config_load(path, &errs);
	ck_assert_ptr_null(cfg);
	ck_assert_int_ge(errs.n, 1);
	snprintf(want, sizeof(want), "%s:%d: ", path, error_cases[_i].line);
	for (size_t i = 0; i < errs.n; i++)
		if (strncmp(errs.v[i], want, strlen(want)) == 0 &&
		    strstr(errs.v[i], error_cases[_i].fragment) != NULL)
			found = true;
	if (!found)
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "case %d got: %s\n", _i, errs.v[i]);
	ck_assert_msg(found, "case %d: no error '%s...%s'", _i, want, error_cases[_i].fragment);
	cs_config_errors_free(&errs);
	free(conf);
	free(path);
}
END_TEST

START_TEST(test_config_base_is_valid)
{
	struct cs_cfg_errors errs;
	char *path = cs_test_write(cs_test_tmp, "base.conf", err_base, 0644);
	struct cs_config *cfg = cs_config_load(path, &errs);

	ck_assert_ptr_nonnull(cfg);
	cs_config_free(cfg);
	free(path);
}
END_TEST

/*
 * must_staple = no asks for nothing and is accepted; the list of known keys
 * in an unknown-key error does not offer must_staple.
 */
START_TEST(test_config_must_staple_no)
{
	struct cs_cfg_errors errs;
	char *conf, *path;
	struct cs_config *cfg;

	ck_assert_int_ge(asprintf(&conf, "%smust_staple = no\n", err_base), 0);
	path = cs_test_write(cs_test_tmp, "ms.conf", conf, 0644);
	cfg = cs_config_load(path, &errs);
	ck_assert_ptr_nonnull(cfg);
	cs_config_free(cfg);
	free(path);
	free(conf);
	ck_assert_int_ge(asprintf(&conf, "%scolour = blue\n", err_base), 0);
	path = cs_test_write(cs_test_tmp, "ms.conf", conf, 0644);
	cfg = cs_config_load(path, &errs);
	ck_assert_ptr_null(cfg);
	ck_assert_uint_eq(errs.n, 1);
	ck_assert_msg(strstr(errs.v[0], "unknown key (known here: ") != NULL &&
			      strstr(errs.v[0], "staple") == NULL,
		      "%s", errs.v[0]);
	cs_config_errors_free(&errs);
	free(path);
	free(conf);
}
END_TEST

/*
 * A client certificate (usage = client, or its certificate in the dir of a
 * [clientcerts]) from an ACME issuer: a warning with file, line and cert, and
 * the same text kept for `show`. From a local CA, or a server certificate
 * elsewhere: nothing.
 */
START_TEST(test_config_client_from_acme)
{
	static const char conf[] = "[agent]\n"
				   "state_dir = /tmp/cs\n"
				   "[issuer \"le\"]\n"
				   "type = acme\n"
				   "directory = https://acme.example/dir\n"
				   "webroot = /var/www\n"
				   "[issuer \"ca\"]\n"
				   "type = local-ca\n"
				   "dir = /srv/ca\n"
				   "[clientcerts \"relay\"]\n"
				   "dir = /srv/relay//\n"
				   "map = /srv/relay.map\n"
				   "[cert \"cl\"]\n" /* 13 */
				   "issuer = le\n"
				   "names = cl.example\n"
				   "usage = client\n"
				   "bundle = /srv/cl.pem\n"
				   "[cert \"fed\"]\n" /* 18 */
				   "issuer = le\n"
				   "names = fed.example\n"
				   "keyfile = /srv/fed.key\n"
				   "cert = /srv/./relay/fed.pem\n"
				   "[cert \"local\"]\n"
				   "issuer = ca\n"
				   "names = local.example\n"
				   "usage = client\n"
				   "bundle = /srv/relay/local.pem\n"
				   "[cert \"web\"]\n"
				   "issuer = le\n"
				   "names = web.example\n"
				   "bundle = /srv/web.pem\n";
	struct cs_cfg_errors errs;
	char *path = cs_test_write(cs_test_tmp, "client.conf", conf, 0644);
	struct cs_config *cfg = cs_config_load(path, &errs);
	char want[600];

	for (size_t i = 0; cfg == NULL && i < errs.n; i++)
		fprintf(stderr, "%s\n", errs.v[i]);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_uint_eq(cfg->warnings.n, 2);
	snprintf(want, sizeof(want), "%s:13: [cert \"cl\"]: usage = client, but issuer le is an ACME "
		 "CA: Let's Encrypt no longer puts the clientAuth extended key usage", path);
	ck_assert_msg(strncmp(cfg->warnings.v[0], want, strlen(want)) == 0, "%s",
		      cfg->warnings.v[0]);
	snprintf(want, sizeof(want), "%s:18: [cert \"fed\"]: its certificate is in the dir of "
		 "[clientcerts \"relay\"], but issuer le is an ACME CA", path);
	ck_assert_msg(strncmp(cfg->warnings.v[1], want, strlen(want)) == 0, "%s",
		      cfg->warnings.v[1]);
	ck_assert_ptr_nonnull(strstr(cfg->certs[0].client_warning, "clientAuth"));
	ck_assert_ptr_nonnull(strstr(cfg->certs[1].client_warning, "clientAuth"));
	ck_assert_ptr_null(cfg->certs[2].client_warning);
	ck_assert_ptr_null(cfg->certs[3].client_warning);
	cs_config_free(cfg);
	free(path);
}
END_TEST

/* Five different mistakes: all five are reported, in line order. */
START_TEST(test_config_all_errors_reported)
{
	static const char five[] = "[agent]\n"
				   "renew_before = soon\n"	  /* 2 */
				   "[issuer \"ca\"]\n"
				   "type = local-ca\n"
				   "dir = relative/ca\n"	  /* 5 */
				   "[cert \"m\"]\n"
				   "issuer = ca\n"
				   "names = m.example\n"
				   "bundle = /srv/m.pem\n"
				   "key = rsa:1024\n"		  /* 10 */
				   "reload = missing\n"		  /* 11 */
				   "[frobnicate]\n";		  /* 12 */
	struct cs_cfg_errors errs;
	char *path = cs_test_write(cs_test_tmp, "five.conf", five, 0644);
	struct cs_config *cfg = cs_config_load(path, &errs);
	static const int lines[] = { 2, 5, 10, 11, 12 };

	ck_assert_ptr_null(cfg);
	ck_assert_int_eq(errs.n, 5);
	for (size_t i = 0; i < 5; i++) {
		char want[300];
		snprintf(want, sizeof(want), "%s:%d: ", path, lines[i]);
		ck_assert_msg(strncmp(errs.v[i], want, strlen(want)) == 0, "error %zu: %s", i,
			      errs.v[i]);
	}
	cs_config_errors_free(&errs);
	free(path);
}
END_TEST

START_TEST(test_config_includes)
{
	struct cs_cfg_errors errs;
	char *dir;

	ck_assert_int_ge(asprintf(&dir, "%s/conf.d", cs_test_tmp), 0);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	char *main_path = cs_test_write(cs_test_tmp, "certsync.conf",
					"[agent]\ninclude = conf.d/*.conf\n"
					"[issuer \"ca\"]\ntype = local-ca\ndir = /srv/ca\n",
					0644);
	free(cs_test_write(dir, "20-b.conf",
			   "[cert \"b\"]\nissuer = ca\nnames = b.example\nbundle = /srv/b.pem\n",
			   0644));
	free(cs_test_write(dir, "10-a.conf",
			   "[cert \"a\"]\nissuer = ca\nnames = a.example\nbundle = /srv/a.pem\n",
			   0644));
	free(cs_test_write(dir, "ignored.txt", "garbage\n", 0644));
	struct cs_config *cfg = cs_config_load(main_path, &errs);

	ck_assert_ptr_nonnull(cfg);
	ck_assert_int_eq(cfg->files.n, 3);
	ck_assert_int_eq(cfg->n_certs, 2);
	ck_assert_str_eq(cfg->certs[0].name, "a"); /* drop-ins in name order */
	ck_assert_str_eq(cfg->certs[1].name, "b");
	cs_config_free(cfg);

	/* A broken drop-in is reported with its own file name and line. */
	char *bad = cs_test_write(dir, "30-bad.conf",
				  "[cert \"c\"]\nissuer = ca\nnames = c.example\n"
				  "bundle = /srv/c.pem\nkey = rsa:512\n",
				  0644);
	cfg = cs_config_load(main_path, &errs);
	ck_assert_ptr_null(cfg);
	ck_assert_int_eq(errs.n, 1);
	char want[600];
	snprintf(want, sizeof(want), "%s:5: [cert \"c\"] key: 'rsa:512' is not a key type", bad);
	ck_assert_msg(strncmp(errs.v[0], want, strlen(want)) == 0, "got %s", errs.v[0]);
	cs_config_errors_free(&errs);
	unlink(bad);
	free(bad);

	/* [agent] belongs to the main file only. */
	bad = cs_test_write(dir, "40-agent.conf", "[agent]\nsocket = /tmp/x.sock\n", 0644);
	cfg = cs_config_load(main_path, &errs);
	ck_assert_ptr_null(cfg);
	ck_assert_ptr_nonnull(strstr(errs.v[0], "only the main configuration file may hold"));
	cs_config_errors_free(&errs);
	free(bad);
	free(dir);
	free(main_path);
}
END_TEST

/* The packaged default: an include glob with no drop-in (or no directory) yet. */
START_TEST(test_config_include_nothing_yet)
{
	struct cs_cfg_errors errs;
	char *main_path = cs_test_write(cs_test_tmp, "certsync.conf",
					"[agent]\ninclude = conf.d/*.conf\n", 0644);
	struct cs_config *cfg = cs_config_load(main_path, &errs);

	ck_assert_msg(cfg != NULL, "%s", errs.n ? errs.v[0] : "");
	ck_assert_int_eq(cfg->n_certs, 0);
	cs_config_free(cfg);

	char *dir;
	ck_assert_int_ge(asprintf(&dir, "%s/conf.d", cs_test_tmp), 0);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	cfg = cs_config_load(main_path, &errs);
	ck_assert_ptr_nonnull(cfg);
	cs_config_free(cfg);
	free(dir);
	free(main_path);
}
END_TEST

START_TEST(test_config_missing_file)
{
	struct cs_cfg_errors errs;
	char *path;

	ck_assert_int_ge(asprintf(&path, "%s/nope.conf", cs_test_tmp), 0);
	ck_assert_ptr_null(cs_config_load(path, &errs));
	ck_assert_int_eq(errs.n, 1);
	ck_assert_ptr_nonnull(strstr(errs.v[0], "nope.conf: cannot read: No such file"));
	cs_config_errors_free(&errs);
	free(path);
}
END_TEST

START_TEST(test_config_key_outside_section)
{
	struct cs_cfg_errors errs;
	char *path = cs_test_write(cs_test_tmp, "k.conf", "state_dir = /x\n[agent]\n", 0644);

	ck_assert_ptr_null(cs_config_load(path, &errs));
	ck_assert_int_eq(errs.n, 1);
	ck_assert_ptr_nonnull(strstr(errs.v[0], ":1: state_dir: key outside of any section"));
	cs_config_errors_free(&errs);
	free(path);
}
END_TEST

/* A NUL byte ends a C string early: the line is refused, not cut short. */
START_TEST(test_config_nul_byte)
{
	static const char conf[] = "[issuer \"ca\"]\ntype = local-ca\ndir = /srv/ca\n"
				   "[cert \"m\"]\nissuer = ca\nnames = m.example\n"
				   "bundle = /srv/m.pem\0/../../etc/passwd\n";
	struct cs_cfg_errors errs;
	char *path;
	FILE *f;

	ck_assert_int_ge(asprintf(&path, "%s/nul.conf", cs_test_tmp), 0);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(conf, 1, sizeof(conf) - 1, f), sizeof(conf) - 1);
	fclose(f);
	ck_assert_ptr_null(cs_config_load(path, &errs));
	char want[600];
	snprintf(want, sizeof(want), "%s:7: the line holds a NUL byte", path);
	bool found = false;
	for (size_t i = 0; i < errs.n; i++)
		found |= strcmp(errs.v[i], want) == 0;
	ck_assert_msg(found, "no '%s' (first: %s)", want, errs.n ? errs.v[0] : "none");
	cs_config_errors_free(&errs);
	free(path);
}
END_TEST

/*
 * A drop-in that is no INI file at all (here: a link to a shadow file and a
 * private key): every line is reported by file and line, and nothing of its
 * content reaches the messages.
 */
START_TEST(test_config_secret_not_echoed)
{
	static const char secret[] =
		"root:$6$SECRETSALT$SECRETHASHxyz:19000:0:99999:7:::\n"
		"[root:SECRETHEADER]\n"
		"-----BEGIN PRIVATE KEY-----\n"
		"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSECRETKEYMATERIAL\n"
		"SECRETb64=\n"
		"passwordSECRET = hunter2\n"
		"-----END PRIVATE KEY-----\n";
	struct cs_cfg_errors errs;
	char *dir, *link_path, *target;

	ck_assert_int_ge(asprintf(&dir, "%s/conf.d", cs_test_tmp), 0);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	char *main_path = cs_test_write(cs_test_tmp, "certsync.conf", "[agent]\ninclude = conf.d/*.conf\n",
					0644);
	target = cs_test_write(cs_test_tmp, "shadow", secret, 0600);
	ck_assert_int_ge(asprintf(&link_path, "%s/50-evil.conf", dir), 0);
	ck_assert_int_eq(symlink(target, link_path), 0);
	free(cs_test_write(cs_test_tmp, "plain.conf", secret, 0644));

	for (int round = 0; round < 2; round++) {
		const char *p = round == 0 ? link_path : main_path;
		if (round == 1) {
			unlink(link_path);
			free(main_path);
			main_path = cs_test_write(cs_test_tmp, "plain.conf", secret, 0644);
			p = main_path;
		}
		ck_assert_ptr_null(cs_config_load(main_path, &errs));
		ck_assert_int_ge(errs.n, 1);
		for (size_t i = 0; i < errs.n; i++) {
			ck_assert_msg(strstr(errs.v[i], "SECRET") == NULL &&
					      strstr(errs.v[i], "hunter2") == NULL &&
					      strstr(errs.v[i], "root:") == NULL &&
					      strstr(errs.v[i], "MIGH") == NULL,
				      "content echoed: %s", errs.v[i]);
			ck_assert_msg(strncmp(errs.v[i], p, strlen(p)) == 0 &&
					      errs.v[i][strlen(p)] == ':',
				      "error does not start with %s: %s", p, errs.v[i]);
		}
		cs_config_errors_free(&errs);
	}
	free(target);
	free(link_path);
	free(main_path);
	free(dir);
}
END_TEST

/*
 * A configuration file someone else may write: refused where it would say
 * what the agent runs (exec and plugin reloaders, dns_hook, plugin_dir),
 * warned about otherwise.
 */
static const struct {
	const char *dropin;
	mode_t mode;
	uid_t owner; /* (uid_t)-1: ours */
	int line;    /* of the error; 0: only a warning */
	const char *fragment;
} unsafe_cases[] = {
	{ "[reload \"x\"]\ntype = exec\ncommand = /bin/true\n", 0666, (uid_t)-1, 2,
	  "[reload \"x\"] type: refused: an exec reloader runs its command with the agent's "
	  "privileges, and this file is writable by everyone (mode 0666)" },
	{ "[reload \"x\"]\ntype = plugin\nplugin = x.so\n", 0602, (uid_t)-1, 2,
	  "refused: a plugin reloader loads its shared object" },
	{ "[issuer \"a\"]\ntype = acme\ndirectory = https://a/d\nchallenge = dns-01\n"
	  "dns_hook = /usr/lib/certsync/dns-hook\n",
	  0644, 65534, 5, "dns_hook: refused: dns_hook is run with the agent's privileges, and this "
			  "file is owned by uid 65534" },
	{ "[cert \"w\"]\nissuer = ca\nnames = w.example\nbundle = /srv/w.pem\n", 0666,
	  (uid_t)-1, 0, "writable by everyone (mode 0666); only root or the agent's user" },
	{ "[reload \"x\"]\ntype = exec\ncommand = /bin/true\n", 0644, (uid_t)-1, -1, NULL },
};

START_TEST(test_config_unsafe_file)
{
	struct cs_cfg_errors errs;
	char *dir, want[PATH_MAX + 600];

	ck_assert_int_ge(asprintf(&dir, "%s/conf.d", cs_test_tmp), 0);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	char *main_path = cs_test_write(cs_test_tmp, "certsync.conf",
					"[agent]\ninclude = conf.d/*.conf\n"
					"[issuer \"ca\"]\ntype = local-ca\ndir = /srv/ca\n",
					0644);
	char *d = cs_test_write(dir, "10-x.conf", unsafe_cases[_i].dropin, 0644);
	ck_assert_int_eq(chmod(d, unsafe_cases[_i].mode), 0);
	if (unsafe_cases[_i].owner != (uid_t)-1 &&
	    chown(d, unsafe_cases[_i].owner, (gid_t)-1) < 0) {
		fprintf(stderr, "skipping: cannot chown (not root)\n");
		goto out;
	}
	struct cs_config *cfg = cs_config_load(main_path, &errs);
	if (unsafe_cases[_i].line > 0) {
		ck_assert_ptr_null(cfg);
		ck_assert_int_eq(errs.n, 1);
		snprintf(want, sizeof(want), "%s:%d: ", d, unsafe_cases[_i].line);
		ck_assert_msg(strncmp(errs.v[0], want, strlen(want)) == 0 &&
				      strstr(errs.v[0], unsafe_cases[_i].fragment) != NULL,
			      "got %s", errs.v[0]);
		cs_config_errors_free(&errs);
	} else {
		ck_assert_msg(cfg != NULL, "%s", errs.n ? errs.v[0] : "");
		if (unsafe_cases[_i].line == 0) {
			ck_assert_int_eq(cfg->warnings.n, 1);
			snprintf(want, sizeof(want), "%s: %s", d, unsafe_cases[_i].fragment);
			ck_assert_msg(strncmp(cfg->warnings.v[0], d, strlen(d)) == 0 &&
					      strstr(cfg->warnings.v[0], unsafe_cases[_i].fragment),
				      "got %s", cfg->warnings.v[0]);
		} else {
			ck_assert_int_eq(cfg->warnings.n, 0);
		}
		cs_config_free(cfg);
	}
out:
	free(d);
	free(main_path);
	free(dir);
}
END_TEST

Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("values");

	cs_test_add_loop(tc, test_config_duration, durations);
	cs_test_add_loop(tc, test_config_span, spans);
	cs_test_add_loop(tc, test_config_mode, modes);
	cs_test_add_loop(tc, test_config_bool, bools);
	cs_test_add_loop(tc, test_config_name, names);
	cs_test_add_loop(tc, test_config_verify_url, urls);
	tcase_add_test(tc, test_config_user_group);
	tcase_add_test(tc, test_config_format_duration);
	suite_add_tcase(s, tc);

	tc = tcase_create("files");
	tcase_add_checked_fixture(tc, cs_test_tmp_setup, cs_test_tmp_teardown);
	tcase_add_test(tc, test_config_good_file);
	tcase_add_test(tc, test_config_defaults);
	tcase_add_test(tc, test_config_live_dir);
	tcase_add_test(tc, test_config_sni);
	cs_test_add_loop(tc, test_config_verify_interval, intervals);
	tcase_add_test(tc, test_config_base_is_valid);
	cs_test_add_loop(tc, test_config_errors, error_cases);
	tcase_add_test(tc, test_config_issuer_list);
	tcase_add_test(tc, test_config_dane_notify_defaults);
	tcase_add_test(tc, test_config_all_errors_reported);
	tcase_add_test(tc, test_config_must_staple_no);
	tcase_add_test(tc, test_config_client_from_acme);
	tcase_add_test(tc, test_config_includes);
	tcase_add_test(tc, test_config_include_nothing_yet);
	tcase_add_test(tc, test_config_missing_file);
	tcase_add_test(tc, test_config_key_outside_section);
	tcase_add_test(tc, test_config_nul_byte);
	tcase_add_test(tc, test_config_secret_not_echoed);
	cs_test_add_loop(tc, test_config_unsafe_file, unsafe_cases);
	suite_add_tcase(s, tc);
	return s;
}
