/*
 * version.c - the library's version at run time.
 */
#include "corm.h"

#define CORM__STR2(x) #x
#define CORM__STR(x) CORM__STR2(x)

const char *corm_version(void)
{
    return CORM__STR(CORM_VERSION_MAJOR) "." CORM__STR(CORM_VERSION_MINOR) "." CORM__STR(
        CORM_VERSION_PATCH);
}

int corm_version_num(void)
{
    return CORM_VERSION_NUM;
}
