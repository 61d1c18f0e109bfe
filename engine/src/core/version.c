/*
 * version.c - the library's version string.
 */
#include "railgun/railgun.h"

const char *rg_version(void)
{
    return RG_VERSION_STR;
}
