/*
 * test_conf.c - the property tables: in every layer (core, Kafka, SQLite,
 * MariaDB, the program) defaults valid, every bad value of every property
 * rejected with a message naming it, failed sets change nothing; layering
 * (unknown names, shared and conflicting rows, tables added twice, a
 * copy keeps its tables); files and -X lines; the log callback.
 */
#define _GNU_SOURCE
#include "support/test.h"
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "railgun/railgun.h"
#include "likes_job.h"
#include "railgun/kafka.h"
#include "railgun/sinks.h"

static void assert_rejected(rg_conf_t *conf, const char *name,
                            const char *value)
{
    char err[512] = "";
    char before[1024], after[1024];
    size_t sz = sizeof(before);
    cr_assert_eq(rg_conf_get(conf, name, before, &sz), 0);
    int rc = rg_conf_set(conf, name, value, err, sizeof(err));
    cr_assert_lt(rc, 0, "%s=%s was accepted", name, value);
    cr_assert(strstr(err, name) != NULL,
              "message for %s=\"%s\" does not name it: %s", name, value, err);
    sz = sizeof(after);
    cr_assert_eq(rg_conf_get(conf, name, after, &sz), 0);
    cr_assert_str_eq(before, after, "failed set changed %s", name);
}

/* Calls fn on every row of every table of the program's full conf. */
#define EACH_PROP(conf, p)                                                   \
    for (size_t t_ = 0; t_ < rg_conf_table_count(conf); t_++)               \
        for (const rg_conf_prop_t *p = rg_conf_table_at(conf, t_)->props;   \
             p < rg_conf_table_at(conf, t_)->props +                         \
                     rg_conf_table_at(conf, t_)->count;                      \
             p++)

Test(conf, every_default_is_valid_and_round_trips)
{
    rg_conf_t *conf = rg_likes_conf_new();
    cr_assert_eq(rg_conf_table_count(conf), 6, "core, kafka, sqlite, "
                 "mysql, the program and its metrics listener");
    cr_assert_eq(rg_conf_table_at(conf, 0), rg_conf_core_table());
    cr_assert_eq(rg_conf_table_at(conf, 5), rg_likes_metrics_conf_table());
    cr_assert_null(rg_conf_table_at(conf, 6));
    EACH_PROP(conf, p)
        cr_assert_not(rg_conf_is_set(conf, p->name),
                      "%s: a default counts as not set", p->name);
    size_t n = 0;
    EACH_PROP(conf, p) {
        char err[256] = "", val[1024];
        n++;
        size_t sz = sizeof(val);
        cr_assert_eq(rg_conf_get(conf, p->name, val, &sz), 0);
        cr_assert_str_eq(val, p->def, "%s: default reads back as %s",
                         p->name, val);
        cr_assert_eq(rg_conf_set(conf, p->name, p->def, err, sizeof(err)),
                     0, "default of %s rejected: %s", p->name, err);
        cr_assert_not_null(p->doc);
        cr_assert_gt(strlen(p->doc), 20, "%s is undocumented", p->name);
    }
    cr_assert_gt(n, 30);
    rg_conf_destroy(conf);
}

/* The core's table holds only what the core reads: no adapter's or
 * program's property, and nothing names a database. */
Test(conf, the_core_table_is_the_cores)
{
    const rg_conf_table_t *t = rg_conf_core_table();
    cr_assert_eq(t->scope, RG_CONF_SCOPE_CORE);
    for (size_t i = 0; i < t->count; i++) {
        const char *n = t->props[i].name;
        cr_assert(strncmp(n, "sqlite.", 7) && strncmp(n, "mysql.", 6) &&
                      strcmp(n, "sink") && strcmp(n, "topic") &&
                      strcmp(n, "group.id") && strncmp(n, "source.", 7) &&
                      strcmp(n, "stats.interval.ms"),
                  "%s is not the core's", n);
        cr_assert_null(strstr(t->props[i].doc, "sqlite"), "%s", n);
        cr_assert_null(strstr(t->props[i].doc, "MariaDB"), "%s", n);
    }
    cr_assert_null(t->passthrough);
    /* without the Kafka table, kafka.* and topic are unknown names */
    rg_conf_t *c = rg_conf_new();
    char err[256] = "";
    cr_assert_eq(rg_conf_set(c, "kafka.bootstrap.servers", "h:1", err,
                             sizeof(err)), RG_ENOENT);
    cr_assert(strstr(err, "kafka.bootstrap.servers: unknown property"),
              "%s", err);
    cr_assert_eq(rg_conf_set(c, "sqlite.path", "x", err, sizeof(err)),
                 RG_ENOENT);
    cr_assert_eq(rg_conf_add_table(c, rg_sqlite_conf_table(), err,
                                   sizeof(err)), 0, "%s", err);
    cr_assert_eq(rg_conf_set(c, "sqlite.path", "x", err, sizeof(err)), 0);
    cr_assert_str_eq(rg_conf_get_str(c, "topic"), "likes",
                     "the sink's rows have their defaults");
    rg_conf_destroy(c);
}

static int always_bad(const char *name, const char *value, int64_t iv,
                      char *errstr, size_t size)
{
    (void)value, (void)iv;
    snprintf(errstr, size, "%s: never valid", name);
    return RG_EINVAL;
}

Test(conf, layers_share_identical_rows_and_refuse_conflicting_ones)
{
    static const rg_conf_prop_t a_rows[] = {
        {"app.one", RG_CONF_INT, "5", 0, 10, "an app's own number row", NULL},
        {"topic", RG_CONF_STR, "likes", 0, 0, "the same topic row", NULL},
    };
    static const rg_conf_table_t a = {"app-a", RG_CONF_SCOPE_APP, a_rows, 2,
                                      NULL, NULL};
    static const rg_conf_prop_t b_rows[] = {
        {"app.one", RG_CONF_INT, "6", 0, 10, "another default", NULL},
    };
    static const rg_conf_table_t b = {"app-b", RG_CONF_SCOPE_APP, b_rows, 1,
                                      NULL, NULL};
    static const rg_conf_prop_t c_rows[] = {
        {"app.bad", RG_CONF_STR, "x", 0, 0, "a default its check refuses",
         always_bad},
    };
    static const rg_conf_table_t c = {"app-c", RG_CONF_SCOPE_APP, c_rows, 1,
                                      NULL, NULL};
    rg_conf_t *conf = rg_conf_new();
    char err[256] = "";
    cr_assert_eq(rg_conf_add_table(conf, rg_kafka_conf_table(), err,
                                   sizeof(err)), 0, "%s", err);
    cr_assert_eq(rg_conf_add_table(conf, &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(rg_conf_add_table(conf, &a, err, sizeof(err)), 0,
                 "adding a table twice does nothing");
    cr_assert_eq(rg_conf_table_count(conf), 3);
    /* topic is one property: set through either layer's name */
    cr_assert_eq(rg_conf_set(conf, "topic", "clicks", err, sizeof(err)), 0);
    cr_assert_str_eq(rg_conf_get_str(conf, "topic"), "clicks");
    cr_assert_eq(rg_conf_add_table(conf, &b, err, sizeof(err)), RG_EEXIST);
    cr_assert(strstr(err, "app.one") && strstr(err, "app-a") &&
                  strstr(err, "app-b"), "%s", err);
    cr_assert_eq(rg_conf_add_table(conf, &c, err, sizeof(err)), RG_EINVAL);
    cr_assert(strstr(err, "app.bad"), "%s", err);
    cr_assert_eq(rg_conf_table_count(conf), 3, "failed adds change nothing");
    cr_assert_eq(rg_conf_set(conf, "app.bad", "x", err, sizeof(err)),
                 RG_ENOENT);
    rg_conf_t *copy = rg_conf_dup(conf);
    cr_assert_eq(rg_conf_table_count(copy), 3, "a copy keeps its tables");
    cr_assert_str_eq(rg_conf_get_str(copy, "topic"), "clicks");
    cr_assert(rg_conf_is_set(copy, "topic"));
    cr_assert_not(rg_conf_is_set(copy, "app.one"));
    cr_assert_eq(rg_conf_get_int(copy, "app.one"), 5);
    rg_conf_destroy(copy);
    rg_conf_destroy(conf);
}

struct logged {
    int n;
    rg_log_level_t level;
    char who[32], line[256];
};

static void log_cb(void *opaque, rg_log_level_t level, const char *who,
                   const char *line)
{
    struct logged *l = opaque;
    l->n++;
    l->level = level;
    snprintf(l->who, sizeof(l->who), "%s", who);
    snprintf(l->line, sizeof(l->line), "%s", line);
}

static int unpack_nop(void *opaque, const rg_msg_t *m, rg_event_t *ev)
{
    (void)opaque, (void)m, (void)ev;
    return 0;
}

static void do_nop(void *opaque, rg_ctx_t *ctx, rg_event_t *ev)
{
    (void)opaque, (void)ctx, (void)ev;
}

/* The log callback travels with copies; the engine warns through it
 * (more workers than online CPUs: allowed, warned once, with why). */
Test(conf, the_log_callback_reaches_the_engine)
{
    struct logged l = {0};
    rg_conf_t *conf = rg_conf_new();
    rg_conf_set_log_cb(conf, log_cb, &l);
    rg_conf_t *copy = rg_conf_dup(conf);
    void *op = NULL;
    cr_assert_eq(rg_conf_log_cb(copy, &op), log_cb);
    cr_assert_eq(op, &l);
    rg_conf_log(copy, RG_LOG_INFO, "test", "hello %d", 42);
    cr_assert_eq(l.n, 1);
    cr_assert_str_eq(l.who, "test");
    cr_assert_str_eq(l.line, "hello 42");
    rg_conf_destroy(conf);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    char v[32], err[256];
    snprintf(v, sizeof(v), "%ld", online + 1);
    cr_assert_eq(rg_conf_set(copy, "workers", v, err, sizeof(err)), 0);
    rg_processor_t proc = {.unpack = unpack_nop, .do_event = do_nop};
    rg_engine_t *e = rg_engine_new(copy, &proc, err, sizeof(err));
    cr_assert_not_null(e, "%s", err);
    cr_assert_eq(l.n, 2, "one warning");
    cr_assert_eq(l.level, RG_LOG_WARN);
    cr_assert_str_eq(l.who, "engine");
    cr_assert(strstr(l.line, "online CPUs"), "%s", l.line);
    rg_engine_stats_t st;
    rg_engine_stats(e, &st);
    cr_assert_eq(st.warnings, 1);
    rg_engine_destroy(e);
}

Test(conf, every_bad_value_in_the_table_is_rejected_naming_the_property)
{
    rg_conf_t *conf = rg_likes_conf_new();
    EACH_PROP(conf, p) {
        char v[64];
        switch (p->type) {
        case RG_CONF_INT:
            assert_rejected(conf, p->name, "");
            assert_rejected(conf, p->name, "abc");
            assert_rejected(conf, p->name, "12abc");
            assert_rejected(conf, p->name, " 5");
            assert_rejected(conf, p->name, "99999999999999999999999");
            /* just outside the range (a bound at the type's own limit
             * has no outside: "99999..." above covers it) */
            if (p->min > INT64_MIN) {
                snprintf(v, sizeof(v), "%" PRId64, p->min - 1);
                assert_rejected(conf, p->name, v);
            }
            if (p->max < INT64_MAX) {
                snprintf(v, sizeof(v), "%" PRId64, p->max + 1);
                assert_rejected(conf, p->name, v);
            }
            break;
        case RG_CONF_BOOL:
            assert_rejected(conf, p->name, "yes please");
            assert_rejected(conf, p->name, "");
            break;
        case RG_CONF_DOUBLE:
            assert_rejected(conf, p->name, "");
            assert_rejected(conf, p->name, "abc");
            assert_rejected(conf, p->name, "0.5x");
            assert_rejected(conf, p->name, "nan");
            assert_rejected(conf, p->name, "inf");
            assert_rejected(conf, p->name, "1e999");
            if (p->check == rg_conf_check_share) {
                assert_rejected(conf, p->name, "-0.1");
                assert_rejected(conf, p->name, "1.5");
            }
            break;
        case RG_CONF_STR:
            break;
        }
    }
    rg_conf_destroy(conf);
}

Test(conf, specific_bad_values)
{
    rg_conf_t *conf = rg_conf_new();
    assert_rejected(conf, "workers", "0");
    assert_rejected(conf, "workers", "-3");
    assert_rejected(conf, "ring.capacity", "0");
    assert_rejected(conf, "ring.capacity", "3");
    assert_rejected(conf, "ring.capacity", "1000");
    assert_rejected(conf, "ring.capacity", "1099511627776");
    assert_rejected(conf, "workers.cpus", "99999");
    assert_rejected(conf, "workers.cpus", "1023");
    assert_rejected(conf, "workers.cpus", "abc");
    assert_rejected(conf, "workers.cpus", "0-");
    assert_rejected(conf, "workers.cpus", "3-1");
    assert_rejected(conf, "workers.cpus", "0,,1");
    assert_rejected(conf, "dispatchers", "0");
    char err[256];
    cr_assert_eq(rg_conf_set(conf, "workers.cpus", "0", err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(rg_conf_set(conf, "ring.capacity", "1024", err,
                             sizeof(err)), 0);
    cr_assert_eq(rg_conf_get_int(conf, "ring.capacity"), 1024);
    cr_assert_str_eq(rg_conf_get_str(conf, "workers.cpus"), "0");
    rg_conf_destroy(conf);
}

Test(conf, unknown_property_and_null_arguments)
{
    rg_conf_t *conf = rg_conf_new();
    char err[256] = "";
    cr_assert_eq(rg_conf_set(conf, "no.such.thing", "1", err, sizeof(err)),
                 RG_ENOENT);
    cr_assert(strstr(err, "no.such.thing") != NULL, "%s", err);
    cr_assert_eq(rg_conf_set(conf, NULL, "1", err, sizeof(err)), RG_EINVAL);
    cr_assert_eq(rg_conf_set(conf, "workers", NULL, NULL, 0), RG_EINVAL);
    size_t sz = 0;
    cr_assert_eq(rg_conf_get(conf, "nope", NULL, &sz), RG_ENOENT);
    cr_assert_eq(rg_conf_get(conf, "workers", NULL, &sz), 0);
    cr_assert_eq(sz, 2, "\"2\" plus NUL");
    char tiny[1];
    sz = sizeof(tiny);
    cr_assert_eq(rg_conf_get(conf, "workers", tiny, &sz), RG_ERANGE);
    rg_conf_destroy(conf);
    rg_conf_destroy(NULL);
}

Test(conf, lines_files_and_dup)
{
    rg_conf_t *conf = rg_conf_new();
    char err[512] = "";
    cr_assert_eq(rg_conf_set_line(conf, "  workers = 3 ", err, sizeof(err)),
                 0, "%s", err);
    cr_assert_eq(rg_conf_get_int(conf, "workers"), 3);
    cr_assert_eq(rg_conf_set_line(conf, "workers", err, sizeof(err)),
                 RG_EINVAL);
    char path[] = "/tmp/rg_conf_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "# a comment\n\nworkers=5\nring.capacity=64\n"
               "ring.capacity=65\nworkers=7\n");
    fclose(f);
    cr_assert_eq(rg_conf_load_file(conf, path, err, sizeof(err)), RG_EINVAL);
    cr_assert(strstr(err, ":5:") != NULL, "line number missing: %s", err);
    cr_assert(strstr(err, "ring.capacity") != NULL, "%s", err);
    cr_assert_eq(rg_conf_get_int(conf, "workers"), 5, "lines before apply");
    cr_assert_eq(rg_conf_get_int(conf, "ring.capacity"), 64);
    unlink(path);
    cr_assert_eq(rg_conf_load_file(conf, path, err, sizeof(err)), RG_EIO);
    rg_conf_t *copy = rg_conf_dup(conf);
    rg_conf_set(conf, "workers", "9", err, sizeof(err));
    cr_assert_eq(rg_conf_get_int(copy, "workers"), 5, "dup is deep");
    rg_conf_destroy(copy);
    rg_conf_destroy(conf);
}

Test(conf, errors_have_names_and_messages)
{
    int codes[] = {
#define XX(name, val, retr, msg) RG_E##name,
        RG_ERRNO_MAP(XX)
#undef XX
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        cr_assert_lt(codes[i], 0);
        cr_assert_str_neq(rg_strerror(codes[i]), "unknown error");
        cr_assert_str_neq(rg_err_name(codes[i]), "UNKNOWN");
        for (size_t j = 0; j < i; j++)
            cr_assert_neq(codes[i], codes[j], "duplicate error value");
    }
    cr_assert_str_eq(rg_strerror(0), "success");
    cr_assert_str_eq(rg_strerror(-9999), "unknown error");
    cr_assert(rg_err_is_retriable(RG_EFULL));
    cr_assert(rg_err_is_retriable(RG_EIO));
    cr_assert_not(rg_err_is_retriable(RG_EINVAL));
    cr_assert_not(rg_err_is_retriable(RG_EDECODE));
}

Test(conf, table_names_are_identifiers)
{
    rg_conf_t *conf = rg_likes_conf_new();
    assert_rejected(conf, "sink.table.merged", "counts; DROP TABLE x");
    assert_rejected(conf, "sink.table.merged", "");
    assert_rejected(conf, "sink.table.staged", "1abc");
    assert_rejected(conf, "sink.table.offsets", "a`b");
    assert_rejected(conf, "sink", "postgres");
    char err[256];
    cr_assert_eq(rg_conf_set(conf, "sink.table.staged", "", err,
                             sizeof(err)), 0, "no staged table: %s", err);
    cr_assert_eq(rg_conf_set(conf, "sink.table.merged_bytes", "word_counts",
                             err, sizeof(err)), 0, "%s", err);
    rg_conf_destroy(conf);
}

Test(conf, kafka_properties_pass_through_in_order)
{
    rg_conf_t *c = rg_conf_new();
    cr_assert_eq(rg_conf_add_table(c, rg_kafka_conf_table(), NULL, 0), 0);
    char err[256];
    cr_assert_eq(rg_conf_set(c, "kafka.bootstrap.servers", "h:1", err,
                             sizeof(err)), 0, "%s", err);
    cr_assert_eq(rg_conf_set(c, "kafka.fetch.max.bytes", "1024", err,
                             sizeof(err)), 0);
    cr_assert_eq(rg_conf_set(c, "kafka.bootstrap.servers", "h:2", err,
                             sizeof(err)), 0, "a second set replaces");
    cr_assert_eq(rg_conf_set(c, "kafka.", "x", err, sizeof(err)), RG_ENOENT,
                 "a bare prefix is no property");
    cr_assert_eq(rg_conf_set(c, "kafkax.y", "x", err, sizeof(err)),
                 RG_ENOENT);
    cr_assert_str_eq(rg_conf_get_str(c, "kafka.bootstrap.servers"), "h:2");
    rg_conf_t *d = rg_conf_dup(c);
    rg_conf_destroy(c);
    size_t cur = 0, n = 0;
    const char *name, *value;
    const char *want[2][2] = {{"bootstrap.servers", "h:2"},
                              {"fetch.max.bytes", "1024"}};
    while (rg_conf_next_passthrough(d, "kafka.", &cur, &name, &value)) {
        cr_assert_lt(n, 2u);
        cr_assert_str_eq(name, want[n][0]);
        cr_assert_str_eq(value, want[n][1]);
        n++;
    }
    cr_assert_eq(n, 2u, "the copy keeps both");
    char buf[16];
    size_t sz = sizeof(buf);
    cr_assert_eq(rg_conf_get(d, "kafka.fetch.max.bytes", buf, &sz), 0);
    cr_assert_str_eq(buf, "1024");
    rg_conf_destroy(d);
}
