/*
 * test_db.h - fresh, empty databases for the tests that run against a
 * real sink (header-only; include after support/test.h and likes_job.h).
 *
 * The sink comes from the environment: RG_TEST_SINK=mysql with
 * RG_MYSQL_SOCKET (tests/support/with_mariadb.sh), otherwise SQLite in a
 * temporary file. Every database test_db_conf() names is dropped when the
 * process that made it exits (each Criterion test is a process of its
 * own; a forked child's exit drops nothing), so nothing is left behind.
 */
#ifndef RG_TEST_DB_H
#define RG_TEST_DB_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "likes_job.h"

/* what every test's sink open asks: fresh tables in a fresh database */
#define INIT_FLAGS (RG_SINK_INIT_SCHEMA | RG_SINK_CREATE_DATABASE)

static inline bool is_mysql(void)
{
    const char *s = getenv("RG_TEST_SINK");
    return s != NULL && strcmp(s, "mysql") == 0;
}

static rg_conf_t *test_db_made[16];
static int test_db_nmade;
static pid_t test_db_owner;

static void test_db_drop_made(void)
{
    if (getpid() != test_db_owner)
        return;
    char err[256];
    for (int i = 0; i < test_db_nmade; i++) {
        rg_likes_drop_db(test_db_made[i], err, sizeof(err));
        rg_conf_destroy(test_db_made[i]);
    }
    test_db_nmade = 0;
}

/* A likes configuration for a fresh, empty database named after
 * `prefix` and `tag` (and the process id): a MariaDB database
 * PREFIX_TAG_PID, or TMPDIR/rg-test-PREFIX-TAG-PID.db. */
static inline rg_conf_t *test_db_conf(const char *prefix, const char *tag)
{
    rg_conf_t *c = rg_likes_conf_new();
    cr_assert_not_null(c);
    char err[256], v[256];
    if (is_mysql()) {
        const char *sock = getenv("RG_MYSQL_SOCKET");
        cr_assert_not_null(sock, "RG_TEST_SINK=mysql needs RG_MYSQL_SOCKET "
                           "(run through tests/support/with_mariadb.sh)");
        rg_conf_set(c, "sink", "mysql", err, sizeof(err));
        rg_conf_set(c, "mysql.socket", sock, err, sizeof(err));
        snprintf(v, sizeof(v), "%s_%s_%d", prefix, tag, (int)getpid());
        rg_conf_set(c, "mysql.database", v, err, sizeof(err));
    } else {
        snprintf(v, sizeof(v), "%s/rg-test-%s-%s-%d.db",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", prefix, tag,
                 (int)getpid());
        unlink(v);
        rg_conf_set(c, "sink", "sqlite", err, sizeof(err));
        rg_conf_set(c, "sqlite.path", v, err, sizeof(err));
    }
    if (test_db_nmade == 0) {
        test_db_owner = getpid();
        atexit(test_db_drop_made);
    }
    int cap = (int)(sizeof(test_db_made) / sizeof(test_db_made[0]));
    cr_assert_lt(test_db_nmade, cap, "more than %d databases in one test",
                 cap);
    test_db_made[test_db_nmade++] = rg_conf_dup(c);
    return c;
}

#endif /* RG_TEST_DB_H */
