#include <stdio.h>

int main(void) {
    printf("hello from strata-bench\n");
    return 0;
}
