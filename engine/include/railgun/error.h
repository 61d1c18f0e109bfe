/*
 * error.h - railgun error codes, and the conventions every call follows.
 *
 * Every function that can fail returns 0 (or a count) on success and a
 * negative RG_E* code on failure. The codes come from one X-macro list, so
 * the enum, rg_strerror() and rg_err_name() can never disagree.
 *
 * Conventions
 *   - A call that fails leaves its object unchanged and never fires its
 *     callback. Every destroy/close accepts NULL.
 *   - Constructors (`*_new`, the sinks' `*_open`) return the object (or 0
 *     and fill it), and on failure NULL (or the code) with a one-line
 *     reason in the caller's errstr, which may be NULL. They never report
 *     through errno. rg_conf_new() fails only when out of memory.
 *   - A call that waits with a time limit and gives up returns
 *     RG_ETIMEDOUT (nothing else: RG_EIO is an I/O failure). Whatever it
 *     consumed or changed before giving up is said in its doc.
 *   - A call on a handle that is not started returns RG_ESTATE; on a
 *     stopping or stopped one RG_ESTOPPED.
 *   - Hot-path calls return a count or a code and never log; warnings
 *     (with their reason) go through the log callback (railgun/conf.h).
 *   - rg_err_is_retriable() says whether the same call may succeed later;
 *     the sink's flusher retries exactly those. Adapters keep the
 *     backend's own message in errstr.
 */
#ifndef RAILGUN_ERROR_H
#define RAILGUN_ERROR_H

#include <stdbool.h>
#include "railgun/export.h"

#ifdef __cplusplus
extern "C" {
#endif

/* XX(name, value, retriable, message) */
#define RG_ERRNO_MAP(XX)                                                     \
    XX(INVAL,    -1, 0, "invalid argument")                                  \
    XX(NOMEM,    -2, 1, "out of memory")                                     \
    XX(NOENT,    -3, 0, "no such property or object")                        \
    XX(RANGE,    -4, 0, "value out of range")                                \
    XX(FULL,     -5, 1, "no space left: window or queue is full")            \
    XX(STOPPED,  -6, 0, "engine is stopped or stopping")                     \
    XX(STATE,    -7, 0, "operation not allowed in the current state")        \
    XX(SYS,      -8, 1, "system call failed")                                \
    XX(DECODE,   -9, 0, "undecodable message")                               \
    XX(IO,      -10, 1, "I/O error")                                         \
    XX(STALE,   -11, 0, "stale generation or offset")                      \
    XX(EXIST,   -12, 0, "already done")                                    \
    XX(TIMEDOUT, -13, 1, "timed out waiting")

typedef enum rg_err_e {
    RG_OK = 0,
#define RG__ERR_ENUM(name, val, retr, msg) RG_E##name = (val),
    RG_ERRNO_MAP(RG__ERR_ENUM)
#undef RG__ERR_ENUM
} rg_err_t;

/* Human-readable message for an RG_E* code (or "success" for 0). Never NULL. */
RG_EXPORT const char *rg_strerror(int err);

/* The code's name without prefix ("EINVAL"); "UNKNOWN" for other values. */
RG_EXPORT const char *rg_err_name(int err);

/* True when retrying the same call later may succeed (RG_EFULL, RG_EIO...). */
RG_EXPORT bool rg_err_is_retriable(int err);

#ifdef __cplusplus
}
#endif
#endif /* RAILGUN_ERROR_H */
