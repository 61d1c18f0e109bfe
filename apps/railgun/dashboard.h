/*
 * dashboard.h - the live dashboard page (apps/railgun/dashboard/index.html,
 * embedded at build time): one self-contained HTML page that reads
 * ./stats.json and ./doctor.json every second. `railgun run` serves it at
 * / of its metrics listener.
 *
 *   rg_http_route(h, "GET", "/", 0, rg_dashboard_http, NULL);
 */
#ifndef RG_DASHBOARD_H
#define RG_DASHBOARD_H

#include <stddef.h>
#include "railgun/http.h"

/* The page (static storage, NUL-terminated) and its length in *len. */
const char *rg_dashboard_html(size_t *len);

/* An rg_http handler: 200 text/html with the page (opaque unused). */
void rg_dashboard_http(rg_http_request_t *req, void *opaque);

#endif /* RG_DASHBOARD_H */
