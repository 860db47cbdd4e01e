/*
 * check_localca - the local-ca issuer as a user relies on it: for every key
 * type a CA is created in the `openssl ca` layout (modes on disk, extensions),
 * leaves verify (in process and with `openssl verify`) and are recorded in
 * index.txt, serial and newcerts/ byte for byte as `openssl ca` records them;
 * an existing CA is adopted untouched; revocation and CRLs; the asynchronous
 * issuer on a libuv loop.
 */
#include "cs_csr.h"
#include "cs_key.h"
#include "cs_localca.h"
#include "testutil.h"
#include "testissuer.h"

#include <check.h>
#include <errno.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

static const enum cs_keytype keytypes[] = {
	CS_KEY_EC_P256, CS_KEY_EC_P384, CS_KEY_RSA_2048,
	CS_KEY_RSA_3072, CS_KEY_RSA_4096, CS_KEY_ED25519,
};
#define N_KEYTYPES ((int)(sizeof(keytypes) / sizeof(keytypes[0])))

static const char subject[] =
	"/C=US/ST=Minnesota/L=Saint Paul/O=The Milly Server/OU=milly.example.com/CN=Milly CA";

static char *tmp;
static char *cadir;

static void dir_setup(void)
{
	tmp = cs_test_mkdtemp();
	ck_assert_ptr_nonnull(tmp);
	ck_assert_int_ge(asprintf(&cadir, "%s/ca", tmp), 0);
}

static void dir_teardown(void)
{
	cs_test_rmrf(tmp);
	free(tmp);
	free(cadir);
}

static struct cs_localca_opts opts(enum cs_keytype kt)
{
	struct cs_localca_opts o = {
		.dir = cadir,
		.subject = subject,
		.key = kt,
		.validity_s = 90 * 86400,
		.ca_validity_s = 3650L * 86400,
	};
	return o;
}

static cs_localca *open_ca(enum cs_keytype kt)
{
	struct cs_localca_opts o = opts(kt);
	char err[1024] = "";
	cs_localca *ca = cs_localca_open(&o, err, sizeof(err));

	ck_assert_msg(ca != NULL, "%s", err);
	return ca;
}

static char *ca_path(const char *name)
{
	char *p;

	ck_assert_int_ge(asprintf(&p, "%s/%s", cadir, name), 0);
	return p;
}

static char *read_ca_file(const char *name)
{
	char *p = ca_path(name), *s = cs_test_read(p, NULL);

	ck_assert_msg(s != NULL, "cannot read %s", p);
	free(p);
	return s;
}

static mode_t mode_of(const char *name)
{
	char *p = ca_path(name);
	struct stat sb;

	ck_assert_msg(stat(p, &sb) == 0, "%s missing", p);
	free(p);
	return sb.st_mode & 07777;
}

static char *pem_string(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *s;
	long n;

	ck_assert(PEM_write_bio_X509(b, x));
	n = BIO_get_mem_data(b, &p);
	s = strndup(p, (size_t)n);
	BIO_free(b);
	return s;
}

static char *serial_hex(X509 *x)
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	char *h = BN_bn2hex(bn), *s = strdup(h);

	OPENSSL_free(h);
	BN_free(bn);
	return s;
}

/* Issues a leaf with a new key of type kt; returns it, the chain in *chain, the key in *key. */
static X509 *issue(cs_localca *ca, enum cs_keytype kt, char *const *names, size_t n,
		   enum cs_usage u, STACK_OF(X509) **chain, EVP_PKEY **key)
{
	char err[1024] = "";
	EVP_PKEY *k = cs_key_generate(kt, err, sizeof(err));
	X509_REQ *csr;
	X509 *leaf = NULL;
	STACK_OF(X509) *ch = NULL;

	ck_assert_msg(k != NULL, "%s", err);
	csr = cs_csr_new(k, names, n, err, sizeof(err));
	ck_assert_msg(csr != NULL, "%s", err);
	ck_assert_msg(cs_localca_issue(ca, csr, names, n, u, &leaf, &ch, err, sizeof(err)) == 0,
		      "%s", err);
	/* The certificate carries the request's SubjectPublicKeyInfo byte for byte. */
	{
		unsigned char *a = NULL, *b = NULL;
		int alen = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(leaf), &a);
		int blen = i2d_X509_PUBKEY(X509_REQ_get_X509_PUBKEY(csr), &b);

		ck_assert_int_gt(alen, 0);
		ck_assert_int_eq(alen, blen);
		ck_assert_mem_eq(a, b, (size_t)alen);
		ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(leaf), k), 1);
		OPENSSL_free(a);
		OPENSSL_free(b);
	}
	X509_REQ_free(csr);
	if (key != NULL)
		*key = k;
	else
		EVP_PKEY_free(k);
	if (chain != NULL)
		*chain = ch;
	else
		sk_X509_pop_free(ch, X509_free);
	return leaf;
}

static void write_cert(const char *path, X509 *x)
{
	char *pem = pem_string(x), *p = cs_test_write(NULL, path, pem, 0644);

	ck_assert_ptr_nonnull(p);
	free(p);
	free(pem);
}

static long seconds_between(const ASN1_TIME *a, const ASN1_TIME *b)
{
	int days = 0, secs = 0;

	ck_assert(ASN1_TIME_diff(&days, &secs, a, b));
	return (long)days * 86400 + secs;
}

/* A CA of every key type: files and modes on disk, the CA certificate's content. */
START_TEST(test_localca_creates_ca)
{
	enum cs_keytype kt = keytypes[_i];
	cs_localca *ca = open_ca(kt);
	X509 *c = cs_localca_cacert(ca);
	BASIC_CONSTRAINTS *bc;
	char *s, *onel;
	int crit = 0;

	ck_assert_int_eq(cs_key_type_of(X509_get0_pubkey(c)), kt);
	onel = X509_NAME_oneline(X509_get_subject_name(c), NULL, 0);
	ck_assert_str_eq(onel, subject);
	OPENSSL_free(onel);
	ck_assert_int_eq(X509_NAME_cmp(X509_get_subject_name(c), X509_get_issuer_name(c)), 0);
	bc = X509_get_ext_d2i(c, NID_basic_constraints, &crit, NULL);
	ck_assert_ptr_nonnull(bc);
	ck_assert(bc->ca);
	ck_assert_int_eq(crit, 1);
	BASIC_CONSTRAINTS_free(bc);
	ck_assert_uint_eq(X509_get_key_usage(c), KU_KEY_CERT_SIGN | KU_CRL_SIGN);
	ck_assert_ptr_nonnull(X509_get0_subject_key_id(c));
	ck_assert_int_eq(seconds_between(X509_get0_notBefore(c), X509_get0_notAfter(c)),
			 3650L * 86400);
	ck_assert_int_eq(X509_verify(c, X509_get0_pubkey(c)), 1);

	ck_assert_uint_eq(mode_of("private"), 0700);
	ck_assert_uint_eq(mode_of("private/cakey.pem"), 0600);
	ck_assert_uint_eq(mode_of("cacert.pem"), 0644);
	s = read_ca_file("index.txt");
	ck_assert_str_eq(s, "");
	free(s);
	s = read_ca_file("index.txt.attr");
	ck_assert_str_eq(s, "unique_subject = no\n");
	free(s);
	s = read_ca_file("crlnumber");
	ck_assert_str_eq(s, "01\n");
	free(s);
	s = read_ca_file("cacert.pem");
	onel = pem_string(c);
	ck_assert_str_eq(s, onel);
	free(onel);
	free(s);
	cs_localca_close(ca);
}
END_TEST

/*
 * A leaf of every key type from a CA of the same type: openssl verify passes,
 * extensions fit the key, index.txt/serial/newcerts hold what openssl ca writes.
 */
START_TEST(test_localca_issues_leaf)
{
	enum cs_keytype kt = keytypes[_i];
	char *names[] = { "mail.example.test", "smtp.example.test", "192.0.2.25", "2001:db8::25" };
	cs_localca *ca = open_ca(kt);
	STACK_OF(X509) *chain = NULL;
	EVP_PKEY *key = NULL;
	X509 *leaf = issue(ca, kt, names, 4, CS_USAGE_SERVER, &chain, &key);
	X509 *cacert = cs_localca_cacert(ca);
	char *hex = serial_hex(leaf), *line, *s, *pem, *cmd, *out = NULL, sans[512];
	char leafpath[4096];
	uint32_t want_ku = KU_DIGITAL_SIGNATURE;
	BIGNUM *next = NULL;
	char *nexthex;

	/* The chain handed back is the CA certificate. */
	ck_assert_int_eq(sk_X509_num(chain), 1);
	ck_assert_int_eq(X509_cmp(sk_X509_value(chain, 0), cacert), 0);
	ck_assert_int_eq(EVP_PKEY_eq(X509_get0_pubkey(leaf), key), 1);
	ck_assert_int_eq(X509_verify(leaf, X509_get0_pubkey(cacert)), 1);

	/* What openssl verify says, with the purpose the usage asks for. */
	snprintf(leafpath, sizeof(leafpath), "%s/leaf.pem", tmp);
	write_cert(leafpath, leaf);
	ck_assert_int_ge(asprintf(&cmd, "openssl verify -purpose sslserver -CAfile %s/cacert.pem %s",
				  cadir, leafpath),
			 0);
	ck_assert_msg(cs_test_run(cmd, &out) == 0, "%s: %s", cmd, out);
	free(cmd);
	free(out);

	/* Extensions. */
	if (kt == CS_KEY_RSA_2048 || kt == CS_KEY_RSA_3072 || kt == CS_KEY_RSA_4096)
		want_ku |= KU_KEY_ENCIPHERMENT;
	ck_assert_uint_eq(X509_get_key_usage(leaf), want_ku);
	ck_assert_uint_eq(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER);
	ck_assert_int_eq(X509_check_ca(leaf), 0);
	ck_assert_int_eq(ASN1_OCTET_STRING_cmp(X509_get0_authority_key_id(leaf),
					       X509_get0_subject_key_id(cacert)),
			 0);
	ck_assert_ptr_nonnull(X509_get0_subject_key_id(leaf));
	ck_assert_int_eq(seconds_between(X509_get0_notBefore(leaf), X509_get0_notAfter(leaf)),
			 90L * 86400);
	{
		GENERAL_NAMES *g = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
		BIO *b = BIO_new(BIO_s_mem());
		char *p;
		long n;

		for (int i = 0; i < sk_GENERAL_NAME_num(g); i++) {
			if (i)
				BIO_puts(b, ", ");
			GENERAL_NAME_print(b, sk_GENERAL_NAME_value(g, i));
		}
		n = BIO_get_mem_data(b, &p);
		snprintf(sans, sizeof(sans), "%.*s", (int)n, p);
		BIO_free(b);
		GENERAL_NAMES_free(g);
	}
	ck_assert_str_eq(sans, "DNS:mail.example.test, DNS:smtp.example.test, "
			       "IP Address:192.0.2.25, IP Address:2001:DB8:0:0:0:0:0:25");

	/* Serial: 127 random bits, 32 uppercase hex digits. */
	ck_assert_uint_eq(strlen(hex), 32);
	ck_assert_uint_eq(strspn(hex, "0123456789ABCDEF"), 32);

	/* index.txt, byte for byte. */
	ck_assert_int_ge(asprintf(&line, "V\t%s\t\t%s\tunknown\t/CN=mail.example.test\n",
				  (const char *)ASN1_STRING_get0_data(X509_get0_notAfter(leaf)), hex),
			 0);
	s = read_ca_file("index.txt");
	ck_assert_str_eq(s, line);
	ck_assert_uint_eq(strlen((const char *)ASN1_STRING_get0_data(X509_get0_notAfter(leaf))),
			  13);
	free(s);
	free(line);

	/* serial holds the next one, as openssl ca leaves it. */
	ck_assert(BN_hex2bn(&next, hex));
	ck_assert(BN_add_word(next, 1));
	nexthex = BN_bn2hex(next);
	ck_assert_int_ge(asprintf(&line, "%s\n", nexthex), 0);
	s = read_ca_file("serial");
	ck_assert_str_eq(s, line);
	free(s);
	free(line);
	OPENSSL_free(nexthex);
	BN_free(next);

	/* newcerts/SERIAL.pem is the certificate. */
	ck_assert_int_ge(asprintf(&line, "newcerts/%s.pem", hex), 0);
	s = read_ca_file(line);
	pem = pem_string(leaf);
	ck_assert_str_eq(s, pem);
	free(pem);
	free(s);
	free(line);

	free(hex);
	EVP_PKEY_free(key);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	cs_localca_close(ca);
}
END_TEST

/* Leaves of every key type from one EC CA, for client use; lines append in order. */
START_TEST(test_localca_leaf_keytypes_client)
{
	enum cs_keytype kt = keytypes[_i];
	char *names[] = { "client.example.test" };
	cs_localca *ca = open_ca(CS_KEY_EC_P256);
	X509 *a = issue(ca, kt, names, 1, CS_USAGE_CLIENT, NULL, NULL);
	X509 *b = issue(ca, kt, names, 1, CS_USAGE_CLIENT, NULL, NULL);
	char *ha = serial_hex(a), *hb = serial_hex(b), *s, *want;
	char leafpath[4096], *cmd, *out = NULL;

	ck_assert_uint_eq(X509_get_extended_key_usage(a), XKU_SSL_CLIENT);
	ck_assert_str_ne(ha, hb);
	ck_assert_int_ge(asprintf(&want, "V\t%s\t\t%s\tunknown\t/CN=client.example.test\n"
					 "V\t%s\t\t%s\tunknown\t/CN=client.example.test\n",
				  (const char *)ASN1_STRING_get0_data(X509_get0_notAfter(a)), ha,
				  (const char *)ASN1_STRING_get0_data(X509_get0_notAfter(b)), hb),
			 0);
	s = read_ca_file("index.txt");
	ck_assert_str_eq(s, want);
	snprintf(leafpath, sizeof(leafpath), "%s/client.pem", tmp);
	write_cert(leafpath, b);
	ck_assert_int_ge(asprintf(&cmd, "openssl verify -purpose sslclient -CAfile %s/cacert.pem %s",
				  cadir, leafpath),
			 0);
	ck_assert_msg(cs_test_run(cmd, &out) == 0, "%s: %s", cmd, out);
	free(cmd);
	free(out);
	free(s);
	free(want);
	free(ha);
	free(hb);
	X509_free(a);
	X509_free(b);
	cs_localca_close(ca);
}
END_TEST

static const struct {
	const char *in;
	const char *want; /* X509_NAME_oneline, or NULL: refused */
	const char *msg;  /* part of the error */
} subjects[] = {
	{ "/C=US/ST=Minnesota/L=Saint Paul/O=The Milly Server/CN=Milly CA",
	  "/C=US/ST=Minnesota/L=Saint Paul/O=The Milly Server/CN=Milly CA", NULL },
	{ "/O=Ex/OU=Ops/CN=Name/emailAddress=ca@example.test",
	  "/O=Ex/OU=Ops/CN=Name/emailAddress=ca@example.test", NULL },
	{ "/CN=a\\/b", "/CN=a\\/b", NULL }, /* oneline escapes the slash again */
	{ "CN=x", NULL, "must start with '/'" },
	{ "/XX=x", NULL, "unknown field \"XX\"" },
	{ "/C=USA", NULL, "bad value for C" },
	{ "/CN=", NULL, "\"CN=\" is not FIELD=value" },
	{ "/CN", NULL, "is not FIELD=value" },
	{ "/", NULL, "is empty" },
};

START_TEST(test_localca_parse_subject)
{
	char err[1024] = "";
	X509_NAME *n = cs_localca_parse_subject(subjects[_i].in, err, sizeof(err));

	if (subjects[_i].want != NULL) {
		char *s;

		ck_assert_msg(n != NULL, "%s: %s", subjects[_i].in, err);
		s = X509_NAME_oneline(n, NULL, 0);
		ck_assert_str_eq(s, subjects[_i].want);
		OPENSSL_free(s);
	} else {
		ck_assert_ptr_null(n);
		ck_assert_msg(strstr(err, subjects[_i].msg) != NULL, "%s: %s", subjects[_i].in,
			      err);
		ck_assert_msg(strstr(err, subjects[_i].in) != NULL, "%s", err);
	}
	X509_NAME_free(n);
}
END_TEST

/* Reopening adopts: other options are ignored, the CA files stay as they are. */
START_TEST(test_localca_adopts_existing)
{
	char *names[] = { "a.example.test" };
	cs_localca *ca = open_ca(CS_KEY_EC_P256);
	X509 *leaf = issue(ca, CS_KEY_EC_P256, names, 1, CS_USAGE_SERVER, NULL, NULL);
	char *cert0, *key0, *index0, *s;
	struct cs_localca_opts o;
	char err[1024] = "";

	cs_localca_close(ca);
	cert0 = read_ca_file("cacert.pem");
	key0 = read_ca_file("private/cakey.pem");
	index0 = read_ca_file("index.txt");
	o = opts(CS_KEY_RSA_2048);
	o.subject = "/CN=Other";
	ca = cs_localca_open(&o, err, sizeof(err));
	ck_assert_msg(ca != NULL, "%s", err);
	ck_assert_int_eq(cs_key_type_of(X509_get0_pubkey(cs_localca_cacert(ca))), CS_KEY_EC_P256);
	s = read_ca_file("cacert.pem");
	ck_assert_str_eq(s, cert0);
	free(s);
	s = read_ca_file("private/cakey.pem");
	ck_assert_str_eq(s, key0);
	free(s);
	s = read_ca_file("index.txt");
	ck_assert_str_eq(s, index0);
	free(s);
	X509_free(leaf);
	leaf = issue(ca, CS_KEY_EC_P256, names, 1, CS_USAGE_SERVER, NULL, NULL);
	ck_assert_int_eq(X509_verify(leaf, X509_get0_pubkey(cs_localca_cacert(ca))), 1);
	X509_free(leaf);
	cs_localca_close(ca);
	free(cert0);
	free(key0);
	free(index0);
}
END_TEST

/* A directory with other things in it, or half a CA, is not taken over. */
START_TEST(test_localca_refuses_foreign_dir)
{
	struct cs_localca_opts o = opts(CS_KEY_EC_P256);
	char err[1024] = "", *p;
	cs_localca *ca;

	ck_assert_int_eq(mkdir(cadir, 0755), 0);
	p = cs_test_write(cadir, "notes.txt", "mine\n", 0644);
	free(p);
	ca = cs_localca_open(&o, err, sizeof(err));
	ck_assert_ptr_null(ca);
	ck_assert_msg(strstr(err, cadir) && strstr(err, "not empty") && strstr(err, "notes.txt"),
		      "%s", err);
	p = ca_path("notes.txt");
	ck_assert_int_eq(unlink(p), 0);
	free(p);
	p = ca_path("private");
	ck_assert_int_eq(mkdir(p, 0700), 0);
	free(p);
	p = cs_test_write(cadir, "private/cakey.pem", "not ours\n", 0600);
	free(p);
	ca = cs_localca_open(&o, err, sizeof(err));
	ck_assert_ptr_null(ca);
	ck_assert_msg(strstr(err, "not empty") != NULL, "%s", err);
	p = read_ca_file("private/cakey.pem");
	ck_assert_str_eq(p, "not ours\n");
	free(p);
}
END_TEST

/* A creation cut short (marker, key, no certificate) is done again. */
START_TEST(test_localca_resumes_cut_creation)
{
	char *p;
	cs_localca *ca = open_ca(CS_KEY_EC_P256);

	cs_localca_close(ca);
	p = ca_path("cacert.pem");
	ck_assert_int_eq(unlink(p), 0);
	free(p);
	p = cs_test_write(cadir, ".certsync-creating", "", 0600);
	free(p);
	ca = open_ca(CS_KEY_EC_P256);
	{
		/* The new certificate goes with the key now on disk. */
		char *kp = ca_path("private/cakey.pem");
		BIO *b = BIO_new_file(kp, "r");
		EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);

		ck_assert_ptr_nonnull(k);
		ck_assert_int_eq(X509_check_private_key(cs_localca_cacert(ca), k), 1);
		EVP_PKEY_free(k);
		BIO_free(b);
		free(kp);
	}
	cs_localca_close(ca);
	p = ca_path(".certsync-creating");
	ck_assert_int_ne(access(p, F_OK), 0);
	free(p);
	p = ca_path("cacert.pem");
	ck_assert_int_eq(access(p, F_OK), 0);
	free(p);
}
END_TEST

/* A CSR whose signature does not match its key, or a key we do not issue for. */
START_TEST(test_localca_rejects_bad_requests)
{
	char *names[] = { "bad.example.test" };
	cs_localca *ca = open_ca(CS_KEY_EC_P256);
	char err[1024] = "";
	EVP_PKEY *k1 = cs_key_generate(CS_KEY_EC_P256, err, sizeof(err));
	EVP_PKEY *k2 = cs_key_generate(CS_KEY_EC_P256, err, sizeof(err));
	EVP_PKEY *weak = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	X509_REQ *csr = cs_csr_new(k1, names, 1, err, sizeof(err));
	struct cs_der csr_der = cs_test_csr_der(csr);
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;
	char *s;

	/* Swap the key after signing: the signature no longer verifies. */
	ck_assert(X509_REQ_set_pubkey(csr, k2));
	ck_assert_int_eq(cs_localca_issue(ca, csr, names, 1, CS_USAGE_SERVER, &leaf, &chain, err,
					  sizeof(err)),
			 -EINVAL);
	ck_assert_msg(strstr(err, "bad signature") != NULL, "%s", err);
	X509_REQ_free(csr);
	cs_issuer_der_clear(&csr_der);
	csr = cs_csr_new(weak, names, 1, err, sizeof(err));
	ck_assert_int_eq(cs_localca_issue(ca, csr, names, 1, CS_USAGE_SERVER, &leaf, &chain, err,
					  sizeof(err)),
			 -EINVAL);
	ck_assert_msg(strstr(err, "RSA 1024 bits") != NULL, "%s", err);
	ck_assert_int_eq(cs_localca_issue(ca, csr, names, 0, CS_USAGE_SERVER, &leaf, &chain, err,
					  sizeof(err)),
			 -EINVAL);
	ck_assert_str_eq(err, "no names to issue for");
	{
		char *spaced[] = { "a b.example.test" };

		X509_REQ_free(csr);
	cs_issuer_der_clear(&csr_der);
		csr = cs_csr_new(k1, names, 1, err, sizeof(err));
		ck_assert_int_eq(cs_localca_issue(ca, csr, spaced, 1, CS_USAGE_SERVER, &leaf,
						  &chain, err, sizeof(err)),
				 -EINVAL);
		ck_assert_msg(strstr(err, "\"a b.example.test\" holds a space") != NULL, "%s",
			      err);
	}
	ck_assert_ptr_null(leaf);
	ck_assert_ptr_null(chain);
	s = read_ca_file("index.txt");
	ck_assert_str_eq(s, "");
	free(s);
	X509_REQ_free(csr);
	cs_issuer_der_clear(&csr_der);
	EVP_PKEY_free(k1);
	EVP_PKEY_free(k2);
	EVP_PKEY_free(weak);
	cs_localca_close(ca);
}
END_TEST

/*
 * Adopting sets unique_subject = no (renewals repeat subjects); a yes written
 * while the CA is open is honoured, as openssl ca would, with a message.
 */
START_TEST(test_localca_unique_subject)
{
	char *a[] = { "u.example.test" }, *b[] = { "v.example.test" }, *s, err[1024] = "";
	cs_localca *ca = open_ca(CS_KEY_EC_P256);
	X509 *x = issue(ca, CS_KEY_EC_P256, a, 1, CS_USAGE_SERVER, NULL, NULL), *y = NULL;
	EVP_PKEY *k = cs_key_generate(CS_KEY_EC_P256, err, sizeof(err));
	X509_REQ *csr = cs_csr_new(k, a, 1, err, sizeof(err));
	struct cs_der csr_der = cs_test_csr_der(csr);
	STACK_OF(X509) *chain = NULL;

	X509_free(x);
	x = issue(ca, CS_KEY_EC_P256, a, 1, CS_USAGE_SERVER, NULL, NULL);
	X509_free(x);
	free(cs_test_write(cadir, "index.txt.attr", "unique_subject = yes\n", 0644));
	ck_assert_int_eq(cs_localca_issue(ca, csr, a, 1, CS_USAGE_SERVER, &y, &chain, err,
					  sizeof(err)),
			 -EEXIST);
	ck_assert_msg(strstr(err, "asks for unique subjects and /CN=u.example.test is still valid"),
		      "%s", err);
	x = issue(ca, CS_KEY_EC_P256, b, 1, CS_USAGE_SERVER, NULL, NULL);
	X509_free(x);
	cs_localca_close(ca);
	ca = open_ca(CS_KEY_EC_P256);
	s = read_ca_file("index.txt.attr");
	ck_assert_str_eq(s, "unique_subject = no\n");
	free(s);
	ck_assert_int_eq(cs_localca_issue(ca, csr, a, 1, CS_USAGE_SERVER, &y, &chain, err,
					  sizeof(err)),
			 0);
	X509_free(y);
	sk_X509_pop_free(chain, X509_free);
	X509_REQ_free(csr);
	cs_issuer_der_clear(&csr_der);
	EVP_PKEY_free(k);
	cs_localca_close(ca);
}
END_TEST

/* A leaf never outlives its CA: notAfter is cut to the CA's. */
START_TEST(test_localca_leaf_within_ca_validity)
{
	struct cs_localca_opts o = opts(CS_KEY_EC_P256);
	char *names[] = { "short.example.test" }, err[1024] = "";
	cs_localca *ca;
	X509 *leaf;

	o.ca_validity_s = 10 * 86400;
	ca = cs_localca_open(&o, err, sizeof(err));
	ck_assert_msg(ca != NULL, "%s", err);
	leaf = issue(ca, CS_KEY_EC_P256, names, 1, CS_USAGE_SERVER, NULL, NULL);
	ck_assert_int_eq(ASN1_TIME_compare(X509_get0_notAfter(leaf),
					   X509_get0_notAfter(cs_localca_cacert(ca))),
			 0);
	X509_free(leaf);
	cs_localca_close(ca);
}
END_TEST

/* Revocation marks the line as openssl ca does; the CRL lists it, numbered from crlnumber. */
START_TEST(test_localca_revoke_and_crl)
{
	char *names[] = { "r.example.test" };
	cs_localca *ca = open_ca(keytypes[_i]);
	X509 *a = issue(ca, CS_KEY_EC_P256, names, 1, CS_USAGE_SERVER, NULL, NULL);
	X509 *b = issue(ca, CS_KEY_EC_P256, names, 1, CS_USAGE_SERVER, NULL, NULL);
	char *ha = serial_hex(a), *hb = serial_hex(b), *s, *lower, err[1024] = "";
	X509_CRL *crl = NULL;
	X509_REVOKED *rev = NULL;
	ASN1_INTEGER *num;
	ASN1_ENUMERATED *reason;
	const char *na = (const char *)ASN1_STRING_get0_data(X509_get0_notAfter(a));
	char want_prefix[256], want_b[256];

	lower = strdup(ha);
	for (char *p = lower; *p; p++)
		*p = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
	ck_assert_msg(cs_localca_revoke(ca, lower, "keycompromise", err, sizeof(err)) == 0, "%s",
		      err);
	ck_assert_int_eq(cs_localca_revoke(ca, ha, NULL, err, sizeof(err)), -ENOENT);
	ck_assert_msg(strstr(err, "already revoked") != NULL, "%s", err);
	ck_assert_int_eq(cs_localca_revoke(ca, "0BADBAD0", NULL, err, sizeof(err)), -ENOENT);
	ck_assert_int_eq(cs_localca_revoke(ca, hb, "becauseIsaidso", err, sizeof(err)), -EINVAL);
	ck_assert_int_eq(cs_localca_revoke(ca, "xyz", NULL, err, sizeof(err)), -EINVAL);

	s = read_ca_file("index.txt");
	snprintf(want_prefix, sizeof(want_prefix), "R\t%s\t", na);
	ck_assert_msg(strncmp(s, want_prefix, strlen(want_prefix)) == 0, "%s", s);
	/* R, expiry, revocation date (UTCTime of now) with the reason, then the rest unchanged. */
	ck_assert_uint_eq(strcspn(s + strlen(want_prefix), "\t"), 13 + strlen(",keyCompromise"));
	ck_assert_msg(strstr(s, "Z,keyCompromise\t") != NULL, "%s", s);
	snprintf(want_b, sizeof(want_b),
		 "\t%s\tunknown\t/CN=r.example.test\nV\t%s\t\t%s\tunknown\t/CN=r.example.test\n", ha, (const char *)ASN1_STRING_get0_data(X509_get0_notAfter(b)), hb);
	ck_assert_msg(strstr(s, want_b) != NULL, "%s", s);
	free(s);

	ck_assert_msg(cs_localca_gencrl(ca, 7 * 86400, &crl, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(X509_CRL_verify(crl, X509_get0_pubkey(cs_localca_cacert(ca))), 1);
	ck_assert_int_eq(sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)), 1);
	ck_assert_int_eq(X509_CRL_get0_by_serial(crl, &rev, X509_get0_serialNumber(a)), 1);
	ck_assert_int_eq(X509_CRL_get0_by_serial(crl, &rev, X509_get0_serialNumber(b)), 0);
	ck_assert_int_eq(X509_CRL_get0_by_serial(crl, &rev, X509_get0_serialNumber(a)), 1);
	reason = X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, NULL, NULL);
	ck_assert_ptr_nonnull(reason);
	ck_assert_int_eq(ASN1_ENUMERATED_get(reason), 1);
	ASN1_ENUMERATED_free(reason);
	num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	ck_assert_int_eq(ASN1_INTEGER_get(num), 1);
	ASN1_INTEGER_free(num);
	ck_assert_int_eq(seconds_between(X509_CRL_get0_lastUpdate(crl),
					 X509_CRL_get0_nextUpdate(crl)),
			 7L * 86400);
	s = read_ca_file("crlnumber");
	ck_assert_str_eq(s, "02\n");
	free(s);
	{
		/* crl.pem on disk is the CRL returned, and what ca_material would publish. */
		char *p = ca_path("crl.pem");
		BIO *bio = BIO_new_file(p, "r");
		X509_CRL *disk = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL);

		ck_assert_ptr_nonnull(disk);
		ck_assert_int_eq(X509_CRL_cmp(disk, crl), 0);
		ck_assert_int_eq(ASN1_STRING_cmp(X509_CRL_get0_lastUpdate(disk),
						 X509_CRL_get0_lastUpdate(crl)),
				 0);
		X509_CRL_free(disk);
		BIO_free(bio);
		free(p);
	}
	X509_CRL_free(crl);
	free(lower);
	free(ha);
	free(hb);
	X509_free(a);
	X509_free(b);
	cs_localca_close(ca);
}
END_TEST

/* ---- the asynchronous issuer ---- */

struct async_state {
	int done, ok, cancelled, closed, other;
	X509 *cacert;
	char last_error[1024];
};

static void on_issued(void *arg, const struct cs_issue_result *res)
{
	struct async_state *st = arg;
	X509 *leaf = NULL;
	STACK_OF(X509) *chain = NULL;

	st->done++;
	if (res->status == 0) {
		if (cs_test_issued(res, &leaf, &chain) == 0 && sk_X509_num(chain) == 1 &&
		    X509_verify(leaf, X509_get0_pubkey(sk_X509_value(chain, 0))) == 1)
			st->ok++;
		else
			st->other++;
	} else if (res->status == -ECANCELED) {
		st->cancelled++;
	} else {
		st->other++;
		snprintf(st->last_error, sizeof(st->last_error), "%s", res->error);
	}
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
}

static void on_closed(void *arg)
{
	((struct async_state *)arg)->closed++;
}

START_TEST(test_localca_issuer_async)
{
	struct cs_localca_opts o = opts(CS_KEY_EC_P256);
	char *names[] = { "async.example.test", "127.0.0.1" };
	struct async_state st = { 0 };
	char err[1024] = "";
	uv_loop_t loop;
	cs_issuer *is;
	EVP_PKEY *k = cs_key_generate(CS_KEY_EC_P256, err, sizeof(err));
	X509_REQ *csr = cs_csr_new(k, names, 2, err, sizeof(err));
	struct cs_der csr_der = cs_test_csr_der(csr);
	struct cs_issue_request req = {
		.cert_name = "async", .names = names, .n_names = 2, .csr = csr_der,
	};
	X509 *cacert = NULL;
	X509_CRL *crl = NULL;

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	is = cs_localca_issuer_new(&loop, "local", &o, err, sizeof(err));
	ck_assert_msg(is != NULL, "%s", err);
	ck_assert_str_eq(is->ops->type, "local-ca");
	/* The CA is created by the first request, on the work queue, not by issuer_new. */
	{
		char *p = ca_path("cacert.pem");

		ck_assert_int_ne(access(p, F_OK), 0);
		free(p);
	}
	ck_assert_int_eq(cs_test_ca_material(is, &cacert, &crl), -EAGAIN);
	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(is->ops->issue(is, &req, on_issued, &st), 0);
	/* Nothing is called back before the loop runs: the work is off the caller's turn. */
	ck_assert_int_eq(st.done, 0);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_msg(st.ok == 5, "ok %d other %d: %s", st.ok, st.other, st.last_error);
	/* Then 40 queued behind one another on the open CA: committed in groups, each durable. */
	memset(&st, 0, sizeof(st));
	for (int i = 0; i < 40; i++)
		ck_assert_int_eq(is->ops->issue(is, &req, on_issued, &st), 0);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_msg(st.ok == 40, "ok %d other %d: %s", st.ok, st.other, st.last_error);
	{
		char *p = ca_path("index.txt"), line[512];
		FILE *f = fopen(p, "r");
		char serials[45][64];
		int n = 0;
		ck_assert_ptr_nonnull(f);
		while (fgets(line, sizeof(line), f) != NULL && n < 45) {
			char *fld[6] = { 0 };
			char *q = line;
			for (int f_i = 0; f_i < 6 && q != NULL; f_i++)
				fld[f_i] = strsep(&q, "\t");
			ck_assert_ptr_nonnull(fld[3]);
			snprintf(serials[n], sizeof(serials[n]), "%s", fld[3]);
			for (int m = 0; m < n; m++)
				ck_assert_str_ne(serials[m], serials[n]);
			n++;
		}
		fclose(f);
		free(p);
		ck_assert_int_eq(n, 45); /* 5 + 40 lines, every serial once */
	}

	/* ca_material: the CA certificate, and the CRL once one was generated. */
	ck_assert_int_eq(cs_test_ca_material(is, &cacert, &crl), 0);
	ck_assert_ptr_nonnull(cacert);
	ck_assert_ptr_null(crl);
	X509_free(cacert);

	/* Close with requests queued: each callback runs once, then close_cb. */
	memset(&st, 0, sizeof(st));
	for (int i = 0; i < 8; i++)
		ck_assert_int_eq(is->ops->issue(is, &req, on_issued, &st), 0);
	is->ops->close(is, on_closed, &st);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(st.done, 8);
	ck_assert_int_eq(st.ok + st.cancelled, 8);
	ck_assert_int_eq(st.closed, 1);
	ck_assert_int_eq(uv_loop_close(&loop), 0);

	/* Reopened: ca_material carries the CRL of the directory. */
	{
		cs_localca *ca = open_ca(CS_KEY_EC_P256);
		ck_assert_msg(cs_localca_gencrl(ca, 86400, NULL, err, sizeof(err)) == 0, "%s", err);
		cs_localca_close(ca);
	}
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	is = cs_localca_issuer_new(&loop, "local", &o, err, sizeof(err));
	ck_assert_msg(is != NULL, "%s", err);
	ck_assert_int_eq(cs_test_ca_material(is, &cacert, &crl), 0);
	ck_assert_ptr_nonnull(crl);
	ck_assert_int_eq(X509_CRL_verify(crl, X509_get0_pubkey(cacert)), 1);
	X509_free(cacert);
	X509_CRL_free(crl);
	st.closed = 0;
	is->ops->close(is, on_closed, &st);
	ck_assert_int_eq(st.closed, 1);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	X509_REQ_free(csr);
	cs_issuer_der_clear(&csr_der);
	EVP_PKEY_free(k);
}
END_TEST

/* Closing the issuer from within an issuance's callback (as a --once pass that ends there does). */
static cs_issuer *close_from_cb_is;

static void on_issued_then_close(void *arg, const struct cs_issue_result *res)
{
	struct async_state *st = arg;

	on_issued(arg, res);
	if (st->done == 1)
		close_from_cb_is->ops->close(close_from_cb_is, on_closed, st);
}

START_TEST(test_localca_issuer_close_in_callback)
{
	struct cs_localca_opts o = opts(CS_KEY_EC_P256);
	char *names[] = { "cb.example.test" };
	struct async_state st = { 0 };
	char err[1024] = "";
	uv_loop_t loop;
	EVP_PKEY *k = cs_key_generate(CS_KEY_EC_P256, err, sizeof(err));
	X509_REQ *csr = cs_csr_new(k, names, 1, err, sizeof(err));
	struct cs_der csr_der = cs_test_csr_der(csr);
	struct cs_issue_request req = { .cert_name = "cb", .names = names, .n_names = 1, .csr = csr_der };

	cs_localca_close(open_ca(CS_KEY_EC_P256)); /* the CA exists: requests are grouped */
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	close_from_cb_is = cs_localca_issuer_new(&loop, "local", &o, err, sizeof(err));
	ck_assert_msg(close_from_cb_is != NULL, "%s", err);
	ck_assert_int_eq(close_from_cb_is->ops->issue(close_from_cb_is, &req, on_issued_then_close, &st), 0);
	ck_assert_int_eq(close_from_cb_is->ops->issue(close_from_cb_is, &req, on_issued_then_close, &st), 0);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_NOWAIT) >= 0, 1);
	/* Queued behind the running one: a group of its own, or cancelled by the close. */
	ck_assert_int_eq(close_from_cb_is->ops->issue(close_from_cb_is, &req, on_issued_then_close, &st), 0);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(st.done, 3);
	ck_assert_int_eq(st.ok + st.cancelled, 3);
	ck_assert_int_eq(st.closed, 1);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	X509_REQ_free(csr);
	cs_issuer_der_clear(&csr_der);
	EVP_PKEY_free(k);
}
END_TEST

/*
 * Requests queued at once on an open CA: the first runs alone (it started
 * when it came), the others as one group with one commit. Each is answered
 * once, and only when index.txt already names its certificate and
 * newcerts/SERIAL.pem holds it. A request the CA refuses fails alone; a
 * group whose commit fails fails whole, with the reason.
 */
struct group_state {
	int done, ok, failed;
	char errors[4][1100];
};

static void on_issued_durable(void *arg, const struct cs_issue_result *res)
{
	struct group_state *gs = arg;
	X509 *leaf = NULL;

	gs->done++;
	if (res->status == 0) {
		ck_assert_int_eq(cs_test_issued(res, &leaf, NULL), 0);
		char *hex = serial_hex(leaf), *ix = read_ca_file("index.txt"), *nc, *pem;
		char *want = pem_string(leaf);

		ck_assert_msg(strstr(ix, hex) != NULL, "answered before index.txt names %s", hex);
		ck_assert_int_ge(asprintf(&nc, "newcerts/%s.pem", hex), 0);
		pem = read_ca_file(nc);
		ck_assert_str_eq(pem, want);
		gs->ok++;
		free(want);
		free(pem);
		free(nc);
		free(ix);
		free(hex);
	} else {
		if (gs->failed < 4)
			snprintf(gs->errors[gs->failed], sizeof(gs->errors[0]), "%d %s", res->status,
				 res->error);
		gs->failed++;
	}
	X509_free(leaf);
}

static int index_lines(void)
{
	char *ix = read_ca_file("index.txt");
	int n = 0;

	for (char *q = ix; *q != '\0'; q++)
		n += *q == '\n';
	free(ix);
	return n;
}

START_TEST(test_localca_issuer_group_commit)
{
	struct cs_localca_opts o = opts(CS_KEY_EC_P256);
	char *names[] = { "group.example.test", "127.0.0.1" };
	char *bad[] = { "bad name.example.test" };
	struct group_state gs = { 0 };
	char err[1024] = "";
	uv_loop_t loop;
	cs_issuer *is;
	EVP_PKEY *k = cs_key_generate(CS_KEY_EC_P256, err, sizeof(err));
	X509_REQ *csr = cs_csr_new(k, names, 2, err, sizeof(err));
	struct cs_der csr_der = cs_test_csr_der(csr);
	struct cs_issue_request req = { .cert_name = "group", .names = names, .n_names = 2, .csr = csr_der };
	struct cs_issue_request badreq = { .cert_name = "bad", .names = bad, .n_names = 1, .csr = csr_der };
	char *ixp = ca_path("index.txt"), *aside = ca_path("index.txt.aside");

	cs_localca_close(open_ca(CS_KEY_EC_P256)); /* the CA exists: requests are grouped */
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	is = cs_localca_issuer_new(&loop, "local", &o, err, sizeof(err));
	ck_assert_msg(is != NULL, "%s", err);
	ck_assert_int_eq(cs_localca_issuer_commits(is), 0);

	/* Ten at once, the sixth refused by the CA: two commits, nine certificates. */
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(is->ops->issue(is, i == 5 ? &badreq : &req, on_issued_durable, &gs), 0);
	ck_assert_int_eq(gs.done, 0);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(gs.done, 10);
	ck_assert_msg(gs.ok == 9 && gs.failed == 1, "ok %d failed %d: %s", gs.ok, gs.failed,
		      gs.errors[0]);
	ck_assert_msg(strstr(gs.errors[0], "holds a space") != NULL, "%s", gs.errors[0]);
	ck_assert_int_eq(cs_localca_issuer_commits(is), 2);
	ck_assert_int_eq(index_lines(), 9);

	/* The group's commit cannot happen (index.txt is a directory): all four fail with it. */
	ck_assert_int_eq(rename(ixp, aside), 0);
	ck_assert_int_eq(mkdir(ixp, 0755), 0);
	memset(&gs, 0, sizeof(gs));
	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(is->ops->issue(is, &req, on_issued_durable, &gs), 0);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_msg(gs.done == 4 && gs.failed == 4, "ok %d failed %d", gs.ok, gs.failed);
	for (int i = 0; i < 4; i++)
		ck_assert_msg(strstr(gs.errors[i], "/index.txt") != NULL, "%s", gs.errors[i]);
	ck_assert_int_eq(cs_localca_issuer_commits(is), 2);

	/* Put back, the next group goes through, after the nine issued before. */
	ck_assert_int_eq(rmdir(ixp), 0);
	ck_assert_int_eq(rename(aside, ixp), 0);
	memset(&gs, 0, sizeof(gs));
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(is->ops->issue(is, &req, on_issued_durable, &gs), 0);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_msg(gs.ok == 3, "ok %d failed %d: %s", gs.ok, gs.failed, gs.errors[0]);
	ck_assert_int_eq(cs_localca_issuer_commits(is), 4);
	ck_assert_int_eq(index_lines(), 12);

	is->ops->close(is, NULL, NULL);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	free(ixp);
	free(aside);
	X509_REQ_free(csr);
	cs_issuer_der_clear(&csr_der);
	EVP_PKEY_free(k);
}
END_TEST

static void on_issued_keep(void *arg, const struct cs_issue_result *res)
{
	X509 **leaf = arg;

	ck_assert_int_eq(cs_test_issued(res, leaf, NULL), 0);
}

struct revoke_state {
	int done, status;
	char error[1024];
};

static void on_revoked(void *arg, int status, const char *error)
{
	struct revoke_state *rs = arg;

	rs->done++;
	rs->status = status;
	snprintf(rs->error, sizeof(rs->error), "%s", error != NULL ? error : "");
}

/* is->ops->revoke with leaf as DER. */
static int revoke_leaf(cs_issuer *is, X509 *leaf, int reason, cs_issuer_done_cb cb, void *arg)
{
	struct cs_der d = { 0 };
	int rc;

	ck_assert_int_eq(cs_issuer_der_of_x509(&d, leaf), 0);
	rc = is->ops->revoke(is, &d, reason, cb, arg);
	cs_issuer_der_clear(&d);
	return rc;
}

/*
 * A revocation queued on the issuer: index.txt and a CRL that lists the
 * serial with its reason, handed out by ca_material; a second one of the
 * same certificate fails with the CA's reason; bad reasons are refused.
 */
START_TEST(test_localca_issuer_revoke)
{
	struct cs_localca_opts o = opts(CS_KEY_EC_P256);
	char *names[] = { "revoke.example.test" };
	struct revoke_state rs = { 0 };
	char err[1024] = "";
	uv_loop_t loop;
	cs_issuer *is;
	EVP_PKEY *k = cs_key_generate(CS_KEY_EC_P256, err, sizeof(err));
	X509_REQ *csr = cs_csr_new(k, names, 1, err, sizeof(err));
	struct cs_der csr_der = cs_test_csr_der(csr);
	struct cs_issue_request req = {
		.cert_name = "revoke", .names = names, .n_names = 1, .csr = csr_der,
	};
	X509 *leaf = NULL, *cacert = NULL;
	X509_CRL *crl = NULL;
	X509_REVOKED *rev = NULL;
	ASN1_ENUMERATED *why;

	ck_assert_int_eq(uv_loop_init(&loop), 0);
	is = cs_localca_issuer_new(&loop, "local", &o, err, sizeof(err));
	ck_assert_msg(is != NULL, "%s", err);
	ck_assert_ptr_nonnull(is->ops->revoke);
	ck_assert_ptr_nonnull(is->ops->crl_refresh);
	ck_assert_int_eq(is->ops->issue(is, &req, on_issued_keep, &leaf), 0);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_ptr_nonnull(leaf);
	ck_assert_int_eq(revoke_leaf(is, leaf, 8, on_revoked, &rs), -EINVAL);
	ck_assert_int_eq(revoke_leaf(is, leaf, 1, on_revoked, &rs), 0);
	ck_assert_int_eq(rs.done, 0);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_msg(rs.done == 1 && rs.status == 0, "%d: %s", rs.status, rs.error);

	ck_assert_int_eq(cs_test_ca_material(is, &cacert, &crl), 0);
	ck_assert_ptr_nonnull(crl);
	ck_assert_int_eq(X509_CRL_verify(crl, X509_get0_pubkey(cacert)), 1);
	ck_assert_int_eq(X509_CRL_get0_by_serial(crl, &rev,
						 (ASN1_INTEGER *)X509_get0_serialNumber(leaf)),
			 1);
	why = X509_REVOKED_get_ext_d2i(rev, NID_crl_reason, NULL, NULL);
	ck_assert_ptr_nonnull(why);
	ck_assert_int_eq(ASN1_ENUMERATED_get(why), 1);
	ASN1_ENUMERATED_free(why);
	X509_free(cacert);
	X509_CRL_free(crl);

	ck_assert_int_eq(revoke_leaf(is, leaf, 4, on_revoked, &rs), 0);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(rs.done, 2);
	ck_assert_int_eq(rs.status, -ENOENT);
	ck_assert_msg(strstr(rs.error, "already revoked") != NULL, "%s", rs.error);

	rs.done = 0;
	is->ops->close(is, NULL, NULL);
	ck_assert_int_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
	X509_free(leaf);
	X509_REQ_free(csr);
	cs_issuer_der_clear(&csr_der);
	EVP_PKEY_free(k);
}
END_TEST

/* A CA that cannot be opened or created is reported by issuer_new with the reason. */
START_TEST(test_localca_issuer_new_reports)
{
	struct cs_localca_opts o = opts(CS_KEY_EC_P256);
	char err[1024] = "";
	uv_loop_t loop;

	o.subject = "/QQ=x";
	ck_assert_int_eq(uv_loop_init(&loop), 0);
	ck_assert_ptr_null(cs_localca_issuer_new(&loop, "local", &o, err, sizeof(err)));
	ck_assert_msg(strstr(err, "unknown field \"QQ\"") != NULL, "%s", err);
	/* An existing CA is read at once: a damaged one is reported by name. */
	ck_assert_int_eq(mkdir(cadir, 0755), 0);
	free(cs_test_write(cadir, "cacert.pem", "garbage\n", 0644));
	o.subject = subject;
	ck_assert_ptr_null(cs_localca_issuer_new(&loop, "local", &o, err, sizeof(err)));
	ck_assert_msg(strstr(err, "/ca/cacert.pem: no PEM certificate") != NULL, "%s", err);
	ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

Suite *localca_suite(void)
{
	Suite *s = suite_create("localca");
	TCase *tc = tcase_create("localca");

	tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_loop_test(tc, test_localca_creates_ca, 0, N_KEYTYPES);
	tcase_add_loop_test(tc, test_localca_issues_leaf, 0, N_KEYTYPES);
	tcase_add_loop_test(tc, test_localca_leaf_keytypes_client, 0, N_KEYTYPES);
	cs_test_add_loop(tc, test_localca_parse_subject, subjects);
	tcase_add_test(tc, test_localca_adopts_existing);
	tcase_add_test(tc, test_localca_refuses_foreign_dir);
	tcase_add_test(tc, test_localca_resumes_cut_creation);
	tcase_add_test(tc, test_localca_rejects_bad_requests);
	tcase_add_test(tc, test_localca_leaf_within_ca_validity);
	tcase_add_test(tc, test_localca_unique_subject);
	tcase_add_loop_test(tc, test_localca_revoke_and_crl, 0, N_KEYTYPES);
	tcase_add_test(tc, test_localca_issuer_async);
	tcase_add_test(tc, test_localca_issuer_revoke);
	tcase_add_test(tc, test_localca_issuer_new_reports);
	tcase_add_test(tc, test_localca_issuer_close_in_callback);
	tcase_add_test(tc, test_localca_issuer_group_commit);
	suite_add_tcase(s, tc);
	return s;
}
