/*
 * cs_x509 - the facts about a certificate or key that people read: names,
 * subject alternative names, serial, validity, key description. Used for
 * messages (cs_validate, cs_chain) and by `certsyncctl inspect`.
 */
#ifndef CS_X509_H
#define CS_X509_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <time.h>

/* Writes the subject of x ("C=US, O=Example, CN=leaf") into buf; returns buf. */
char *cs_x509_subject(const X509 *x, char *buf, size_t len);

/* As cs_x509_subject, for the issuer name of x. */
char *cs_x509_issuer(const X509 *x, char *buf, size_t len);

/*
 * Writes the subject alternative names of x as "DNS:a, IP Address:127.0.0.1"
 * (the spelling of `openssl x509 -ext subjectAltName`) into buf, "" when there
 * are none; returns buf.
 */
char *cs_x509_sans(const X509 *x, char *buf, size_t len);

/* Writes the serial of x in uppercase hex, as `openssl x509 -serial` does; returns buf. */
char *cs_x509_serial(const X509 *x, char *buf, size_t len);

/* Writes t as "2025-01-31 12:00:00 UTC" (iso: "2025-01-31T12:00:00Z"); returns buf. */
char *cs_x509_time(const ASN1_TIME *t, int iso, char *buf, size_t len);

/*
 * Returns the whole days from now until t, rounded toward zero (negative
 * when t is more than a day past), or INT32_MIN when t cannot be read.
 */
long cs_x509_days_until(const ASN1_TIME *t, time_t now);

/* Reads notBefore/notAfter of x as time_t; returns 0 or -1. */
int cs_x509_times(const X509 *x, time_t *not_before, time_t *not_after);

/* Writes a description of the key ("EC P-256", "RSA 2048 bits", "ED25519"); returns buf. */
char *cs_x509_key_desc(const EVP_PKEY *k, char *buf, size_t len);

#endif
