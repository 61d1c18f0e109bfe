/*
 * test_conf.c - the property table: defaults valid, every bad value of
 * every property rejected with a message naming it, failed sets change
 * nothing, files and -X lines, engine-level combinations.
 */
#define _GNU_SOURCE
#include "support/test.h"
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "railgun/railgun.h"

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

Test(conf, every_default_is_valid_and_round_trips)
{
    rg_conf_t *conf = rg_conf_new();
    cr_assert_gt(rg_conf_prop_count(), 0);
    for (size_t i = 0; i < rg_conf_prop_count(); i++) {
        const rg_conf_prop_t *p = rg_conf_prop_at(i);
        char err[256] = "", val[1024];
        size_t sz = sizeof(val);
        cr_assert_eq(rg_conf_get(conf, p->name, val, &sz), 0);
        cr_assert_str_eq(val, p->def, "%s: default reads back as %s",
                         p->name, val);
        cr_assert_eq(rg_conf_set(conf, p->name, p->def, err, sizeof(err)),
                     0, "default of %s rejected: %s", p->name, err);
        cr_assert_not_null(p->doc);
        cr_assert_gt(strlen(p->doc), 20, "%s is undocumented", p->name);
    }
    cr_assert_null(rg_conf_prop_at(rg_conf_prop_count()));
    rg_conf_destroy(conf);
}

Test(conf, every_bad_value_in_the_table_is_rejected_naming_the_property)
{
    rg_conf_t *conf = rg_conf_new();
    for (size_t i = 0; i < rg_conf_prop_count(); i++) {
        const rg_conf_prop_t *p = rg_conf_prop_at(i);
        char v[64];
        switch (p->type) {
        case RG_CONF_INT:
            assert_rejected(conf, p->name, "");
            assert_rejected(conf, p->name, "abc");
            assert_rejected(conf, p->name, "12abc");
            assert_rejected(conf, p->name, " 5");
            assert_rejected(conf, p->name, "99999999999999999999999");
            snprintf(v, sizeof(v), "%" PRId64, p->min - 1);
            assert_rejected(conf, p->name, v);
            snprintf(v, sizeof(v), "%" PRId64, p->max + 1);
            assert_rejected(conf, p->name, v);
            break;
        case RG_CONF_BOOL:
            assert_rejected(conf, p->name, "yes please");
            assert_rejected(conf, p->name, "");
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

Test(conf, kafka_properties_pass_through_in_order)
{
    rg_conf_t *c = rg_conf_new();
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
