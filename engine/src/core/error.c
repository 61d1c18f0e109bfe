/*
 * error.c - messages and properties of the RG_E* codes (one X-macro list).
 */
#include "railgun/error.h"

const char *rg_strerror(int err)
{
    switch (err) {
    case 0: return "success";
#define XX(name, val, retr, msg) case RG_E##name: return msg;
    RG_ERRNO_MAP(XX)
#undef XX
    default: return "unknown error";
    }
}

const char *rg_err_name(int err)
{
    switch (err) {
    case 0: return "OK";
#define XX(name, val, retr, msg) case RG_E##name: return "E" #name;
    RG_ERRNO_MAP(XX)
#undef XX
    default: return "UNKNOWN";
    }
}

bool rg_err_is_retriable(int err)
{
    switch (err) {
#define XX(name, val, retr, msg) case RG_E##name: return retr;
    RG_ERRNO_MAP(XX)
#undef XX
    default: return false;
    }
}
