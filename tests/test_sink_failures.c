/*
 * test_sink_failures.c - the SQL sinks' failures table (sink.table.failures,
 * railgun/sink.h's write_failures and scan_failures) against a real
 * database: every field round trips exactly (binary payloads and keys
 * with NULs, a routing key above INT64_MAX, payloads larger than any
 * buffer the sink started with); delayed rows upsert, a dead row
 * replaces a delayed one, a cleared row removes a delayed row but never
 * a dead one; the rows of one call apply in order; a rolled-back epoch
 * leaves no failure behind; the scan filters by state and partition and
 * returns (partition, offset) order, and the dead letters not forwarded
 * yet (forwarded_ms NULL) apart, an upsert keeping the mark; a table of
 * the wrong shape is
 * refused naming the column; an empty table name means no failure calls.
 *
 * The sink comes from the environment like test_likes.c: RG_TEST_SINK=
 * mysql with RG_MYSQL_SOCKET (tests/support/with_mariadb.sh), otherwise
 * SQLite in a temporary file. ctest runs this binary once per sink.
 */
#define _GNU_SOURCE
#include "support/test.h"
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "likes_job.h"
#include "support/test_db.h"
#include "railgun/sinks.h"

/* A configuration for a fresh, empty database named after `tag`. */
static rg_conf_t *db_conf(const char *tag)
{
    return test_db_conf("failures", tag);
}

static void open_sink(rg_conf_t *conf, rg_sink_t *s)
{
    char err[512];
    cr_assert_eq(rg_likes_open_sink(conf, INIT_FLAGS, s, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_not_null(s->write_failures);
    cr_assert_not_null(s->scan_failures);
}

/* One epoch's transaction holding only these failure rows. */
static void write_epoch(rg_sink_t *s, const rg_failure_t *rows, size_t n)
{
    char err[512];
    cr_assert_eq(s->begin(s->self, 1, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(s->write_failures(s->self, rows, n, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(s->commit(s->self, err, sizeof(err)), 0, "%s", err);
}

/* What a scan returned: deep copies of its rows. */
struct got {
    rg_failure_t row[64];
    char reasons[64][RG_FAILURE_REASONS_MAX];
    size_t n;
    bool overflow;
};

static void *dup_mem(const void *p, size_t n)
{
    if (p == NULL)
        return NULL;
    void *q = malloc(n ? n : 1);
    cr_assert_not_null(q);
    memcpy(q, p, n);
    return q;
}

static void collect(void *arg, const rg_failure_t *f)
{
    struct got *g = arg;
    if (g->n == sizeof(g->row) / sizeof(g->row[0])) {
        g->overflow = true;
        return;
    }
    rg_failure_t *c = &g->row[g->n];
    *c = *f;
    /* the pointers are valid for the callback only: copy them */
    c->msg_key = dup_mem(f->msg_key, f->msg_key_len);
    c->payload = dup_mem(f->payload, f->payload_len);
    snprintf(g->reasons[g->n], RG_FAILURE_REASONS_MAX, "%s", f->reasons);
    c->reasons = g->reasons[g->n];
    g->n++;
}

static void got_free(struct got *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free((void *)g->row[i].msg_key);
        free((void *)g->row[i].payload);
    }
    g->n = 0;
}

static void scan(rg_sink_t *s, int state, const int32_t *parts,
                 size_t nparts, struct got *g)
{
    char err[512];
    got_free(g);
    cr_assert_eq(s->scan_failures(s->self, state, parts, nparts, collect, g,
                                  err, sizeof(err)), 0, "%s", err);
    cr_assert_not(g->overflow);
}

/* Every field of a stored row against what was written. */
static void assert_same(const rg_failure_t *got, const rg_failure_t *want)
{
    cr_assert_eq(got->state, want->state);
    cr_assert_eq(got->partition, want->partition);
    cr_assert_eq(got->offset, want->offset);
    cr_assert_eq(got->key, want->key, "key %" PRIu64 " came back as %"
                 PRIu64, want->key, got->key);
    cr_assert_eq(got->attempts, want->attempts);
    cr_assert_eq(got->flags, want->flags);
    cr_assert_eq(got->first_ms, want->first_ms);
    cr_assert_eq(got->last_ms, want->last_ms);
    cr_assert_eq(got->due_ms, want->due_ms);
    cr_assert_str_eq(got->reasons, want->reasons);
    cr_assert_eq(got->msg_key == NULL, want->msg_key == NULL,
                 "a missing message key must stay missing (and a present "
                 "one present)");
    cr_assert_eq(got->msg_key_len, want->msg_key_len);
    if (want->msg_key_len)
        cr_assert_eq(memcmp(got->msg_key, want->msg_key, want->msg_key_len),
                     0);
    cr_assert_eq(got->payload_len, want->payload_len, "payload %zu bytes "
                 "came back as %zu", want->payload_len, got->payload_len);
    if (want->payload_len)
        cr_assert_eq(memcmp(got->payload, want->payload, want->payload_len),
                     0);
    cr_assert_eq(got->event_len, want->event_len);
}

static rg_failure_t delayed(int32_t p, int64_t off, uint32_t attempts)
{
    return (rg_failure_t){
        .state = RG_FAILURE_DELAYED, .partition = p, .offset = off,
        .key = (uint64_t)off * 7 + 1, .attempts = attempts,
        .first_ms = 1000, .last_ms = 1000 + attempts, .due_ms = 5000,
        .reasons = "state lookup timed out", .payload = "ev", .payload_len = 2,
        .event_len = 2};
}

Test(sink_failures, every_field_round_trips_exactly)
{
    rg_conf_t *conf = db_conf("trip");
    rg_sink_t s;
    open_sink(conf, &s);
    static const unsigned char bin[] = {0, 1, 2, 0, 0xff, 0xfe, 0, '\n', 0};
    static const unsigned char mkey[] = {'k', 0, 'e', 0, 'y'};
    /* payloads past any buffer a scan starts with: 1, 64 KiB + 3, 300 KiB */
    size_t big_len = 300 * 1024, mid_len = 64 * 1024 + 3;
    unsigned char *big = malloc(big_len), *mid = malloc(mid_len);
    cr_assert(big && mid);
    for (size_t i = 0; i < big_len; i++)
        big[i] = (unsigned char)(i * 131 + (i >> 9));
    for (size_t i = 0; i < mid_len; i++)
        mid[i] = (unsigned char)(i * 17);
    char long_reasons[1000];
    memset(long_reasons, 'r', sizeof(long_reasons) - 1);
    long_reasons[sizeof(long_reasons) - 1] = '\0';
    rg_failure_t rows[] = {
        /* a message unpack rejected: raw key and value, never run */
        {.state = RG_FAILURE_DEAD, .partition = 3, .offset = INT64_MAX - 5,
         .key = UINT64_MAX - 1, .attempts = 0,
         .flags = RG_FAILURE_F_MESSAGE | RG_FAILURE_F_TRUNCATED,
         .first_ms = 1764600000123, .last_ms = 1764600000123, .due_ms = 0,
         .reasons = "bad_json: expected '{'; oversized", .msg_key = mkey,
         .msg_key_len = sizeof(mkey), .payload = bin,
         .payload_len = sizeof(bin), .event_len = 0},
        /* an event waiting for its retry, key above INT64_MAX */
        {.state = RG_FAILURE_DELAYED, .partition = 0, .offset = 42,
         .key = (uint64_t)INT64_MAX + 12345, .attempts = 4294967295u,
         .flags = 0, .first_ms = -1, .last_ms = 2, .due_ms = INT64_MAX,
         .reasons = "", .payload = big, .payload_len = big_len,
         .event_len = 4000000000u},
        /* no payload, an empty (present) message key */
        {.state = RG_FAILURE_DEAD, .partition = 0, .offset = 0, .key = 0,
         .attempts = 1, .flags = RG_FAILURE_F_MESSAGE, .first_ms = 5,
         .last_ms = 6, .due_ms = 7, .reasons = "x", .msg_key = "",
         .msg_key_len = 0, .payload = NULL, .payload_len = 0},
        {.state = RG_FAILURE_DELAYED, .partition = 2, .offset = 9, .key = 9,
         .attempts = 2, .reasons = long_reasons, .payload = mid,
         .payload_len = mid_len, .event_len = (uint32_t)mid_len},
        {.state = RG_FAILURE_DELAYED, .partition = 2, .offset = 10,
         .key = 10, .attempts = 2, .reasons = "short again",
         .payload = bin, .payload_len = 1, .event_len = 1},
    };
    write_epoch(&s, rows, sizeof(rows) / sizeof(rows[0]));
    struct got g = {0};
    scan(&s, 0, NULL, 0, &g);
    cr_assert_eq(g.n, 5);
    /* (partition, offset) order: rows 2, 1, 3, 4, 0 */
    static const int order[] = {2, 1, 3, 4, 0};
    for (int i = 0; i < 5; i++) {
        rg_failure_t want = rows[order[i]];
        char cut[RG_FAILURE_REASONS_MAX];
        if (want.reasons == long_reasons) {
            /* stored cut to RG_FAILURE_REASONS_MAX - 1 bytes */
            memset(cut, 'r', sizeof(cut) - 1);
            cut[sizeof(cut) - 1] = '\0';
            want.reasons = cut;
        }
        assert_same(&g.row[i], &want);
    }
    got_free(&g);
    s.close(s.self);
    /* and from a fresh connection, as `railgun dlq` reads it */
    cr_assert_eq(rg_likes_open_sink(conf, 0, &s, (char[256]){0}, 256), 0);
    scan(&s, RG_FAILURE_DEAD, (const int32_t[]){3}, 1, &g);
    cr_assert_eq(g.n, 1);
    assert_same(&g.row[0], &rows[0]);
    got_free(&g);
    s.close(s.self);
    free(big);
    free(mid);
    rg_conf_destroy(conf);
}

Test(sink_failures, upserts_replace_and_cleared_removes_only_delayed)
{
    rg_conf_t *conf = db_conf("upsert");
    rg_sink_t s;
    open_sink(conf, &s);
    struct got g = {0};
    /* delayed, then delayed again with more attempts: one row, updated */
    rg_failure_t a = delayed(1, 100, 1), b = delayed(1, 101, 1);
    write_epoch(&s, (rg_failure_t[]){a, b}, 2);
    rg_failure_t a2 = a;
    a2.attempts = 3;
    a2.last_ms = 9000;
    a2.due_ms = 12000;
    a2.reasons = "timeout; timeout; timeout";
    write_epoch(&s, &a2, 1);
    scan(&s, 0, NULL, 0, &g);
    cr_assert_eq(g.n, 2);
    assert_same(&g.row[0], &a2);
    assert_same(&g.row[1], &b);
    /* delayed -> dead: the same row, now a dead letter */
    rg_failure_t a3 = a2;
    a3.state = RG_FAILURE_DEAD;
    a3.attempts = 5;
    a3.reasons = "timeout x5; gave up";
    write_epoch(&s, &a3, 1);
    scan(&s, RG_FAILURE_DEAD, NULL, 0, &g);
    cr_assert_eq(g.n, 1);
    assert_same(&g.row[0], &a3);
    scan(&s, RG_FAILURE_DELAYED, NULL, 0, &g);
    cr_assert_eq(g.n, 1);
    assert_same(&g.row[0], &b);
    /* cleared: the delayed row goes, the dead one stays; clearing what
     * is not there is fine */
    rg_failure_t ca = {.state = RG_FAILURE_CLEARED, .partition = 1,
                       .offset = 100};
    rg_failure_t cb = {.state = RG_FAILURE_CLEARED, .partition = 1,
                       .offset = 101};
    rg_failure_t cn = {.state = RG_FAILURE_CLEARED, .partition = 7,
                       .offset = 5};
    write_epoch(&s, (rg_failure_t[]){ca, cb, cn}, 3);
    scan(&s, 0, NULL, 0, &g);
    cr_assert_eq(g.n, 1, "cleared must remove the delayed row only");
    assert_same(&g.row[0], &a3);
    /* in order within one call: delayed then cleared leaves nothing,
     * cleared then delayed leaves the row */
    rg_failure_t c = delayed(4, 1, 1), d = delayed(4, 2, 1);
    rg_failure_t cc = {.state = RG_FAILURE_CLEARED, .partition = 4,
                       .offset = 1};
    rg_failure_t cd = {.state = RG_FAILURE_CLEARED, .partition = 4,
                       .offset = 2};
    write_epoch(&s, (rg_failure_t[]){c, cc, cd, d}, 4);
    scan(&s, 0, (const int32_t[]){4}, 1, &g);
    cr_assert_eq(g.n, 1);
    assert_same(&g.row[0], &d);
    got_free(&g);
    s.close(s.self);
    rg_conf_destroy(conf);
}

static void count_rows(void *arg, const rg_row_t *row)
{
    (void)row;
    (*(int *)arg)++;
}

Test(sink_failures, a_rolled_back_epoch_leaves_no_failures)
{
    rg_conf_t *conf = db_conf("rollback");
    rg_sink_t s;
    open_sink(conf, &s);
    char err[512];
    rg_failure_t kept = delayed(0, 1, 1);
    write_epoch(&s, &kept, 1);
    /* an epoch with counts, a new delayed row, a dead letter replacing
     * the kept row, and a clear: all rolled back together */
    rg_row_t cnt = {.key = 5, .value = 3};
    rg_failure_t rows[] = {delayed(0, 2, 1), kept,
                           {.state = RG_FAILURE_CLEARED, .partition = 0,
                            .offset = 1}};
    rows[1].state = RG_FAILURE_DEAD;
    cr_assert_eq(s.begin(s.self, 2, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(s.write_merged(s.self, &cnt, 1, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(s.write_failures(s.self, rows, 3, err, sizeof(err)), 0,
                 "%s", err);
    s.rollback(s.self);
    struct got g = {0};
    scan(&s, 0, NULL, 0, &g);
    cr_assert_eq(g.n, 1);
    assert_same(&g.row[0], &kept);
    int counts = 0;
    cr_assert_eq(s.scan(s.self, RG_SINK_MERGED, count_rows, &counts, err,
                        sizeof(err)), 0, "%s", err);
    cr_assert_eq(counts, 0);
    /* the sink goes on: the next epoch commits */
    cr_assert_eq(s.begin(s.self, 3, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(s.write_failures(s.self, &rows[2], 1, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(s.commit(s.self, err, sizeof(err)), 0, "%s", err);
    scan(&s, 0, NULL, 0, &g);
    cr_assert_eq(g.n, 0);
    /* an unknown state is refused, naming the row */
    rg_failure_t bad = delayed(0, 3, 1);
    bad.state = 9;
    cr_assert_eq(s.begin(s.self, 4, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(s.write_failures(s.self, &bad, 1, err, sizeof(err)),
                 RG_EINVAL);
    cr_assert(strstr(err, "offset 3") && strstr(err, "state 9"), "%s", err);
    s.rollback(s.self);
    got_free(&g);
    s.close(s.self);
    rg_conf_destroy(conf);
}

Test(sink_failures, scans_filter_by_state_and_partition_in_key_order)
{
    rg_conf_t *conf = db_conf("scan");
    rg_sink_t s;
    open_sink(conf, &s);
    /* partitions 0..3, offsets written out of order, every third dead */
    rg_failure_t rows[24];
    for (int i = 0; i < 24; i++) {
        int32_t p = (int32_t)((i * 5) % 4);
        int64_t off = 1000 - (int64_t)i * 10;
        rows[i] = delayed(p, off, 1);
        if (i % 3 == 0)
            rows[i].state = RG_FAILURE_DEAD;
    }
    write_epoch(&s, rows, 24);
    struct got g = {0};
    /* every row, in (partition, offset) order */
    scan(&s, 0, NULL, 0, &g);
    cr_assert_eq(g.n, 24);
    for (size_t i = 1; i < g.n; i++)
        cr_assert(g.row[i - 1].partition < g.row[i].partition ||
                      (g.row[i - 1].partition == g.row[i].partition &&
                       g.row[i - 1].offset < g.row[i].offset),
                  "row %zu out of order", i);
    /* dead letters of partitions 3 and 1 (asked unsorted, repeated) */
    scan(&s, RG_FAILURE_DEAD, (const int32_t[]){3, 1, 3, 1}, 4, &g);
    size_t want = 0;
    for (int i = 0; i < 24; i++)
        want += rows[i].state == RG_FAILURE_DEAD &&
                (rows[i].partition == 1 || rows[i].partition == 3);
    cr_assert_gt(want, 0);
    cr_assert_eq(g.n, want);
    for (size_t i = 0; i < g.n; i++) {
        cr_assert_eq(g.row[i].state, RG_FAILURE_DEAD);
        cr_assert(g.row[i].partition == 1 || g.row[i].partition == 3);
        if (i > 0)
            cr_assert(g.row[i - 1].partition < g.row[i].partition ||
                          (g.row[i - 1].partition == g.row[i].partition &&
                           g.row[i - 1].offset < g.row[i].offset),
                      "row %zu out of order", i);
    }
    /* delayed of partition 2; of a partition with none */
    scan(&s, RG_FAILURE_DELAYED, (const int32_t[]){2}, 1, &g);
    want = 0;
    for (int i = 0; i < 24; i++)
        want += rows[i].state == RG_FAILURE_DELAYED && rows[i].partition == 2;
    cr_assert_eq(g.n, want);
    for (size_t i = 0; i < g.n; i++)
        cr_assert(g.row[i].state == RG_FAILURE_DELAYED &&
                  g.row[i].partition == 2);
    scan(&s, 0, (const int32_t[]){99}, 1, &g);
    cr_assert_eq(g.n, 0);
    /* a state that is not a scan filter */
    char err[512];
    cr_assert_eq(s.scan_failures(s.self, RG_FAILURE_CLEARED, NULL, 0,
                                 collect, &g, err, sizeof(err)), RG_EINVAL);
    cr_assert_eq(g.n, 0);
    got_free(&g);
    s.close(s.self);
    rg_conf_destroy(conf);
}

/* Runs one SQL statement on the test's database, outside the sink. */
static void raw_sql(const rg_conf_t *conf, const char *sql)
{
    if (is_mysql()) {
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "mariadb --no-defaults -uroot -S '%s' "
                 "'%s' -e '%s'", getenv("RG_MYSQL_SOCKET"),
                 rg_conf_get_str(conf, "mysql.database"), sql);
        cr_assert_eq(system(cmd), 0, "%s", cmd);
    } else {
        sqlite3 *db;
        cr_assert_eq(sqlite3_open(rg_conf_get_str(conf, "sqlite.path"), &db),
                     SQLITE_OK);
        sqlite3_busy_timeout(db, 5000);
        cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK,
                     "%s: %s", sql, sqlite3_errmsg(db));
        sqlite3_close(db);
    }
}

Test(sink_failures, unforwarded_scan_skips_forwarded_and_delayed_rows)
{
    rg_conf_t *conf = db_conf("fwd");
    rg_sink_t s;
    open_sink(conf, &s);
    /* partitions 0..2: offsets 10..15 dead, 20 delayed */
    rg_failure_t rows[21];
    size_t n = 0;
    for (int32_t p = 0; p < 3; p++) {
        for (int64_t off = 10; off < 16; off++) {
            rows[n] = delayed(p, off, 3);
            rows[n++].state = RG_FAILURE_DEAD;
        }
        rows[n++] = delayed(p, 20, 1);
    }
    write_epoch(&s, rows, n);
    struct got g = {0};
    scan(&s, RG_FAILURE_UNFORWARDED, NULL, 0, &g);
    cr_assert_eq(g.n, 18, "%zu unforwarded, want the 18 dead", g.n);
    /* forwarded: the even offsets of partition 1, all of partition 2 */
    raw_sql(conf, "UPDATE railgun_failures SET forwarded_ms = 1764600000000 "
                  "WHERE (partition_id = 1 AND offset_id % 2 = 0) OR "
                  "partition_id = 2");
    scan(&s, RG_FAILURE_UNFORWARDED, NULL, 0, &g);
    cr_assert_eq(g.n, 9);
    for (size_t i = 0; i < g.n; i++) {
        cr_assert_eq(g.row[i].state, RG_FAILURE_DEAD);
        cr_assert(g.row[i].partition == 0 ||
                      (g.row[i].partition == 1 && g.row[i].offset % 2 == 1),
                  "%" PRId32 ":%" PRId64 " was forwarded", g.row[i].partition,
                  g.row[i].offset);
        if (i > 0)
            cr_assert(g.row[i - 1].partition < g.row[i].partition ||
                          (g.row[i - 1].partition == g.row[i].partition &&
                           g.row[i - 1].offset < g.row[i].offset),
                      "row %zu out of order", i);
    }
    /* by partition: 1 and 2 (2 has none left) */
    scan(&s, RG_FAILURE_UNFORWARDED, (const int32_t[]){2, 1}, 2, &g);
    cr_assert_eq(g.n, 3);
    for (size_t i = 0; i < g.n; i++)
        cr_assert(g.row[i].partition == 1 && g.row[i].offset % 2 == 1);
    /* the same letter written again (a crash replays its epoch): the
     * sink's upsert keeps the mark */
    write_epoch(&s, rows + 7, 6); /* partition 1's dead rows */
    scan(&s, RG_FAILURE_UNFORWARDED, (const int32_t[]){1}, 1, &g);
    cr_assert_eq(g.n, 3, "an upsert cleared forwarded_ms");
    got_free(&g);
    s.close(s.self);
    rg_conf_destroy(conf);
}

Test(sink_failures, a_wrong_shaped_table_is_refused_naming_the_column)
{
    rg_conf_t *conf = db_conf("shape");
    char err[512];
    rg_sink_t s;
    open_sink(conf, &s);
    s.close(s.self);
    if (is_mysql()) {
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "mariadb --no-defaults -uroot -S '%s' "
                 "'%s' -e 'ALTER TABLE railgun_failures CHANGE payload body "
                 "MEDIUMBLOB NOT NULL'", getenv("RG_MYSQL_SOCKET"),
                 rg_conf_get_str(conf, "mysql.database"));
        cr_assert_eq(system(cmd), 0, "%s", cmd);
    } else {
        sqlite3 *db;
        cr_assert_eq(sqlite3_open(rg_conf_get_str(conf, "sqlite.path"), &db),
                     SQLITE_OK);
        cr_assert_eq(sqlite3_exec(db, "ALTER TABLE railgun_failures RENAME "
                                  "COLUMN payload TO body", NULL, NULL,
                                  NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
        sqlite3_close(db);
    }
    for (int init = 0; init < 2; init++) {
        int rc = rg_likes_open_sink(conf, init ? INIT_FLAGS : 0, &s, err,
                                    sizeof(err));
        cr_assert_neq(rc, 0, "a failures table without `payload` was "
                      "accepted");
        cr_assert(strstr(err, "wrong shape") &&
                      strstr(err, "railgun_failures") &&
                      strstr(err, "payload"),
                  "%s", err);
    }
    /* a missing table, without --init-schema, says how to make it */
    char e2[256];
    cr_assert_eq(rg_conf_set(conf, "sink.table.failures", "dlq_elsewhere",
                             e2, sizeof(e2)), 0, "%s", e2);
    cr_assert_neq(rg_likes_open_sink(conf, 0, &s, err, sizeof(err)), 0);
    cr_assert(strstr(err, "dlq_elsewhere") && strstr(err, "missing") &&
                  strstr(err, "--init-schema"),
              "%s", err);
    rg_conf_destroy(conf);
}

Test(sink_failures, the_table_name_is_checked_and_empty_means_none)
{
    rg_conf_t *conf = db_conf("none");
    char err[512];
    cr_assert_neq(rg_conf_set(conf, "sink.table.failures", "dlq; DROP",
                              err, sizeof(err)), 0);
    cr_assert(strstr(err, "sink.table.failures") && strstr(err, "table name"),
              "%s", err);
    cr_assert_eq(rg_conf_set(conf, "sink.table.failures", "", err,
                             sizeof(err)), 0, "%s", err);
    rg_sink_t s;
    cr_assert_eq(rg_likes_open_sink(conf, INIT_FLAGS, &s, err, sizeof(err)),
                 0, "%s", err);
    cr_assert_null(s.write_failures);
    cr_assert_null(s.scan_failures);
    s.close(s.self);
    /* and the default name is railgun_failures */
    rg_conf_t *def = db_conf("default");
    cr_assert_str_eq(rg_conf_get_str(def, "sink.table.failures"),
                     "railgun_failures");
    rg_conf_destroy(def);
    rg_conf_destroy(conf);
}
