/*
 * fetch.h - a minimal HTTP/1.1 GET client for `railgun doctor` and
 * `railgun bench e2e`: scrapes /metrics (or any page) of a node, with one
 * deadline for the whole exchange, a cap on the body, and plain errors.
 * No TLS, no redirects, no keep-alive: one connection per GET
 * (`Connection: close`). Bodies sent with Content-Length, chunked, or
 * until the server closes are all understood.
 *
 * Threads: any; calls share nothing.
 */
#ifndef RG_FETCH_H
#define RG_FETCH_H

#include <stddef.h>

/* A parsed http:// URL. */
typedef struct rg_url_s {
    char host[256];   /* without brackets for IPv6 */
    char port[8];     /* "80" when not given */
    char path[1024];  /* "/" when not given; with the query */
} rg_url_t;

/*
 * Parses "http://host[:port][/path]" (or "host:port[/path]", the scheme
 * implied); IPv6 hosts in brackets. 0, or RG_EINVAL with the reason in
 * errstr.
 */
int rg_url_parse(const char *url, rg_url_t *out, char *errstr,
                 size_t errstr_size);

/*
 * GET u within timeout_ms (connect, send and receive together). On 0,
 * *status is the HTTP status and *body (malloc'ed, NUL-terminated; free
 * it) holds *len bytes. Errors, with a one-line reason in errstr:
 * RG_EIO (resolve, connect, send or receive failed), RG_ETIMEDOUT,
 * RG_ERANGE (the body is over `max` bytes), RG_EDECODE (the answer is not
 * HTTP/1.x), RG_ENOMEM.
 */
int rg_fetch(const rg_url_t *u, int timeout_ms, size_t max, int *status,
             char **body, size_t *len, char *errstr, size_t errstr_size);

#endif /* RG_FETCH_H */
