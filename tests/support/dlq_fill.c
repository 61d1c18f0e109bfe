/*
 * dlq_fill.c - dlq_fill [name=value ...]: writes a known set of failure
 * rows into the sink those properties name (sink=sqlite with sqlite.path,
 * or sink=mysql with mysql.*; tables and database created), through the
 * sink API as the engine's flusher does: one transaction, write_failures.
 * tests/dlq_test.sh then reads them back with `railgun dlq`.
 *
 * The rows (times are epoch ms):
 *   0:5  dead     undecodable message, key "42", text value, 0 attempts,
 *                 last 1764600000000, reasons "bad_json: expected '{'"
 *   0:9  delayed  event, 2 attempts, due 1764600500000
 *   1:3  dead     event, binary payload with NULs, route key UINT64_MAX,
 *                 5 attempts, last 1764600100000
 *   2:7  dead     message cut at the bound (truncated), 100 x 'x', no key,
 *                 last 1764600200000, reasons "oversized"
 *   3:11 dead     message with a binary key 00 6b 31 and value
 *                 7b 00 7d ff, last 1764600300000, reasons "bad_json: NUL"
 * Exit 0, or 1 with the error on stderr.
 */
#include <stdint.h>
#include <stdio.h>
#include "likes_job.h"
#include "railgun/sinks.h"

int main(int argc, char **argv)
{
    char err[512];
    rg_conf_t *conf = rg_likes_conf_new();
    if (conf == NULL)
        return 1;
    for (int i = 1; i < argc; i++)
        if (rg_conf_set_line(conf, argv[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "dlq_fill: %s\n", err);
            return 1;
        }
    rg_sink_t s;
    if (rg_likes_open_sink(conf, RG_SINK_INIT_SCHEMA |
                                     RG_SINK_CREATE_DATABASE,
                           &s, err, sizeof(err)) != 0) {
        fprintf(stderr, "dlq_fill: %s\n", err);
        return 1;
    }
    static const unsigned char bin[] = {0, 1, 2, 0xff, 0, 'a', 'b', 0};
    static const unsigned char bkey[] = {0, 'k', '1'};
    static const unsigned char bval[] = {'{', 0, '}', 0xff};
    char xs[100];
    for (size_t i = 0; i < sizeof(xs); i++)
        xs[i] = 'x';
    const int64_t t0 = 1764600000000;
    const rg_failure_t rows[] = {
        {.state = RG_FAILURE_DEAD, .partition = 0, .offset = 5, .key = 42,
         .attempts = 0, .flags = RG_FAILURE_F_MESSAGE, .first_ms = t0,
         .last_ms = t0, .reasons = "bad_json: expected '{'",
         .msg_key = "42", .msg_key_len = 2, .payload = "not json at all",
         .payload_len = 15},
        {.state = RG_FAILURE_DELAYED, .partition = 0, .offset = 9, .key = 7,
         .attempts = 2, .first_ms = t0 + 10, .last_ms = t0 + 20,
         .due_ms = t0 + 500000, .reasons = "state: lookup timed out; "
         "state: lookup timed out", .payload = "ev", .payload_len = 2,
         .event_len = 2},
        {.state = RG_FAILURE_DEAD, .partition = 1, .offset = 3,
         .key = UINT64_MAX, .attempts = 5, .first_ms = t0 + 1000,
         .last_ms = t0 + 100000, .reasons = "state: lookup timed out x5; "
         "gave up", .payload = bin, .payload_len = sizeof(bin),
         .event_len = sizeof(bin)},
        {.state = RG_FAILURE_DEAD, .partition = 2, .offset = 7, .key = 1,
         .flags = RG_FAILURE_F_MESSAGE | RG_FAILURE_F_TRUNCATED,
         .first_ms = t0 + 200000, .last_ms = t0 + 200000,
         .reasons = "oversized", .payload = xs, .payload_len = sizeof(xs)},
        {.state = RG_FAILURE_DEAD, .partition = 3, .offset = 11, .key = 3,
         .flags = RG_FAILURE_F_MESSAGE, .first_ms = t0 + 300000,
         .last_ms = t0 + 300000, .reasons = "bad_json: NUL",
         .msg_key = bkey, .msg_key_len = sizeof(bkey), .payload = bval,
         .payload_len = sizeof(bval)},
    };
    int rc = s.begin(s.self, 1, err, sizeof(err));
    if (rc == 0)
        rc = s.write_failures(s.self, rows, sizeof(rows) / sizeof(rows[0]),
                              err, sizeof(err));
    if (rc == 0)
        rc = s.commit(s.self, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "dlq_fill: %s\n", err);
    s.close(s.self);
    rg_conf_destroy(conf);
    return rc != 0;
}
