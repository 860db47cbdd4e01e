/*
 * cs_argv - a command line split into words without a shell. See cs_argv.h.
 */
#include "cs_argv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cs_argv_free(char **argv)
{
	if (argv == NULL)
		return;
	for (char **p = argv; *p; p++)
		free(*p);
	free(argv);
}

char **cs_argv_split(const char *cmd, char *err, size_t errlen)
{
	size_t cap = 8, n = 0, len = strlen(cmd);
	char **argv = calloc(cap, sizeof(*argv));
	char *word = malloc(len + 1);
	const char *p = cmd;

	if (argv == NULL || word == NULL)
		goto fail;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		size_t w = 0;
		while (*p != '\0' && *p != ' ' && *p != '\t') {
			if (*p == '\'') {
				const char *end = strchr(p + 1, '\'');
				if (end == NULL) {
					snprintf(err, errlen, "unterminated ' in: %s", cmd);
					goto fail;
				}
				memcpy(word + w, p + 1, (size_t)(end - p - 1));
				w += (size_t)(end - p - 1);
				p = end + 1;
			} else if (*p == '"') {
				p++;
				while (*p != '"') {
					if (*p == '\0') {
						snprintf(err, errlen, "unterminated \" in: %s", cmd);
						goto fail;
					}
					if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
						p++;
					word[w++] = *p++;
				}
				p++;
			} else if (*p == '\\' && p[1] != '\0') {
				word[w++] = p[1];
				p += 2;
			} else {
				word[w++] = *p++;
			}
		}
		word[w] = '\0';
		if (n + 2 > cap) {
			cap *= 2;
			char **nv = realloc(argv, cap * sizeof(*argv));
			if (nv == NULL)
				goto fail;
			argv = nv;
		}
		argv[n] = strdup(word);
		if (argv[n++] == NULL)
			goto fail;
		argv[n] = NULL;
	}
	free(word);
	if (n == 0) {
		snprintf(err, errlen, "empty command");
		cs_argv_free(argv);
		return NULL;
	}
	return argv;
fail:
	free(word);
	cs_argv_free(argv);
	if (err[0] == '\0')
		snprintf(err, errlen, "out of memory");
	return NULL;
}
