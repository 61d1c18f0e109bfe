/*
 * dashboard.c - the dashboard page, embedded (see dashboard.h). The bytes
 * come from dashboard/index.html through dashboard/embed.cmake at build
 * time, so the page is edited as HTML and shipped inside the binary:
 * nothing to install, nothing to find at run time.
 */
#include "dashboard.h"

static const char html[] = {
#include "dashboard_html.inc"
};

const char *rg_dashboard_html(size_t *len)
{
    if (len != NULL)
        *len = sizeof(html) - 1;
    return html;
}

void rg_dashboard_http(rg_http_request_t *req, void *opaque)
{
    (void)opaque;
    size_t len;
    const char *page = rg_dashboard_html(&len);
    if (rg_http_reply(req, 200, "text/html; charset=utf-8", page, len) == 0)
        rg_http_reply_header(req, "Cache-Control", "no-cache");
}
