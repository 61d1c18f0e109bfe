// header_check.cc - the metrics and HTTP headers compile as C++17 under
// -Wpedantic -Werror (a C++ embedder serves /metrics and updates cells
// through the out-of-line value calls).
#include "railgun/http.h"
#include "railgun/metrics.h"
#include "railgun/redis_cache.h"

void rg_header_check_cxx(rg_metric_family_t *f, rg_http_request_t *r);
void rg_header_check_cxx(rg_metric_family_t *f, rg_http_request_t *r)
{
    rg_counter_add_sw(rg_metrics_counter(f, nullptr, 0), 1);
    rg_histogram_observe_ns_sw(rg_metrics_histogram(f, nullptr, 0), 5);
    rg_gauge_set(rg_metrics_gauge(f, nullptr, 0), 1.0);
    rg_http_reply(r, 200, RG_METRICS_TEXT_CONTENT_TYPE, "", 0);
}

// the read cache's header too (an embedder's own reader or updater)
int rg_header_check_cache_cxx(rg_cache_redis_t *c);
int rg_header_check_cache_cxx(rg_cache_redis_t *c)
{
    rg_cache_key_t k = {1, 0};
    int64_t v = 0;
    bool hit = false;
    return rg_cache_redis_get(c, RG_CACHE_COUNT, &k, 1, &v, &hit);
}
