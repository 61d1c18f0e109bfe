#!/usr/bin/env python3
"""dashboard_check.py RESULT.json BASE_URL SCREENSHOT.png fake-healthy|fake-broken|real

Checks what headless Chromium rendered of the dashboard (the JSON that
tests/support/chromium_cdp.py printed: every [data-k] element's data-v and
text, and window.rgDash: the two /stats.json reads the page drew from and
the seconds between them, and /doctor.json) against the JSON itself:

  - each figure's data-v is what the page's own definition gives from the
    reads (throughput = the increase of railgun_events_processed_total over
    dt, lag = the sum of railgun_partition_lag, a worker's busy share = the
    increase of its busy seconds over dt, ...), and its text is that
    number as formatted (1,234 / 12.3k / 1.02M / 30% / -);
  - every partition, worker, lane, hot key and DLQ reason of the read has
    its row, and every doctor finding its block (same ids, same order);
  - the page fetched nothing but BASE_URL's own paths, threw nothing,
    logged no error, and refreshed (at least 3 reads);
  - a /stats.json fetched here has the same families as the page's;
  - the screenshot is a PNG of the page's width;
  - fake-*: the figures match the fake exporter's clocked rates (5000
    events/s, 1250 per worker, busy 0.3 or 0.95) within 15%, and its
    constant gauges equal what is fetched here;
  - real: every metric family named in NOTES-metrics.md is served but
    those NOT_SERVED lists with the reason (and none of those is), and
    the hot video 1 has its hot-key row.
Exit 0, or 1 after listing every mismatch.
"""
import json
import math
import struct
import sys
import urllib.request

FAMILIES = """railgun_build_info railgun_events_consumed_total
railgun_events_accepted_total railgun_events_processed_total
railgun_events_undecodable_total railgun_events_rejected_total
railgun_events_retried_total railgun_events_delayed_total
railgun_events_dead_lettered_total railgun_partition_committed_offset
railgun_partition_high_watermark railgun_partition_lag
railgun_partition_pending_events railgun_partition_oldest_pending_age_seconds
railgun_partition_paused railgun_worker_events_total
railgun_worker_busy_seconds_total railgun_worker_ring_fill_ratio
railgun_worker_parks_total railgun_lane_events_total
railgun_dispatcher_waits_total railgun_dispatcher_parks_total
railgun_epoch_transaction_seconds railgun_epoch_rows railgun_epochs_total
railgun_epoch_retries_total railgun_epochs_pending railgun_hot_key_share_ratio
railgun_hot_keys railgun_hot_key_changes_total
railgun_flow_limit_events_per_second railgun_flow_tokens
railgun_flow_lease_events_per_second railgun_flow_throttled_seconds_total
railgun_flow_degraded railgun_connected railgun_connection_errors_total
railgun_producer_fallback_active railgun_producer_spooled_events
railgun_cache_updates_skipped_total railgun_http_requests_total
railgun_metrics_series_dropped_total""".split()

# Families a plain `railgun run` (no global rate, no read cache) does not
# serve, and why; "real" wants every other one.
NOT_SERVED = {
    "railgun_flow_lease_events_per_second": "only with the Redis lease "
        "client (flow.global.rate.events.per.s)",
    "railgun_flow_degraded": "only with the Redis lease client",
    "railgun_cache_updates_skipped_total": "only with the read cache "
        "(cache.redis.*)",
    "railgun_lane_events_total": "only with hot lanes (hotkey.lanes)",
    "railgun_producer_fallback_active": "a producer's family: railgun "
        "serve's /metrics has it, railgun run produces nothing",
    "railgun_producer_spooled_events": "the same",
}

errors = []


def bad(msg):
    errors.append(msg)


def num(v):
    if isinstance(v, str):
        return {"NaN": math.nan, "+Inf": math.inf, "-Inf": -math.inf}.get(v, float(v))
    return v


def series(s, name):
    f = (s or {}).get(name)
    return f["series"] if f else []


def total(s, name, want=None):
    """The page's sum(): values (histograms: counts), labels filtered."""
    f = (s or {}).get(name)
    if not f:
        return None
    t, anyv = 0.0, False
    for x in f["series"]:
        if want and any(x["labels"].get(k) != v for k, v in want.items()):
            continue
        v = x["count"] if f["type"] == "histogram" else num(x["value"])
        if math.isfinite(v):
            t += v
            anyv = True
    return t if anyv else None


def hsum(s, name):
    f = (s or {}).get(name)
    if not f or f["type"] != "histogram":
        return None
    return sum(num(x["sum"]) for x in f["series"])


class Page:
    def __init__(self, r):
        self.last, self.prev, self.dt = r["last"], r["prev"], r["dt"]

    def rate2(self, a, b):
        if a is None or b is None or not (self.dt and self.dt > 0) or b < a:
            return None
        return (b - a) / self.dt

    def rate(self, name, want=None):
        return self.rate2(total(self.prev, name, want), total(self.last, name, want))


def parse_text(text):
    """A figure as the page formats it, back to a number (None for "-")."""
    if text == "-":
        return None, ""
    unit = ""
    if text.endswith("%"):
        return float(text[:-1]) / 100, "%"
    mult = {"k": 1e3, "M": 1e6, "G": 1e9}.get(text[-1:], 1)
    if mult != 1:
        text = text[:-1]
    return float(text.replace(",", "")) * mult, unit


def check_figure(k, v, text, expected):
    """data-v equals the expectation (the same double arithmetic as the
    page, so to 1e-9), and the text is that number formatted."""
    if expected is None or (isinstance(expected, float) and math.isnan(expected)):
        if v != "":
            bad("%s: shows %r (%s), expected nothing" % (k, v, text))
        if text != "-":
            bad("%s: text %r for no value" % (k, text))
        return
    if v == "":
        bad("%s: shows nothing, expected %r" % (k, expected))
        return
    got = float(v)
    if not math.isclose(got, expected, rel_tol=1e-9, abs_tol=1e-9):
        bad("%s: data-v %r, expected %r" % (k, got, expected))
    try:
        shown, unit = parse_text(text)
    except ValueError:
        bad("%s: text %r is not a figure" % (k, text))
        return
    tol = 0.00501 if unit == "%" else max(0.5, 0.0051 * abs(got))
    if abs(shown - got) > tol + 1e-12:
        bad("%s: text %r is not %r" % (k, text, got))


def expectations(r):
    p = Page(r)
    s = p.last
    e = {}
    e["throughput"] = p.rate("railgun_events_processed_total")
    e["consumed_rate"] = p.rate("railgun_events_consumed_total")
    e["processed_total"] = total(s, "railgun_events_processed_total")
    e["undecodable_rate"] = p.rate("railgun_events_undecodable_total")
    e["epochs_rate"] = p.rate("railgun_epochs_total")
    txn = p.rate("railgun_epoch_transaction_seconds")
    txs = p.rate2(hsum(p.prev, "railgun_epoch_transaction_seconds"),
                  hsum(s, "railgun_epoch_transaction_seconds"))
    e["tx_mean"] = txs / txn if txn and txn > 0 else None
    e["epochs_pending"] = total(s, "railgun_epochs_pending")
    e["lag_total"] = total(s, "railgun_partition_lag")
    ages = [num(x["value"]) for x in series(s, "railgun_partition_oldest_pending_age_seconds")]
    e["oldest_age"] = max(ages) if ages else None
    for i, n in enumerate(["partition_lag", "partition_committed", "partition_high_watermark",
                           "partition_pending", "partition_age"]):
        fam = ["railgun_partition_lag", "railgun_partition_committed_offset",
               "railgun_partition_high_watermark", "railgun_partition_pending_events",
               "railgun_partition_oldest_pending_age_seconds"][i]
        for x in series(s, fam):
            e["%s:%s:%s" % (n, x["labels"]["topic"], x["labels"]["partition"])] = num(x["value"])
    workers = {x["labels"]["worker"] for x in series(s, "railgun_worker_events_total") +
               series(s, "railgun_worker_busy_seconds_total")}
    fills = {x["labels"]["worker"]: num(x["value"]) for x in series(s, "railgun_worker_ring_fill_ratio")}
    for w in workers:
        e["worker_rate:" + w] = p.rate("railgun_worker_events_total", {"worker": w})
        e["worker_busy:" + w] = p.rate("railgun_worker_busy_seconds_total", {"worker": w})
        e["worker_fill:" + w] = fills.get(w)
        e["worker_parks:" + w] = p.rate("railgun_worker_parks_total", {"worker": w})
    for x in series(s, "railgun_lane_events_total"):
        e["lane_rate:" + x["labels"]["lane"]] = p.rate("railgun_lane_events_total",
                                                       {"lane": x["labels"]["lane"]})
    for x in series(s, "railgun_hot_key_share_ratio"):
        e["hot_key:" + x["labels"]["key"]] = num(x["value"])
    e["retried_rate"] = p.rate("railgun_events_retried_total")
    e["delayed_rate"] = p.rate("railgun_events_delayed_total")
    e["dlq_rate"] = p.rate("railgun_events_dead_lettered_total")
    e["dlq_total"] = total(s, "railgun_events_dead_lettered_total")
    for x in series(s, "railgun_events_dead_lettered_total"):
        rsn = x["labels"]["reason"]
        e["dlq_reason_total:" + rsn] = num(x["value"])
        e["dlq_reason_rate:" + rsn] = p.rate("railgun_events_dead_lettered_total", {"reason": rsn})
    e["flow_limit"] = total(s, "railgun_flow_limit_events_per_second")
    e["flow_lease"] = total(s, "railgun_flow_lease_events_per_second")
    e["flow_tokens"] = total(s, "railgun_flow_tokens")
    e["flow_throttled"] = p.rate("railgun_flow_throttled_seconds_total")
    return e


def check_png(path, width):
    with open(path, "rb") as f:
        head = f.read(33)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        bad("%s: not a PNG" % path)
        return
    w, h = struct.unpack(">II", head[16:24])
    if w != width or h < 400:
        bad("%s: %dx%d, expected %d wide, at least 400 high" % (path, w, h, width))


def main():
    result_path, base, shot, mode = sys.argv[1:5]
    with open(result_path) as f:
        res = json.load(f)
    r = res["value"]
    figs = r["figs"]
    byk = {}
    for x in figs:
        if x["k"] in byk:
            bad("figure %s shown twice" % x["k"])
        byk[x["k"]] = x

    # the page's own health
    if r["refreshes"] < 3:
        bad("only %d reads" % r["refreshes"])
    if r["errors"]:
        bad("%d failed reads" % r["errors"])
    for u in res["requests"]:
        if not u.startswith(base.rstrip("/") + "/"):
            bad("fetched from outside the listener: %s" % u)
    for x in res["exceptions"] + res["console_errors"]:
        bad("page error: %s" % x)
    if not (r["dt"] and 0.5 < r["dt"] < 3):
        bad("reads %r s apart, not about one second" % r["dt"])

    # every figure against the reads
    exp = expectations(r)
    for k, want in exp.items():
        if k not in byk:
            bad("figure %s missing from the page" % k)
            continue
        check_figure(k, byk[k]["v"], byk[k]["text"], want)
    flags = {"connected:" + x["labels"]["component"]: num(x["value"]) != 1
             for x in series(r["last"], "railgun_connected")}
    fd = total(r["last"], "railgun_flow_degraded")
    if fd is not None:
        flags["flow_degraded"] = fd == 1
    fb = total(r["last"], "railgun_producer_fallback_active")
    if fb is not None:
        flags["producer_fallback"] = fb == 1
    for k, down in flags.items():
        if k not in byk:
            bad("flag %s missing" % k)
        elif byk[k]["v"] != ("1" if down else "0"):
            bad("flag %s shows %s, expected %s" % (k, byk[k]["v"], down))
    for x in series(r["last"], "railgun_partition_paused"):
        k = "partition_paused:%s:%s" % (x["labels"]["topic"], x["labels"]["partition"])
        want = "paused" if num(x["value"]) == 1 else ""
        if byk.get(k, {}).get("text") != want:
            bad("%s: %r, expected %r" % (k, byk.get(k, {}).get("text"), want))

    # doctor
    doc = r["doctor"]
    if doc is None:
        bad("no /doctor.json read")
    else:
        blocks = [x for x in figs if x["k"].startswith("finding:")]
        ids = [x["id"] for x in blocks]
        if ids != [f["id"] for f in doc["findings"]]:
            bad("findings shown %s, doctor.json has %s" % (ids, [f["id"] for f in doc["findings"]]))
        for x, f in zip(blocks, doc["findings"]):
            if f["title"] not in x["text"] or f["evidence"] not in x["text"]:
                bad("finding %s: title or evidence not shown" % f["id"])
        if byk.get("doctor_summary", {}).get("v") != str(len(doc["findings"])):
            bad("doctor summary %r, expected %d" % (byk.get("doctor_summary"), len(doc["findings"])))
        for p in doc["partitions"]:
            k = "partition_status:%s:%s" % (p["topic"], p["partition"])
            if byk.get(k, {}).get("text") != p["status"]:
                bad("%s: %r, doctor says %s" % (k, byk.get(k, {}).get("text"), p["status"]))

    known = set(exp) | set(flags) | {"version", "health", "refreshes", "doctor_summary"}
    for k in byk:
        if not (k in known or k.startswith(("finding:", "partition_status:", "partition_paused:"))):
            bad("figure %s has no check" % k)

    # a read of our own
    with urllib.request.urlopen(base.rstrip("/") + "/stats.json", timeout=10) as f:
        now = json.load(f)
    if set(now) != set(r["last"]):
        bad("families differ from a fresh /stats.json: %s" % sorted(set(now) ^ set(r["last"])))
    check_png(shot, 1400)

    if mode.startswith("fake"):
        broken = mode == "fake-broken"
        near = {"throughput": 5000, "consumed_rate": 5000, "epochs_rate": 10,
                "worker_rate:0": 1250, "worker_busy:0": 0.3,
                "worker_busy:2": 0.95 if broken else 0.3, "lane_rate:0": 300,
                "retried_rate": 50 if broken else 1, "flow_throttled": 0.1}
        for k, want in near.items():
            # 15%, plus the counters' integer steps over the interval
            v = byk.get(k, {}).get("v")
            if not v or abs(float(v) - want) > 0.15 * want + 1.5 / r["dt"]:
                bad("%s: %r, the fake's rate is %r" % (k, v, want))
        consts = {"partition_lag:likes:0": "railgun_partition_lag",
                  "worker_fill:1": "railgun_worker_ring_fill_ratio",
                  "hot_key:42": "railgun_hot_key_share_ratio",
                  "flow_limit": "railgun_flow_limit_events_per_second"}
        fresh = {"partition_lag:likes:0": num(series(now, "railgun_partition_lag")[0]["value"]),
                 "worker_fill:1": num(series(now, "railgun_worker_ring_fill_ratio")[1]["value"]),
                 "hot_key:42": num(series(now, "railgun_hot_key_share_ratio")[0]["value"]),
                 "flow_limit": total(now, "railgun_flow_limit_events_per_second")}
        for k in consts:
            if float(byk[k]["v"]) != fresh[k]:
                bad("%s shows %s, /stats.json now says %s" % (k, byk[k]["v"], fresh[k]))
        want_ids = {"stuck_watermark", "redis_unreachable", "runaway_retries"} if broken else set()
        got_ids = {f["id"] for f in doc["findings"]} if doc else set()
        if not want_ids <= got_ids or (not broken and got_ids):
            bad("doctor findings %s, expected %s" % (sorted(got_ids), sorted(want_ids)))
        if broken and byk.get("flow_degraded", {}).get("v") != "1":
            bad("flow_degraded flag not raised")
    else:
        missing = [n for n in FAMILIES if n not in now and n not in NOT_SERVED]
        if missing:
            bad("families of NOTES-metrics.md not served: %s" % " ".join(missing))
        extra = [n for n in NOT_SERVED if n in now]
        if extra:
            bad("served now, drop them from NOT_SERVED: %s" % " ".join(extra))
        # the run's video 1 takes half the load: hot, with its row
        if not any(k == "hot_key:1" for k in byk):
            bad("no row for the hot video 1 (hot keys served: %s)" %
                [x["labels"]["key"] for x in series(now, "railgun_hot_key_share_ratio")])

    if errors:
        for x in errors:
            print("dashboard_check: " + x)
        return 1
    print("dashboard_check: %d figures, %d findings, %d reads: ok" %
          (len(figs), len(doc["findings"]) if doc else 0, r["refreshes"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
