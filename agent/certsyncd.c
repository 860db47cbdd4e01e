/* certsyncd - placeholder until the agent main lands in this session. */
#include <stdio.h>
int main(void)
{
	printf("certsyncd %s\n", CS_VERSION);
	return 0;
}
