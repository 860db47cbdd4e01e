/*
 * cs_problems - the list of problems (see cs_problems.h); cs_validate
 * appends to it.
 */
#include "cs_problems.h"

#include <stdlib.h>

struct cs_problems *cs_problems_new(void)
{
	return calloc(1, sizeof(struct cs_problems));
}

void cs_problems_free(struct cs_problems *p)
{
	if (p == NULL)
		return;
	free(p->v);
	free(p);
}

bool cs_problems_has(const struct cs_problems *p, enum cs_problem_code code)
{
	for (size_t i = 0; p != NULL && i < p->n; i++)
		if (p->v[i].code == code)
			return true;
	return false;
}
