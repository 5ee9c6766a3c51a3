/* main.c: busgated entry point (placeholder until the master lands). */
#include <stdio.h>

int main(void)
{
    fprintf(stderr, "busgated: not built yet\n");
    return 1;
}
