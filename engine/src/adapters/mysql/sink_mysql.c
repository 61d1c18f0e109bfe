/*
 * sink_mysql.c - the MariaDB/MySQL sink: one InnoDB transaction per epoch,
 * multi-row INSERT ... ON DUPLICATE KEY UPDATE through prepared statements
 * (railgun/sinks.h, railgun/sink.h).
 *
 * Rows go in chunks of 128, 16 or 1 rows, each size a statement prepared
 * once; a short tail is padded by repeating a row in a way that changes
 * nothing (a count row with delta 0, an action row twice). A lost
 * connection makes the current call fail with RG_EIO; the flusher rolls
 * back, backs off and retries, and begin() reconnects and re-prepares.
 * The connection uses CLIENT_FOUND_ROWS, so the fenced offset update
 * counts matched rows, not changed ones.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <mysql.h>
#include <mysqld_error.h>
#include <errmsg.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "railgun/error.h"
#include "railgun/flush.h"
#include "railgun/sinks.h"
#include "../common/claims.h"
#include "../common/failures.h"
#include "../common/props.h"

static const rg_conf_prop_t mysql_props[] = {
    {"mysql.host", RG_CONF_STR, "127.0.0.1", 0, 0,
     "MariaDB/MySQL server host (ignored when mysql.socket is set).", NULL},
    {"mysql.port", RG_CONF_INT, "3306", 1, 65535,
     "MariaDB/MySQL server TCP port.", NULL},
    {"mysql.socket", RG_CONF_STR, "", 0, 0,
     "Unix socket of the MariaDB/MySQL server; when set, used instead of "
     "host and port.", NULL},
    {"mysql.user", RG_CONF_STR, "root", 0, 0,
     "MariaDB/MySQL user name to log in with.", NULL},
    {"mysql.password", RG_CONF_STR, "", 0, 0,
     "MariaDB/MySQL password (empty: none).", NULL},
    {"mysql.database", RG_CONF_STR, "railgun", 0, 0,
     "MariaDB/MySQL database holding the sink's tables.", NULL},
    RG_SQL_SINK_PROPS,
};

static const rg_conf_table_t mysql_table = {
    .layer = "mysql",
    .scope = RG_CONF_SCOPE_SINK,
    .props = mysql_props,
    .count = sizeof(mysql_props) / sizeof(mysql_props[0]),
};

const rg_conf_table_t *rg_mysql_conf_table(void)
{
    return &mysql_table;
}

/* The tables this sink writes (names from sink.table.*; "" = none). */
enum {
    T_MERGED, T_BYTES, T_STAGED, T_OFFSETS, T_META, T_FAILURES, T_MARKS,
    T__COUNT
};

#define LOOKUP_CHUNK 64
#define MAX_COLS 5

static const unsigned chunk_sizes[] = {128, 16, 1};
#define NSIZES (sizeof(chunk_sizes) / sizeof(chunk_sizes[0]))

/* A multi-row statement with its parameter buffers bound once. */
struct multi {
    MYSQL_STMT *st;
    MYSQL_BIND *bind;
    long long *val;      /* [rows * cols] */
    unsigned rows, cols;
};

/* The failures upsert's parameters, in its column order; the delete's are
 * the first two. */
enum {
    FP_PART, FP_OFF, FP_STATE, FP_KEY, FP_MSG_KEY, FP_ATTEMPTS, FP_FLAGS,
    FP_FIRST, FP_LAST, FP_DUE, FP_REASONS, FP_PAYLOAD, FP_EVENT_LEN,
    FP_MTIME, FP__COUNT
};

struct conn_opts {
    char *host, *socket, *user, *password, *database;
    unsigned port;
};

typedef struct mysql_sink {
    struct conn_opts o;
    char *group, *topic;
    char *handover;          /* sink.handover.from, "" = none */
    rg_log_cb *log;          /* the conf's log callback */
    void *log_opaque;
    char *table[T__COUNT];
    unsigned long group_len, topic_len;
    MYSQL *db;               /* NULL while disconnected */
    struct multi counts[NSIZES], actions[NSIZES];
    MYSQL_STMT *up_bytes;    /* one row: (key_bytes, count, mtime) */
    MYSQL_BIND bytes_bind[3];
    unsigned long bytes_len;
    long long bytes_val, bytes_t;
    unsigned char bytes_key[RG_DELTA_KEY_MAX];
    MYSQL_STMT *up_offset;
    MYSQL_BIND off_bind[6];
    long long off_next, off_part, off_epoch;
    /* sink.table.failures set only: the upsert (delayed, dead) and the
     * delete (cleared), with their parameters (FP_*) */
    MYSQL_STMT *up_failure, *del_failure;
    MYSQL_BIND fail_bind[FP__COUNT];
    long long fail_val[FP__COUNT];      /* the integer parameters */
    unsigned long fail_len[FP__COUNT];  /* the blob parameters' */
    my_bool fail_null[FP__COUNT];
    /* sink.table.producers set only: the producer marks' upsert */
    MYSQL_STMT *up_mark;
    MYSQL_BIND mark_bind[5];
    long long mark_val[4];     /* partition, producer, hi, mtime */
    unsigned long mark_len;
    unsigned char mark_seen[RG_MARK_WINDOW / 8];
    struct rg_claims claims;
    bool versioned;          /* sink.version */
    int64_t version;         /* what the open epoch transaction set */
} mysql_sink;

struct rg_sink_reader_s {
    struct conn_opts *o;
    MYSQL *db;
    struct multi lookup;     /* LOOKUP_CHUNK rows x 2 */
    MYSQL_BIND res[3];
    long long out[3];
};

#define seterr rg__seterr

/* Errors a retry may cure: the client's own (2000-2999: connection lost,
 * cannot connect, ...) and the server's transient ones. */
static bool transient(unsigned e)
{
    return (e >= 2000 && e < 3000) || e == ER_LOCK_DEADLOCK ||
           e == ER_LOCK_WAIT_TIMEOUT || e == ER_SERVER_SHUTDOWN ||
           e == ER_CONNECTION_KILLED || e == ER_QUERY_INTERRUPTED ||
           e == ER_CON_COUNT_ERROR || e == ER_TOO_MANY_USER_CONNECTIONS ||
           e == 4031 /* ER_CLIENT_INTERACTION_TIMEOUT */;
}

/* True when the error leaves the connection unusable. */
static bool conn_broken(unsigned e)
{
    return (e >= 2000 && e < 3000) || e == ER_SERVER_SHUTDOWN ||
           e == ER_CONNECTION_KILLED || e == 4031;
}

static int fail_code(unsigned e)
{
    return transient(e) ? RG_EIO : RG_ESTATE;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static MYSQL *connect_db(const struct conn_opts *o, bool with_db,
                         char *errstr, size_t size, int *rc)
{
    MYSQL *db = mysql_init(NULL);
    if (db == NULL) {
        seterr(errstr, size, "mysql: out of memory");
        *rc = RG_ENOMEM;
        return NULL;
    }
    unsigned timeout = 5, rw_timeout = 30;
    mysql_options(db, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    mysql_options(db, MYSQL_OPT_READ_TIMEOUT, &rw_timeout);
    mysql_options(db, MYSQL_OPT_WRITE_TIMEOUT, &rw_timeout);
    const char *sock = o->socket[0] ? o->socket : NULL;
    if (!mysql_real_connect(db, sock ? "localhost" : o->host, o->user,
                            o->password[0] ? o->password : NULL,
                            with_db ? o->database : NULL, o->port, sock,
                            CLIENT_FOUND_ROWS)) {
        unsigned e = mysql_errno(db);
        seterr(errstr, size, "mysql: cannot connect to %s: %s (%u)",
               sock ? sock : o->host, mysql_error(db), e);
        *rc = fail_code(e);
        mysql_close(db);
        return NULL;
    }
    /* one epoch = one transaction, so no autocommit of half an epoch */
    return db;
}

static int stmt_fail(MYSQL_STMT *st, const char *what, char *errstr,
                     size_t size)
{
    unsigned e = mysql_stmt_errno(st);
    seterr(errstr, size, "mysql: %s: %s (%u)", what, mysql_stmt_error(st),
           e);
    return fail_code(e);
}

/* Prepares and runs a statement with up to 3 string and 1 int params. */
static int exec1(MYSQL *db, const char *sql, char *errstr, size_t size)
{
    MYSQL_STMT *st = mysql_stmt_init(db);
    if (st == NULL) {
        seterr(errstr, size, "mysql: out of memory");
        return RG_ENOMEM;
    }
    int rc = 0;
    if (mysql_stmt_prepare(st, sql, strlen(sql)) ||
        mysql_stmt_execute(st))
        rc = stmt_fail(st, "schema", errstr, size);
    mysql_stmt_close(st);
    return rc;
}

/* Creates the failures table's index on (state, forwarded_ms) unless it
 * is there (asked of information_schema: MySQL has no CREATE INDEX IF NOT
 * EXISTS). table is a checked identifier. */
static int ensure_unforwarded_index(MYSQL *db, const char *table,
                                    char *errstr, size_t size)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT 1 FROM information_schema.STATISTICS "
             "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '%s' AND "
             "INDEX_NAME = '%s_unforwarded' LIMIT 1", table, table);
    if (mysql_query(db, sql) != 0) {
        seterr(errstr, size, "mysql: schema: %s (%u)", mysql_error(db),
               mysql_errno(db));
        return RG_EIO;
    }
    MYSQL_RES *res = mysql_store_result(db);
    bool have = res != NULL && mysql_num_rows(res) > 0;
    if (res != NULL)
        mysql_free_result(res);
    if (have)
        return 0;
    snprintf(sql, sizeof(sql), "CREATE INDEX `%s_unforwarded` ON `%s` "
             "(state, forwarded_ms)", table, table);
    /* another node's --init-schema may have made it since: fine */
    if (mysql_query(db, sql) != 0 && mysql_errno(db) != ER_DUP_KEYNAME) {
        seterr(errstr, size, "mysql: schema: %s (%u)", mysql_error(db),
               mysql_errno(db));
        return RG_EIO;
    }
    return 0;
}

static void multi_free(struct multi *m)
{
    if (m->st)
        mysql_stmt_close(m->st);
    free(m->bind);
    free(m->val);
    memset(m, 0, sizeof(*m));
}

/* Prepares `head` + rows x "(?,...)" + `tail` with int64 params. */
static int multi_prep(MYSQL *db, struct multi *m, const char *head,
                      const char *tail, unsigned rows, unsigned cols,
                      const char *sep, char *errstr, size_t size)
{
    size_t cap = strlen(head) + strlen(tail) + (size_t)rows * (cols * 2 + 4)
                 + 16;
    char *sql = malloc(cap);
    m->rows = rows;
    m->cols = cols;
    m->bind = calloc((size_t)rows * cols, sizeof(MYSQL_BIND));
    m->val = calloc((size_t)rows * cols, sizeof(long long));
    if (!sql || !m->bind || !m->val) {
        free(sql);
        seterr(errstr, size, "mysql: out of memory");
        return RG_ENOMEM;
    }
    size_t len = (size_t)snprintf(sql, cap, "%s", head);
    for (unsigned r = 0; r < rows; r++) {
        len += (size_t)snprintf(sql + len, cap - len, "%s(", r ? sep : "");
        for (unsigned c = 0; c < cols; c++)
            len += (size_t)snprintf(sql + len, cap - len, "%s?",
                                    c ? "," : "");
        len += (size_t)snprintf(sql + len, cap - len, ")");
    }
    snprintf(sql + len, cap - len, "%s", tail);
    for (size_t i = 0; i < (size_t)rows * cols; i++) {
        m->bind[i].buffer_type = MYSQL_TYPE_LONGLONG;
        m->bind[i].buffer = &m->val[i];
    }
    int rc = 0;
    if ((m->st = mysql_stmt_init(db)) == NULL) {
        seterr(errstr, size, "mysql: out of memory");
        rc = RG_ENOMEM;
    } else if (mysql_stmt_prepare(m->st, sql, strlen(sql)) ||
               mysql_stmt_bind_param(m->st, m->bind)) {
        rc = stmt_fail(m->st, "prepare", errstr, size);
    }
    free(sql);
    return rc;
}

static void disconnect(mysql_sink *s)
{
    for (size_t i = 0; i < NSIZES; i++) {
        multi_free(&s->counts[i]);
        multi_free(&s->actions[i]);
    }
    if (s->up_offset)
        mysql_stmt_close(s->up_offset);
    s->up_offset = NULL;
    if (s->up_bytes)
        mysql_stmt_close(s->up_bytes);
    s->up_bytes = NULL;
    if (s->up_failure)
        mysql_stmt_close(s->up_failure);
    s->up_failure = NULL;
    if (s->del_failure)
        mysql_stmt_close(s->del_failure);
    s->del_failure = NULL;
    if (s->up_mark)
        mysql_stmt_close(s->up_mark);
    s->up_mark = NULL;
    if (s->db)
        mysql_close(s->db);
    s->db = NULL;
}

static int prepare_bytes(mysql_sink *s, char *errstr, size_t size)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "INSERT INTO `%s` (key_bytes, count, mtime, "
             "ctime) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE count = "
             "count + VALUES(count), mtime = VALUES(mtime)",
             s->table[T_BYTES]);
    memset(s->bytes_bind, 0, sizeof(s->bytes_bind));
    MYSQL_BIND *b = s->bytes_bind;
    b[0].buffer_type = MYSQL_TYPE_BLOB;
    b[0].buffer = s->bytes_key;
    b[0].buffer_length = sizeof(s->bytes_key);
    b[0].length = &s->bytes_len;
    b[1].buffer_type = MYSQL_TYPE_LONGLONG;
    b[1].buffer = &s->bytes_val;
    b[2].buffer_type = MYSQL_TYPE_LONGLONG;
    b[2].buffer = &s->bytes_t;
    b[3] = b[2];
    if ((s->up_bytes = mysql_stmt_init(s->db)) == NULL) {
        seterr(errstr, size, "mysql: out of memory");
        return RG_ENOMEM;
    }
    if (mysql_stmt_prepare(s->up_bytes, sql, strlen(sql)) ||
        mysql_stmt_bind_param(s->up_bytes, s->bytes_bind))
        return stmt_fail(s->up_bytes, "prepare", errstr, size);
    return 0;
}

/* The failures table's statements. Their parameters are the arrays in
 * the sink: integers in fail_val, blobs pointing at the caller's rows
 * (write_failures re-binds per row: client-side, no round trip). */
static int prepare_failures(mysql_sink *s, char *errstr, size_t size)
{
    char sql[1024];
    snprintf(sql, sizeof(sql), "INSERT INTO `%s` (partition_id, offset_id, "
             "state, route_key, msg_key, attempts, flags, first_ms, last_ms, "
             "due_ms, reasons, payload, event_len, mtime) VALUES (?, ?, ?, "
             "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON DUPLICATE KEY UPDATE "
             "state = VALUES(state), route_key = VALUES(route_key), msg_key "
             "= VALUES(msg_key), attempts = VALUES(attempts), flags = "
             "VALUES(flags), first_ms = VALUES(first_ms), last_ms = "
             "VALUES(last_ms), due_ms = VALUES(due_ms), reasons = "
             "VALUES(reasons), payload = VALUES(payload), event_len = "
             "VALUES(event_len), mtime = VALUES(mtime)", s->table[T_FAILURES]);
    memset(s->fail_bind, 0, sizeof(s->fail_bind));
    for (int i = 0; i < FP__COUNT; i++) {
        MYSQL_BIND *b = &s->fail_bind[i];
        if (i == FP_MSG_KEY || i == FP_REASONS || i == FP_PAYLOAD) {
            b->buffer_type = MYSQL_TYPE_BLOB;
            b->length = &s->fail_len[i];
            b->is_null = &s->fail_null[i];
        } else {
            b->buffer_type = MYSQL_TYPE_LONGLONG;
            b->buffer = &s->fail_val[i];
        }
    }
    if ((s->up_failure = mysql_stmt_init(s->db)) == NULL ||
        (s->del_failure = mysql_stmt_init(s->db)) == NULL) {
        seterr(errstr, size, "mysql: out of memory");
        return RG_ENOMEM;
    }
    if (mysql_stmt_prepare(s->up_failure, sql, strlen(sql)))
        return stmt_fail(s->up_failure, "prepare", errstr, size);
    /* (partition_id, offset_id): FP_PART and FP_OFF */
    snprintf(sql, sizeof(sql), "DELETE FROM `%s` WHERE partition_id = ? AND "
             "offset_id = ? AND state = 1", s->table[T_FAILURES]);
    if (mysql_stmt_prepare(s->del_failure, sql, strlen(sql)) ||
        mysql_stmt_bind_param(s->del_failure, s->fail_bind))
        return stmt_fail(s->del_failure, "prepare", errstr, size);
    return 0;
}

/* The producer marks' upsert; its parameters are mark_val / mark_seen. */
static int prepare_marks(mysql_sink *s, char *errstr, size_t size)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "INSERT INTO `%s` (partition_id, producer_id, "
             "hi, seen, mtime) VALUES (?, ?, ?, ?, ?) ON DUPLICATE KEY "
             "UPDATE hi = VALUES(hi), seen = VALUES(seen), mtime = "
             "VALUES(mtime)", s->table[T_MARKS]);
    memset(s->mark_bind, 0, sizeof(s->mark_bind));
    int vi[5] = {0, 1, 2, -1, 3};
    for (int i = 0; i < 5; i++) {
        MYSQL_BIND *b = &s->mark_bind[i];
        if (vi[i] < 0) {
            b->buffer_type = MYSQL_TYPE_BLOB;
            b->buffer = s->mark_seen;
            b->buffer_length = s->mark_len = sizeof(s->mark_seen);
            b->length = &s->mark_len;
        } else {
            b->buffer_type = MYSQL_TYPE_LONGLONG;
            b->buffer = &s->mark_val[vi[i]];
        }
    }
    if ((s->up_mark = mysql_stmt_init(s->db)) == NULL) {
        seterr(errstr, size, "mysql: out of memory");
        return RG_ENOMEM;
    }
    if (mysql_stmt_prepare(s->up_mark, sql, strlen(sql)) ||
        mysql_stmt_bind_param(s->up_mark, s->mark_bind))
        return stmt_fail(s->up_mark, "prepare", errstr, size);
    return 0;
}

static int prepare_all(mysql_sink *s, char *errstr, size_t size)
{
    int rc;
    char head[256], sql[512];
    for (size_t i = 0; i < NSIZES; i++) {
        snprintf(head, sizeof(head), "INSERT INTO `%s` (video_id, count, "
                 "mtime, ctime) VALUES ", s->table[T_MERGED]);
        if ((rc = multi_prep(s->db, &s->counts[i], head,
                             " ON DUPLICATE KEY UPDATE count = count + "
                             "VALUES(count), mtime = VALUES(mtime)",
                             chunk_sizes[i], 4, ",", errstr, size)) != 0)
            return rc;
        if (s->table[T_STAGED][0] == '\0')
            continue;
        snprintf(head, sizeof(head), "INSERT INTO `%s` (video_id, user_id, "
                 "state, mtime, ctime) VALUES ", s->table[T_STAGED]);
        if ((rc = multi_prep(s->db, &s->actions[i], head,
                             " ON DUPLICATE KEY UPDATE state = "
                             "VALUES(state), mtime = VALUES(mtime)",
                             chunk_sizes[i], 5, ",", errstr, size)) != 0)
            return rc;
    }
    if (s->table[T_BYTES][0] && (rc = prepare_bytes(s, errstr, size)) != 0)
        return rc;
    if (s->table[T_FAILURES][0] &&
        (rc = prepare_failures(s, errstr, size)) != 0)
        return rc;
    if (s->table[T_MARKS][0] && (rc = prepare_marks(s, errstr, size)) != 0)
        return rc;
    snprintf(sql, sizeof(sql), "UPDATE `%s` SET next_offset = ? WHERE "
             "consumer_group = ? AND topic = ? AND `partition` = ? "
             "AND owner_epoch = ? AND next_offset <> ?", s->table[T_OFFSETS]);
    memset(s->off_bind, 0, sizeof(s->off_bind));
    s->off_bind[0].buffer_type = MYSQL_TYPE_LONGLONG;
    s->off_bind[0].buffer = &s->off_next;
    s->off_bind[1].buffer_type = MYSQL_TYPE_STRING;
    s->off_bind[1].buffer = s->group;
    s->off_bind[1].buffer_length = s->group_len;
    s->off_bind[1].length = &s->group_len;
    s->off_bind[2].buffer_type = MYSQL_TYPE_STRING;
    s->off_bind[2].buffer = s->topic;
    s->off_bind[2].buffer_length = s->topic_len;
    s->off_bind[2].length = &s->topic_len;
    s->off_bind[3].buffer_type = MYSQL_TYPE_LONGLONG;
    s->off_bind[3].buffer = &s->off_part;
    s->off_bind[4].buffer_type = MYSQL_TYPE_LONGLONG;
    s->off_bind[4].buffer = &s->off_epoch;
    s->off_bind[5].buffer_type = MYSQL_TYPE_LONGLONG;
    s->off_bind[5].buffer = &s->off_next;
    if ((s->up_offset = mysql_stmt_init(s->db)) == NULL) {
        seterr(errstr, size, "mysql: out of memory");
        return RG_ENOMEM;
    }
    if (mysql_stmt_prepare(s->up_offset, sql, strlen(sql)) ||
        mysql_stmt_bind_param(s->up_offset, s->off_bind))
        return stmt_fail(s->up_offset, "prepare", errstr, size);
    return 0;
}

static int ensure_conn(mysql_sink *s, char *errstr, size_t size)
{
    if (s->db != NULL)
        return 0;
    int rc = 0;
    if ((s->db = connect_db(&s->o, true, errstr, size, &rc)) == NULL)
        return rc;
    if ((rc = prepare_all(s, errstr, size)) != 0)
        disconnect(s);
    return rc;
}

/* After a failed call: a broken connection is dropped (begin reconnects). */
static int sink_fail(mysql_sink *s, unsigned e, const char *what,
                     const char *msg, char *errstr, size_t size)
{
    seterr(errstr, size, "mysql: %s: %s (%u)", what, msg, e);
    if (conn_broken(e))
        disconnect(s);
    return fail_code(e);
}

/* A transaction (the epoch's, or a claim's). */
static int begin_tx(mysql_sink *s, char *errstr, size_t size)
{
    int rc = ensure_conn(s, errstr, size);
    if (rc != 0)
        return rc;
    if (mysql_autocommit(s->db, 0) || mysql_query(s->db, "BEGIN"))
        return sink_fail(s, mysql_errno(s->db), "begin", mysql_error(s->db),
                         errstr, size);
    return 0;
}

/* sink.version: bumps the version row first thing in the epoch's
 * transaction (its row lock orders every process's epochs) and reads it
 * back. MariaDB assigns left to right, so v takes the new n. */
static int bump_version(mysql_sink *s, char *errstr, size_t size)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "INSERT INTO `%s` (k, v, n, mtime) VALUES "
             "('version', '1', 1, %lld) ON DUPLICATE KEY UPDATE n = n + 1, "
             "v = n, mtime = VALUES(mtime)", s->table[T_META],
             (long long)now_ms());
    if (mysql_query(s->db, sql))
        return sink_fail(s, mysql_errno(s->db), "bump the version",
                         mysql_error(s->db), errstr, size);
    snprintf(sql, sizeof(sql), "SELECT n FROM `%s` WHERE k = 'version'",
             s->table[T_META]);
    MYSQL_RES *res = NULL;
    if (mysql_query(s->db, sql) || (res = mysql_store_result(s->db)) == NULL)
        return sink_fail(s, mysql_errno(s->db), "read the version",
                         mysql_error(s->db), errstr, size);
    MYSQL_ROW row = mysql_fetch_row(res);
    s->version = row != NULL && row[0] != NULL ? strtoll(row[0], NULL, 10)
                                               : 0;
    mysql_free_result(res);
    return 0;
}

static int my_begin(void *self, uint64_t epoch, char *errstr, size_t size)
{
    (void)epoch;
    mysql_sink *s = self;
    int rc = begin_tx(s, errstr, size);
    if (rc == 0 && s->versioned)
        rc = bump_version(s, errstr, size);
    return rc;
}

static int64_t my_version(void *self)
{
    return ((mysql_sink *)self)->version;
}

/* Writes rows through the multi-row statements; fill() puts row r into
 * the values of one statement row. */
static int write_rows(mysql_sink *s, struct multi *set, const rg_row_t *rows,
                      size_t n, bool counts, const char *what, char *errstr,
                      size_t size)
{
    int64_t now = now_ms();
    size_t i = 0;
    while (i < n) {
        /* the largest statement the rest fills; padding is only ever
         * needed if sizes did not end with 1 */
        size_t k = 0;
        while (k + 1 < NSIZES && chunk_sizes[k] > n - i)
            k++;
        struct multi *m = &set[k];
        size_t take = n - i < m->rows ? n - i : m->rows;
        for (unsigned r = 0; r < m->rows; r++) {
            /* pad: counts repeat the first row with delta 0, actions
             * repeat the last row; both change nothing */
            const rg_row_t *src = &rows[i + (r < take ? r : (counts ? 0
                                                            : take - 1))];
            long long *v = &m->val[(size_t)r * m->cols];
            int64_t t = src->ts ? src->ts : now;
            if (counts) {
                v[0] = src->key;
                v[1] = r < take ? src->value : 0;
                v[2] = t;
                v[3] = t;
            } else {
                v[0] = src->key;
                v[1] = src->key2;
                v[2] = src->value;
                v[3] = t;
                v[4] = t;
            }
        }
        if (mysql_stmt_execute(m->st))
            return sink_fail(s, mysql_stmt_errno(m->st), what,
                             mysql_stmt_error(m->st), errstr, size);
        i += take;
    }
    return 0;
}

static int my_write_merged(void *self, const rg_row_t *rows, size_t n,
                           char *errstr, size_t size)
{
    mysql_sink *s = self;
    return write_rows(s, s->counts, rows, n, true, "write counts", errstr,
                      size);
}

static int my_write_bytes(void *self, const rg_bytes_row_t *rows, size_t n,
                          char *errstr, size_t size)
{
    mysql_sink *s = self;
    s->bytes_t = now_ms();
    for (size_t i = 0; i < n; i++) {
        if (rows[i].value == 0)
            continue;
        memcpy(s->bytes_key, rows[i].key, rows[i].len);
        s->bytes_len = rows[i].len;
        s->bytes_val = rows[i].value;
        if (mysql_stmt_execute(s->up_bytes))
            return sink_fail(s, mysql_stmt_errno(s->up_bytes),
                             "write merged bytes",
                             mysql_stmt_error(s->up_bytes), errstr, size);
    }
    return 0;
}

static int my_write_staged(void *self, const rg_row_t *rows, size_t n,
                           char *errstr, size_t size)
{
    mysql_sink *s = self;
    return write_rows(s, s->actions, rows, n, false, "write actions", errstr,
                      size);
}

static int claim_one(mysql_sink *s, const char *sql, int32_t p, bool fetch,
                     int64_t *next, int64_t *epoch, char *errstr,
                     size_t size);

static int my_write_offsets(void *self, const rg_offset_t *offs, size_t n,
                            char *errstr, size_t size)
{
    mysql_sink *s = self;
    for (size_t i = 0; i < n; i++) {
        const struct rg_claim *c = rg_claims_find(&s->claims,
                                                  offs[i].partition);
        if (c == NULL) {
            seterr(errstr, size, "mysql: partition %" PRId32 " was never "
                   "claimed by this process", offs[i].partition);
            return RG_ESTATE;
        }
        s->off_next = offs[i].next_offset;
        s->off_part = offs[i].partition;
        s->off_epoch = c->owner_epoch;
        if (mysql_stmt_execute(s->up_offset))
            return sink_fail(s, mysql_stmt_errno(s->up_offset),
                             "write offsets", mysql_stmt_error(s->up_offset),
                             errstr, size);
        if (mysql_stmt_affected_rows(s->up_offset) != 1) {
            /* stored already by a commit whose reply was lost, or fenced */
            int64_t next = -2, owner = -1;
            int rc = claim_one(s, "SELECT next_offset, owner_epoch FROM "
                               "`%s` WHERE consumer_group = ? AND topic = "
                               "? AND `partition` = ?", offs[i].partition,
                               true, &next, &owner, errstr, size);
            if (rc != 0)
                return rc;
            if (owner == c->owner_epoch && next == offs[i].next_offset &&
                next == c->claimed_next)
                continue; /* back where the claim found it: no change */
            if (owner == c->owner_epoch && next == offs[i].next_offset) {
                seterr(errstr, size, "mysql: partition %" PRId32 " already "
                       "stores next offset %" PRId64, offs[i].partition,
                       next);
                return RG_EEXIST;
            }
            seterr(errstr, size, "mysql: partition %" PRId32 " is owned by "
                   "a newer owner (owner_epoch moved past %" PRId64 "): "
                   "this process is fenced", offs[i].partition,
                   c->owner_epoch);
            return RG_ESTALE;
        }
    }
    return 0;
}

static int my_commit(void *self, char *errstr, size_t size)
{
    mysql_sink *s = self;
    if (mysql_commit(s->db))
        return sink_fail(s, mysql_errno(s->db), "commit", mysql_error(s->db),
                         errstr, size);
    return 0;
}

static void my_rollback(void *self)
{
    mysql_sink *s = self;
    if (s->db != NULL && mysql_rollback(s->db) &&
        conn_broken(mysql_errno(s->db)))
        disconnect(s);
}

/* Runs a prepared statement binding (group, topic, partition); for the
 * SELECT fetches (next_offset, owner_epoch). */
static int claim_one(mysql_sink *s, const char *fmt, int32_t p, bool fetch,
                     int64_t *next, int64_t *epoch, char *errstr,
                     size_t size)
{
    char sql[512];
    snprintf(sql, sizeof(sql), fmt, s->table[T_OFFSETS]);
    MYSQL_STMT *st = mysql_stmt_init(s->db);
    if (st == NULL) {
        seterr(errstr, size, "mysql: out of memory");
        return RG_ENOMEM;
    }
    long long part = p, out[2] = {0, 0};
    MYSQL_BIND b[3], r[2];
    memset(b, 0, sizeof(b));
    memset(r, 0, sizeof(r));
    b[0].buffer_type = MYSQL_TYPE_STRING;
    b[0].buffer = s->group;
    b[0].buffer_length = s->group_len;
    b[0].length = &s->group_len;
    b[1].buffer_type = MYSQL_TYPE_STRING;
    b[1].buffer = s->topic;
    b[1].buffer_length = s->topic_len;
    b[1].length = &s->topic_len;
    b[2].buffer_type = MYSQL_TYPE_LONGLONG;
    b[2].buffer = &part;
    for (int i = 0; i < 2; i++) {
        r[i].buffer_type = MYSQL_TYPE_LONGLONG;
        r[i].buffer = &out[i];
    }
    bool ok = !mysql_stmt_prepare(st, sql, strlen(sql)) &&
              !mysql_stmt_bind_param(st, b) && !mysql_stmt_execute(st);
    if (ok && fetch) {
        ok = !mysql_stmt_bind_result(st, r) && mysql_stmt_fetch(st) == 0;
        *next = out[0];
        *epoch = out[1];
    }
    if (ok) {
        mysql_stmt_close(st);
        return 0;
    }
    unsigned e = mysql_stmt_errno(st);
    char msg[256];
    snprintf(msg, sizeof(msg), "%s", e ? mysql_stmt_error(st)
                                        : "offsets row not found");
    mysql_stmt_close(st);
    return sink_fail(s, e, "claim", msg, errstr, size);
}

/* Runs fmt (every %s is table t's name) with string parameters; for a
 * SELECT, the first row's first two columns into out (NULL ok). 0 or the
 * mapped error. */
static int exec_strs(mysql_sink *s, const char *fmt, int t, int nargs,
                     const char *const *args, char out[2][256],
                     char *errstr, size_t size)
{
    char sql[512];
    const char *nm = s->table[t];
    snprintf(sql, sizeof(sql), fmt, nm, nm, nm, nm);
    MYSQL_STMT *st = mysql_stmt_init(s->db);
    if (st == NULL) {
        seterr(errstr, size, "mysql: out of memory");
        return RG_ENOMEM;
    }
    MYSQL_BIND b[4], r[2];
    unsigned long len[4], rlen[2] = {0, 0};
    memset(b, 0, sizeof(b));
    memset(r, 0, sizeof(r));
    for (int i = 0; i < nargs && i < 4; i++) {
        len[i] = strlen(args[i]);
        b[i].buffer_type = MYSQL_TYPE_STRING;
        b[i].buffer = (void *)args[i];
        b[i].buffer_length = len[i];
        b[i].length = &len[i];
    }
    if (out != NULL)
        for (int c = 0; c < 2; c++) {
            out[c][0] = '\0';
            r[c].buffer_type = MYSQL_TYPE_STRING;
            r[c].buffer = out[c];
            r[c].buffer_length = 255;
            r[c].length = &rlen[c];
        }
    bool ok = !mysql_stmt_prepare(st, sql, strlen(sql)) &&
              (nargs == 0 || !mysql_stmt_bind_param(st, b)) &&
              !mysql_stmt_execute(st);
    if (ok && out != NULL) {
        ok = !mysql_stmt_bind_result(st, r);
        int f = ok ? mysql_stmt_fetch(st) : 1;
        ok = ok && (f == 0 || f == MYSQL_NO_DATA || f == MYSQL_DATA_TRUNCATED);
        for (int c = 0; c < 2; c++)
            out[c][f == 0 && rlen[c] < 256 ? rlen[c] : 0] = '\0';
    }
    if (ok) {
        mysql_stmt_close(st);
        return 0;
    }
    unsigned e = mysql_stmt_errno(st);
    char msg[256];
    snprintf(msg, sizeof(msg), "%s", mysql_stmt_error(st));
    mysql_stmt_close(st);
    return sink_fail(s, e, "ownership", msg, errstr, size);
}

/* Ownership, inside the claim's transaction: see sink_sqlite.c's own(),
 * the same protocol (the owner rows are locked FOR UPDATE, so two jobs
 * claiming at once cannot both take a free database). */
static int own(mysql_sink *s, char *errstr, size_t size)
{
    char now[32], got[2][256], since[2][256];
    snprintf(now, sizeof(now), "%lld", (long long)now_ms());
    const char *a4[] = {s->group, now, s->topic, now};
    int rc;
    /* the owner rows are locked exclusively first: an INSERT IGNORE over
     * existing rows takes shared locks, and two claims upgrading them to
     * FOR UPDATE deadlock. Only a first claim ever inserts them (two first
     * claims at once may still deadlock: the caller retries) */
    const char *lock = "SELECT (SELECT v FROM `%s` WHERE k = 'owner.group' "
                       "FOR UPDATE), (SELECT v FROM `%s` WHERE k = "
                       "'owner.topic' FOR UPDATE)";
    if ((rc = exec_strs(s, lock, T_META, 0, NULL, got, errstr, size)) != 0)
        return rc;
    if (got[0][0] == '\0' || got[1][0] == '\0') {
        if ((rc = exec_strs(s, "INSERT IGNORE INTO `%s` VALUES "
                               "('owner.group', ?, 0, ?), ('owner.topic', ?, "
                               "0, ?)", T_META, 4, a4, NULL, errstr,
                            size)) != 0 ||
            (rc = exec_strs(s, lock, T_META, 0, NULL, got, errstr, size)) != 0)
            return rc;
    }
    if (strcmp(got[0], s->group) == 0 && strcmp(got[1], s->topic) == 0)
        return 0;
    exec_strs(s, "SELECT FROM_UNIXTIME(mtime DIV 1000), '' FROM `%s` WHERE "
                 "k = 'owner.group'", T_META, 0, NULL, since, errstr, size);
    if (s->handover[0] == '\0' || strcmp(got[0], s->handover) != 0 ||
        strcmp(got[1], s->topic) != 0) {
        seterr(errstr, size, "mysql: the tables in %s belong to consumer "
               "group %s, topic %s (since %s): a second job writing them "
               "would count every event twice. To move the job to group %s "
               "deliberately, stop %s's processes, then start this one with "
               "--handover-from %s (docs/OPERATIONS.md)", s->o.database,
               got[0], got[1], since[0], s->group, got[0], got[0]);
        return RG_ESTATE;
    }
    const char *a2[] = {s->group, s->handover, s->topic};
    if ((rc = exec_strs(s, "INSERT IGNORE INTO `%s` SELECT ?, topic, "
                           "`partition`, next_offset, 0 FROM `%s` WHERE "
                           "consumer_group = ? AND topic = ?", T_OFFSETS, 3,
                        a2, NULL, errstr, size)) != 0 ||
        (rc = exec_strs(s, "UPDATE `%s` SET owner_epoch = owner_epoch + 1 "
                           "WHERE consumer_group = ? AND topic = ?",
                        T_OFFSETS, 2, a2 + 1, NULL, errstr, size)) != 0)
        return rc;
    const char *a3[] = {s->group, now};
    if ((rc = exec_strs(s, "UPDATE `%s` SET v = ?, mtime = ? WHERE k = "
                           "'owner.group'", T_META, 2, a3, NULL, errstr,
                        size)) != 0)
        return rc;
    if (s->log != NULL) {
        char line[1400];
        snprintf(line, sizeof(line), "handover: the tables in %s move from "
                 "consumer group %s to %s, which continues at %s's stored "
                 "positions; %s is fenced", s->o.database, got[0], s->group,
                 got[0], got[0]);
        s->log(s->log_opaque, RG_LOG_WARN, "mysql", line);
    }
    return 0;
}

static int my_claim(void *self, const int32_t *parts, size_t n,
                    int64_t *next_out, char *errstr, size_t size)
{
    mysql_sink *s = self;
    int rc = begin_tx(s, errstr, size);
    if (rc != 0)
        return rc;
    if ((rc = own(s, errstr, size)) != 0) {
        my_rollback(s);
        return rc;
    }
    int64_t *epochs = malloc(sizeof(int64_t) * (n ? n : 1));
    if (epochs == NULL) {
        my_rollback(s);
        seterr(errstr, size, "mysql: out of memory");
        return RG_ENOMEM;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = claim_one(s, "INSERT IGNORE INTO `%s` VALUES (?, ?, ?, -1, 0)",
                       parts[i], false, NULL, NULL, errstr, size);
        if (rc == 0)
            rc = claim_one(s, "UPDATE `%s` SET owner_epoch = owner_epoch "
                           "+ 1 WHERE consumer_group = ? AND topic = ? AND "
                           "`partition` = ?", parts[i], false, NULL, NULL,
                           errstr, size);
        if (rc == 0)
            rc = claim_one(s, "SELECT next_offset, owner_epoch FROM `%s` "
                           "WHERE consumer_group = ? AND topic = ? AND "
                           "`partition` = ?", parts[i], true, &next_out[i],
                           &epochs[i], errstr, size);
    }
    if (rc == 0)
        rc = my_commit(s, errstr, size);
    if (rc != 0) {
        my_rollback(s);
        free(epochs);
        return rc;
    }
    /* only a committed claim counts */
    for (size_t i = 0; i < n && rc == 0; i++)
        if (rg_claims_put(&s->claims, parts[i], epochs[i], next_out[i]) !=
            0) {
            seterr(errstr, size, "mysql: out of memory");
            rc = RG_ENOMEM;
        }
    free(epochs);
    return rc;
}

static void my_reader_close(rg_sink_reader_t *r)
{
    if (r == NULL)
        return;
    multi_free(&r->lookup);
    if (r->db)
        mysql_close(r->db);
    free(r);
}

static rg_sink_reader_t *my_reader_open(void *self, char *errstr,
                                        size_t size)
{
    mysql_sink *s = self;
    rg_sink_reader_t *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        seterr(errstr, size, "mysql: out of memory");
        return NULL;
    }
    int rc = 0;
    r->o = &s->o;
    char head[256];
    snprintf(head, sizeof(head), "SELECT video_id, user_id, state FROM `%s` "
             "WHERE (video_id, user_id) IN (", s->table[T_STAGED]);
    if ((r->db = connect_db(&s->o, true, errstr, size, &rc)) == NULL ||
        multi_prep(r->db, &r->lookup, head, ")", LOOKUP_CHUNK, 2, ",",
                   errstr, size) != 0) {
        my_reader_close(r);
        return NULL;
    }
    for (int i = 0; i < 3; i++) {
        r->res[i].buffer_type = MYSQL_TYPE_LONGLONG;
        r->res[i].buffer = &r->out[i];
    }
    return r;
}

static int my_lookup(rg_sink_reader_t *r, rg_row_t *rows, size_t n,
                     char *errstr, size_t size)
{
    MYSQL_STMT *st = r->lookup.st;
    for (size_t base = 0; base < n; base += LOOKUP_CHUNK) {
        size_t m = n - base < LOOKUP_CHUNK ? n - base : LOOKUP_CHUNK;
        rg_row_t *chunk = rows + base;
        for (size_t i = 0; i < LOOKUP_CHUNK; i++) {
            const rg_row_t *q = &chunk[i < m ? i : m - 1];
            r->lookup.val[2 * i] = q->key;
            r->lookup.val[2 * i + 1] = q->key2;
        }
        for (size_t i = 0; i < m; i++)
            chunk[i].value = -1;
        if (mysql_stmt_execute(st) || mysql_stmt_bind_result(st, r->res))
            return stmt_fail(st, "lookup", errstr, size);
        int f;
        while ((f = mysql_stmt_fetch(st)) == 0)
            for (size_t i = 0; i < m; i++)
                if (chunk[i].key == r->out[0] && chunk[i].key2 == r->out[1])
                    chunk[i].value = r->out[2];
        mysql_stmt_free_result(st);
        if (f != MYSQL_NO_DATA)
            return stmt_fail(st, "lookup", errstr, size);
    }
    return 0;
}

static int my_scan(void *self, int table,
                   void (*cb)(void *arg, const rg_row_t *row), void *arg,
                   char *errstr, size_t size)
{
    mysql_sink *s = self;
    int rc = ensure_conn(s, errstr, size);
    if (rc != 0)
        return rc;
    char sql[256];
    if (table == RG_SINK_MERGED)
        snprintf(sql, sizeof(sql), "SELECT video_id, 0, count, mtime FROM "
                 "`%s`", s->table[T_MERGED]);
    else if (table == RG_SINK_STAGED && s->table[T_STAGED][0])
        snprintf(sql, sizeof(sql), "SELECT video_id, user_id, state, mtime "
                 "FROM `%s`", s->table[T_STAGED]);
    else {
        seterr(errstr, size, "mysql: no such table to scan (%d)", table);
        return RG_EINVAL;
    }
    MYSQL_STMT *st = mysql_stmt_init(s->db);
    if (st == NULL) {
        seterr(errstr, size, "mysql: out of memory");
        return RG_ENOMEM;
    }
    long long out[4];
    MYSQL_BIND r[4];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 4; i++) {
        r[i].buffer_type = MYSQL_TYPE_LONGLONG;
        r[i].buffer = &out[i];
    }
    int f = 0;
    if (mysql_stmt_prepare(st, sql, strlen(sql)) || mysql_stmt_execute(st) ||
        mysql_stmt_bind_result(st, r) || mysql_stmt_store_result(st)) {
        rc = stmt_fail(st, "scan", errstr, size);
    } else {
        while ((f = mysql_stmt_fetch(st)) == 0) {
            rg_row_t row = {out[0], out[1], out[2], out[3]};
            cb(arg, &row);
        }
        if (f != MYSQL_NO_DATA)
            rc = stmt_fail(st, "scan", errstr, size);
    }
    mysql_stmt_close(st);
    /* end the read snapshot */
    mysql_commit(s->db);
    return rc;
}

/* In order, one statement per row (failures are rare; order matters: the
 * same event may come delayed, then cleared): delayed and dead rows
 * upsert every column but replayed_ms (the CLI's), cleared rows delete
 * the delayed row of their event. Inside the epoch's transaction. */
static int my_write_failures(void *self, const rg_failure_t *rows, size_t n,
                             char *errstr, size_t size)
{
    mysql_sink *s = self;
    int rc = rg__failures_check("mysql", rows, n, errstr, size);
    if (rc != 0)
        return rc;
    long long now = now_ms();
    long long *v = s->fail_val;
    for (size_t i = 0; i < n; i++) {
        const rg_failure_t *f = &rows[i];
        v[FP_PART] = f->partition;
        v[FP_OFF] = f->offset;
        if (f->state == RG_FAILURE_CLEARED) {
            if (mysql_stmt_execute(s->del_failure))
                return sink_fail(s, mysql_stmt_errno(s->del_failure),
                                 "clear a delayed event",
                                 mysql_stmt_error(s->del_failure), errstr,
                                 size);
            continue;
        }
        v[FP_STATE] = f->state;
        v[FP_KEY] = (long long)(int64_t)f->key; /* two's complement: exact */
        v[FP_ATTEMPTS] = f->attempts;
        v[FP_FLAGS] = f->flags;
        v[FP_FIRST] = f->first_ms;
        v[FP_LAST] = f->last_ms;
        v[FP_DUE] = f->due_ms;
        v[FP_EVENT_LEN] = f->event_len;
        v[FP_MTIME] = now;
        MYSQL_BIND *b = s->fail_bind;
        unsigned long *len = s->fail_len;
        s->fail_null[FP_MSG_KEY] = f->msg_key == NULL;
        b[FP_MSG_KEY].buffer = (void *)(f->msg_key ? f->msg_key : "");
        b[FP_MSG_KEY].buffer_length = len[FP_MSG_KEY] = f->msg_key_len;
        b[FP_REASONS].buffer = (void *)(f->reasons ? f->reasons : "");
        b[FP_REASONS].buffer_length = len[FP_REASONS] =
            rg__failure_reasons_len(f->reasons);
        b[FP_PAYLOAD].buffer = (void *)(f->payload ? f->payload : "");
        b[FP_PAYLOAD].buffer_length = len[FP_PAYLOAD] = f->payload_len;
        if (mysql_stmt_bind_param(s->up_failure, b) ||
            mysql_stmt_execute(s->up_failure))
            return sink_fail(s, mysql_stmt_errno(s->up_failure),
                             f->state == RG_FAILURE_DEAD
                                 ? "write a dead letter"
                                 : "write a delayed event",
                             mysql_stmt_error(s->up_failure), errstr, size);
    }
    return 0;
}

/* The epoch's changed producer marks, in its transaction (ids and seqs
 * are 64-bit unsigned: stored as their signed bits). */
static int my_write_marks(void *self, const rg_mark_t *marks, size_t n,
                          char *errstr, size_t size)
{
    mysql_sink *s = self;
    long long now = now_ms();
    for (size_t i = 0; i < n; i++) {
        s->mark_val[0] = marks[i].partition;
        s->mark_val[1] = (long long)(int64_t)marks[i].producer_id;
        s->mark_val[2] = (long long)(int64_t)marks[i].hi;
        s->mark_val[3] = now;
        memcpy(s->mark_seen, marks[i].seen, sizeof(s->mark_seen));
        if (mysql_stmt_execute(s->up_mark))
            return sink_fail(s, mysql_stmt_errno(s->up_mark),
                             "write a producer mark",
                             mysql_stmt_error(s->up_mark), errstr, size);
    }
    return 0;
}

/* Oldest first: the newest are the last a full table keeps. */
static int my_scan_marks(void *self, const int32_t *parts, size_t nparts,
                         void (*cb)(void *arg, const rg_mark_t *mark),
                         void *arg, char *errstr, size_t size)
{
    mysql_sink *s = self;
    int rc = ensure_conn(s, errstr, size);
    for (size_t i = 0; i < nparts && rc == 0; i++) {
        char sql[256];
        snprintf(sql, sizeof(sql), "SELECT producer_id, hi, seen FROM `%s` "
                 "WHERE partition_id = %d ORDER BY mtime", s->table[T_MARKS],
                 (int)parts[i]);
        MYSQL_RES *res;
        if (mysql_query(s->db, sql) ||
            (res = mysql_store_result(s->db)) == NULL)
            return sink_fail(s, mysql_errno(s->db), "scan producer marks",
                             mysql_error(s->db), errstr, size);
        MYSQL_ROW row;
        while (rc == 0 && (row = mysql_fetch_row(res)) != NULL) {
            unsigned long *len = mysql_fetch_lengths(res);
            rg_mark_t m = {
                .partition = parts[i],
                .producer_id = (uint64_t)strtoll(row[0], NULL, 10),
                .hi = (uint64_t)strtoll(row[1], NULL, 10),
            };
            if (row[2] == NULL || len[2] != sizeof(m.seen)) {
                seterr(errstr, size, "mysql: %s: the mark of partition %d, "
                       "producer %016llx has a seen window of %lu bytes, "
                       "not %zu", s->table[T_MARKS], (int)parts[i],
                       (unsigned long long)m.producer_id,
                       row[2] ? len[2] : 0ul, sizeof(m.seen));
                rc = RG_ESTATE;
                break;
            }
            memcpy(m.seen, row[2], sizeof(m.seen));
            cb(arg, &m);
        }
        mysql_free_result(res);
    }
    return rc;
}

/* The blob columns of a failures scan (msg_key, reasons, payload): the
 * scan's grow-only buffers buf[k] and cap[k] are column
 * scan_blob_cols[k]'s. */
static const int scan_blob_cols[3] = {RG_FC_MSG_KEY, RG_FC_REASONS,
                                       RG_FC_PAYLOAD};

/* Runs the prepared scan to its end (its parameters bound), calling cb
 * per row. A blob longer than its buffer comes back truncated: the
 * buffer grows and the column is fetched again. */
static int scan_failures_run(MYSQL_STMT *st, MYSQL_BIND *r,
                             long long *out, unsigned long *len,
                             my_bool *null, void **buf, size_t *cap,
                             void (*cb)(void *arg, const rg_failure_t *row),
                             void *arg, char *errstr, size_t size)
{
    if (mysql_stmt_execute(st) || mysql_stmt_bind_result(st, r))
        return stmt_fail(st, "scan failures", errstr, size);
    int f, rc = 0;
    while ((f = mysql_stmt_fetch(st)) == 0 || f == MYSQL_DATA_TRUNCATED) {
        for (int k = 0; k < 3 && f == MYSQL_DATA_TRUNCATED; k++) {
            int c = scan_blob_cols[k];
            if (null[c] || len[c] <= cap[k])
                continue;
            void *p = realloc(buf[k], len[c]);
            if (p == NULL) {
                seterr(errstr, size, "mysql: out of memory reading a "
                       "failure row of %lu bytes", len[c]);
                rc = RG_ENOMEM;
                break;
            }
            buf[k] = p;
            cap[k] = len[c];
            r[c].buffer = p;
            r[c].buffer_length = len[c];
            if (mysql_stmt_fetch_column(st, &r[c], (unsigned)c, 0)) {
                rc = stmt_fail(st, "scan failures", errstr, size);
                break;
            }
        }
        if (rc != 0)
            break;
        /* the grown buffers for the next rows */
        if (f == MYSQL_DATA_TRUNCATED && mysql_stmt_bind_result(st, r)) {
            rc = stmt_fail(st, "scan failures", errstr, size);
            break;
        }
        rg_failure_t row = {
            .partition = (int32_t)out[RG_FC_PARTITION],
            .offset = out[RG_FC_OFFSET],
            .state = (int32_t)out[RG_FC_STATE],
            .key = (uint64_t)(int64_t)out[RG_FC_ROUTE_KEY],
            .msg_key = null[RG_FC_MSG_KEY] ? NULL : (buf[0] ? buf[0] : ""),
            .msg_key_len = null[RG_FC_MSG_KEY] ? 0 : len[RG_FC_MSG_KEY],
            .attempts = (uint32_t)out[RG_FC_ATTEMPTS],
            .flags = (uint32_t)out[RG_FC_FLAGS],
            .first_ms = out[RG_FC_FIRST_MS],
            .last_ms = out[RG_FC_LAST_MS],
            .due_ms = out[RG_FC_DUE_MS],
            .payload = buf[2] ? buf[2] : "",
            .payload_len = null[RG_FC_PAYLOAD] ? 0 : len[RG_FC_PAYLOAD],
            .event_len = (uint32_t)out[RG_FC_EVENT_LEN],
        };
        /* reasons as a C string: its buffer has room for the NUL */
        char reasons[RG_FAILURE_REASONS_MAX];
        size_t rl = null[RG_FC_REASONS] ? 0 : len[RG_FC_REASONS];
        if (rl > RG_FAILURE_REASONS_MAX - 1)
            rl = RG_FAILURE_REASONS_MAX - 1;
        if (rl > 0)
            memcpy(reasons, buf[1], rl);
        reasons[rl] = '\0';
        row.reasons = reasons;
        cb(arg, &row);
    }
    if (rc == 0 && f != MYSQL_NO_DATA)
        rc = stmt_fail(st, "scan failures", errstr, size);
    mysql_stmt_free_result(st);
    return rc;
}

/* Per partition asked for (sorted), or the whole table: both in
 * (partition_id, offset_id) order, the primary key's. */
static int my_scan_failures(void *self, int state, const int32_t *parts,
                            size_t nparts,
                            void (*cb)(void *arg, const rg_failure_t *row),
                            void *arg, char *errstr, size_t size)
{
    mysql_sink *s = self;
    int32_t *p;
    size_t np;
    int rc = rg__failures_filter("mysql", state, parts, nparts, &p, &np,
                                 errstr, size);
    if (rc != 0 || (rc = ensure_conn(s, errstr, size)) != 0) {
        free(p);
        return rc;
    }
    char sql[512];
    bool unfwd = state == RG_FAILURE_UNFORWARDED;
    snprintf(sql, sizeof(sql), "SELECT " RG_FAILURE_COLS " FROM `%s` WHERE "
             "%s%s ORDER BY partition_id, offset_id", s->table[T_FAILURES],
             unfwd ? "state = 2 AND forwarded_ms IS NULL"
                   : "(? = 0 OR state = ?)",
             np ? " AND partition_id = ?" : "");
    long long st_arg = state, part = 0, out[RG_FC__COUNT] = {0};
    unsigned long len[RG_FC__COUNT] = {0};
    my_bool null[RG_FC__COUNT] = {0};
    void *buf[3] = {NULL, NULL, NULL};
    size_t cap[3] = {0, 0, 0};
    MYSQL_BIND b[3], r[RG_FC__COUNT];
    memset(b, 0, sizeof(b));
    memset(r, 0, sizeof(r));
    b[0].buffer_type = b[1].buffer_type = b[2].buffer_type =
        MYSQL_TYPE_LONGLONG;
    b[0].buffer = b[1].buffer = &st_arg;
    b[2].buffer = &part;
    for (int c = 0; c < RG_FC__COUNT; c++) {
        r[c].buffer_type = MYSQL_TYPE_LONGLONG;
        r[c].buffer = &out[c];
        r[c].length = &len[c];
        r[c].is_null = &null[c];
    }
    for (int k = 0; k < 3; k++) {
        r[scan_blob_cols[k]].buffer_type = MYSQL_TYPE_BLOB;
        r[scan_blob_cols[k]].buffer = NULL;
        r[scan_blob_cols[k]].buffer_length = 0;
    }
    MYSQL_STMT *st = mysql_stmt_init(s->db);
    if (st == NULL) {
        seterr(errstr, size, "mysql: out of memory");
        free(p);
        return RG_ENOMEM;
    }
    /* the unforwarded scan has no state parameters: only the partition */
    if (mysql_stmt_prepare(st, sql, strlen(sql)) ||
        ((!unfwd || np) && mysql_stmt_bind_param(st, unfwd ? b + 2 : b))) {
        rc = stmt_fail(st, "scan failures", errstr, size);
    } else if (np == 0) {
        rc = scan_failures_run(st, r, out, len, null, buf, cap, cb, arg,
                               errstr, size);
    }
    for (size_t i = 0; i < np && rc == 0; i++) {
        part = p[i];
        rc = scan_failures_run(st, r, out, len, null, buf, cap, cb, arg,
                               errstr, size);
    }
    unsigned e = rc != 0 ? mysql_stmt_errno(st) : 0;
    mysql_stmt_close(st);
    if (conn_broken(e))
        disconnect(s); /* begin() or the next scan reconnects */
    else
        mysql_commit(s->db); /* end the read snapshot */
    for (int k = 0; k < 3; k++)
        free(buf[k]);
    free(p);
    return rc;
}

static void my_close(void *self)
{
    mysql_sink *s = self;
    if (s == NULL)
        return;
    disconnect(s);
    free(s->o.host);
    free(s->o.socket);
    free(s->o.user);
    free(s->o.password);
    free(s->o.database);
    free(s->group);
    free(s->topic);
    free(s->handover);
    for (int t = 0; t < T__COUNT; t++)
        free(s->table[t]);
    rg_claims_free(&s->claims);
    free(s);
}

/* Each kind of table: its CREATE (the name is %s), its columns (the key
 * columns first) and how many of them form its unique key. */
static const struct {
    const char *create;
    const char *cols[20];
    unsigned nkey;
} shapes[T__COUNT] = {
    [T_MERGED] = {"CREATE TABLE IF NOT EXISTS `%s` ("
                  " video_id BIGINT NOT NULL PRIMARY KEY,"
                  " count BIGINT NOT NULL,"
                  " mtime BIGINT NOT NULL,"
                  " ctime BIGINT NOT NULL) ENGINE=InnoDB",
                  {"video_id", "count", "mtime", "ctime", NULL}, 1},
    [T_BYTES] = {"CREATE TABLE IF NOT EXISTS `%s` ("
                 " key_bytes VARBINARY(256) NOT NULL PRIMARY KEY,"
                 " count BIGINT NOT NULL,"
                 " mtime BIGINT NOT NULL,"
                 " ctime BIGINT NOT NULL) ENGINE=InnoDB",
                 {"key_bytes", "count", "mtime", "ctime", NULL}, 1},
    [T_STAGED] = {"CREATE TABLE IF NOT EXISTS `%s` ("
                  " video_id BIGINT NOT NULL,"
                  " user_id BIGINT NOT NULL,"
                  " state TINYINT NOT NULL,"
                  " mtime BIGINT NOT NULL,"
                  " ctime BIGINT NOT NULL,"
                  " PRIMARY KEY (video_id, user_id)) ENGINE=InnoDB",
                  {"video_id", "user_id", "state", "mtime", "ctime", NULL},
                  2},
    [T_OFFSETS] = {"CREATE TABLE IF NOT EXISTS `%s` ("
                   " consumer_group VARCHAR(255) NOT NULL,"
                   " topic VARCHAR(255) NOT NULL,"
                   " `partition` INT NOT NULL,"
                   " next_offset BIGINT NOT NULL,"
                   " owner_epoch BIGINT NOT NULL,"
                   " PRIMARY KEY (consumer_group, topic, `partition`))"
                   " ENGINE=InnoDB",
                   {"consumer_group", "topic", "partition", "next_offset",
                    "owner_epoch", NULL}, 3},
    [T_META] = {"CREATE TABLE IF NOT EXISTS `%s` ("
                " k VARCHAR(64) NOT NULL PRIMARY KEY,"
                " v VARCHAR(255) NOT NULL,"
                " n BIGINT NOT NULL,"
                " mtime BIGINT NOT NULL) ENGINE=InnoDB",
                {"k", "v", "n", "mtime", NULL}, 1},
    /* attempts, flags and event_len are uint32 in rg_failure_t;
     * reasons are bytes (a processor's reason may quote a payload), so
     * binary: no character set can refuse them and stop the engine */
    [T_FAILURES] = {"CREATE TABLE IF NOT EXISTS `%s` ("
                    " partition_id INT NOT NULL,"
                    " offset_id BIGINT NOT NULL,"
                    " state TINYINT NOT NULL,"
                    " route_key BIGINT NOT NULL,"
                    " msg_key MEDIUMBLOB NULL,"
                    " attempts INT UNSIGNED NOT NULL,"
                    " flags INT UNSIGNED NOT NULL,"
                    " first_ms BIGINT NOT NULL,"
                    " last_ms BIGINT NOT NULL,"
                    " due_ms BIGINT NOT NULL,"
                    " reasons VARBINARY(511) NOT NULL,"
                    " payload MEDIUMBLOB NOT NULL,"
                    " event_len INT UNSIGNED NOT NULL,"
                    " replayed_ms BIGINT NULL,"
                    " forwarded_ms BIGINT NULL,"
                    " mtime BIGINT NOT NULL,"
                    " PRIMARY KEY (partition_id, offset_id)) ENGINE=InnoDB",
                    {RG_FAILURE_COL_NAMES, NULL}, 2},
    [T_MARKS] = {"CREATE TABLE IF NOT EXISTS `%s` ("
                 " partition_id INT NOT NULL,"
                 " producer_id BIGINT NOT NULL,"
                 " hi BIGINT NOT NULL,"
                 " seen VARBINARY(1024) NOT NULL,"
                 " mtime BIGINT NOT NULL,"
                 " PRIMARY KEY (partition_id, producer_id)) ENGINE=InnoDB",
                 {"partition_id", "producer_id", "hi", "seen", "mtime", NULL},
                 2},
};

/* Column names of `table`, and which of them are in a unique index. */
static int table_columns(MYSQL *db, const char *table, bool unique_only,
                         char names[][64], unsigned max, unsigned *n,
                         char *errstr, size_t size)
{
    const char *sql =
        unique_only
            ? "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE "
              "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND "
              "NON_UNIQUE = 0"
            : "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE "
              "TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?";
    MYSQL_STMT *st = mysql_stmt_init(db);
    if (st == NULL)
        return RG_ENOMEM;
    unsigned long tlen = strlen(table), olen = 0;
    char out[64];
    MYSQL_BIND b, r;
    memset(&b, 0, sizeof(b));
    memset(&r, 0, sizeof(r));
    b.buffer_type = MYSQL_TYPE_STRING;
    b.buffer = (void *)table;
    b.buffer_length = tlen;
    b.length = &tlen;
    r.buffer_type = MYSQL_TYPE_STRING;
    r.buffer = out;
    r.buffer_length = sizeof(out) - 1;
    r.length = &olen;
    int rc = 0, f;
    *n = 0;
    if (mysql_stmt_prepare(st, sql, strlen(sql)) ||
        mysql_stmt_bind_param(st, &b) || mysql_stmt_execute(st) ||
        mysql_stmt_bind_result(st, &r)) {
        rc = stmt_fail(st, "schema check", errstr, size);
    } else {
        while ((f = mysql_stmt_fetch(st)) == 0 ||
               f == MYSQL_DATA_TRUNCATED) {
            if (*n < max) {
                size_t l = olen < sizeof(out) - 1 ? olen : sizeof(out) - 1;
                memcpy(names[*n], out, l);
                names[*n][l] = '\0';
                (*n)++;
            }
        }
    }
    mysql_stmt_close(st);
    return rc;
}

static bool has_name(char names[][64], unsigned n, const char *name)
{
    for (unsigned i = 0; i < n; i++)
        if (strcasecmp(names[i], name) == 0)
            return true;
    return false;
}

static int check_schema(mysql_sink *s, char *errstr, size_t size)
{
    for (size_t t = 0; t < T__COUNT; t++) {
        if (s->table[t][0] == '\0')
            continue;
        char names[32][64];
        unsigned n;
        int rc = table_columns(s->db, s->table[t], false, names, 32, &n,
                               errstr, size);
        if (rc != 0)
            return rc;
        if (n == 0) {
            seterr(errstr, size, "mysql: table %s.%s is missing "
                   "(`railgun run --init-schema` creates it)",
                   s->o.database, s->table[t]);
            return RG_ESTATE;
        }
        for (unsigned c = 0; shapes[t].cols[c]; c++)
            if (!has_name(names, n, shapes[t].cols[c])) {
                seterr(errstr, size, "mysql: table %s.%s has the wrong "
                       "shape: no column %s", s->o.database,
                       s->table[t], shapes[t].cols[c]);
                return RG_ESTATE;
            }
        if ((rc = table_columns(s->db, s->table[t], true, names, 32, &n,
                                errstr, size)) != 0)
            return rc;
        for (unsigned c = 0; c < shapes[t].nkey; c++)
            if (!has_name(names, n, shapes[t].cols[c])) {
                seterr(errstr, size, "mysql: table %s.%s has the wrong "
                       "shape: %s is not in a unique key", s->o.database,
                       s->table[t], shapes[t].cols[c]);
                return RG_ESTATE;
            }
    }
    return 0;
}

static char *dup_prop(const rg_conf_t *conf, const char *name)
{
    const char *v = rg_conf_get_str(conf, name);
    return strdup(v ? v : "");
}

int rg_sink_mysql_open(const rg_conf_t *given, unsigned flags,
                       rg_sink_t *out, char *errstr, size_t size)
{
    /* our own rows, with their defaults where the caller set none */
    rg_conf_t *conf = rg_conf_dup(given);
    if (conf == NULL ||
        rg_conf_add_table(conf, &mysql_table, errstr, size) != 0) {
        if (conf == NULL)
            seterr(errstr, size, "mysql: out of memory");
        rg_conf_destroy(conf);
        return conf == NULL ? RG_ENOMEM : RG_EINVAL;
    }
    mysql_sink *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        seterr(errstr, size, "mysql: out of memory");
        rg_conf_destroy(conf);
        return RG_ENOMEM;
    }
    static const char *const names[T__COUNT] = {
        "sink.table.merged", "sink.table.merged_bytes", "sink.table.staged",
        "sink.table.offsets", "sink.table.meta", "sink.table.failures",
        "sink.table.producers"};
    bool tables_ok = true;
    for (int t = 0; t < T__COUNT; t++)
        tables_ok &= (s->table[t] = dup_prop(conf, names[t])) != NULL;
    s->o.host = dup_prop(conf, "mysql.host");
    s->o.socket = dup_prop(conf, "mysql.socket");
    s->o.user = dup_prop(conf, "mysql.user");
    s->o.password = dup_prop(conf, "mysql.password");
    s->o.database = dup_prop(conf, "mysql.database");
    s->o.port = (unsigned)rg_conf_get_int(conf, "mysql.port");
    s->group = dup_prop(conf, "group.id");
    s->topic = dup_prop(conf, "topic");
    s->handover = dup_prop(conf, "sink.handover.from");
    s->versioned = rg_conf_get_int(conf, "sink.version") != 0;
    s->log = rg_conf_log_cb(conf, &s->log_opaque);
    rg_conf_destroy(conf);
    int rc = 0;
    if (!tables_ok || !s->o.host || !s->o.socket || !s->o.user ||
        !s->o.password || !s->o.database || !s->group || !s->topic ||
        !s->handover) {
        seterr(errstr, size, "mysql: out of memory");
        rc = RG_ENOMEM;
        goto out;
    }
    s->group_len = strlen(s->group);
    s->topic_len = strlen(s->topic);
    if (flags & RG_SINK_CREATE_DATABASE) {
        MYSQL *db = connect_db(&s->o, false, errstr, size, &rc);
        if (db == NULL)
            goto out;
        /* the database name cannot be a parameter: quote it as an
         * identifier, refusing what would need escaping */
        if (strchr(s->o.database, '`') || strlen(s->o.database) > 64 ||
            s->o.database[0] == '\0') {
            seterr(errstr, size, "mysql.database: \"%s\" is not a usable "
                   "database name", s->o.database);
            mysql_close(db);
            rc = RG_EINVAL;
            goto out;
        }
        char sql[128];
        snprintf(sql, sizeof(sql), "CREATE DATABASE IF NOT EXISTS `%s`",
                 s->o.database);
        rc = exec1(db, sql, errstr, size);
        mysql_close(db);
        if (rc != 0)
            goto out;
    }
    if ((s->db = connect_db(&s->o, true, errstr, size, &rc)) == NULL) {
        if (strstr(errstr, "(1049)") != NULL) { /* ER_BAD_DB_ERROR */
            size_t l = strlen(errstr);
            snprintf(errstr + l, size > l ? size - l : 0, ": is "
                     "mysql.database right? (`railgun run "
                     "--create-database` creates it)");
            rc = RG_EINVAL;
        }
        goto out;
    }
    if (flags & RG_SINK_INIT_SCHEMA)
        for (int t = 0; t < T__COUNT; t++) {
            if (s->table[t][0] == '\0')
                continue;
            char sql[1024];
            snprintf(sql, sizeof(sql), shapes[t].create, s->table[t]);
            if ((rc = exec1(s->db, sql, errstr, size)) != 0)
                goto out;
            /* the dead letters still to forward (dlq.topic); InnoDB
             * appends the primary key to the index */
            if (t == T_FAILURES &&
                (rc = ensure_unforwarded_index(s->db, s->table[t], errstr,
                                               size)) != 0)
                goto out;
        }
    if ((rc = check_schema(s, errstr, size)) != 0 ||
        (rc = prepare_all(s, errstr, size)) != 0)
        goto out;
    bool staged = s->table[T_STAGED][0] != '\0';
    *out = (rg_sink_t){
        .begin = my_begin,
        .write_merged = my_write_merged,
        .write_merged_bytes = s->table[T_BYTES][0] ? my_write_bytes : NULL,
        .write_staged = staged ? my_write_staged : NULL,
        .write_offsets = my_write_offsets,
        .commit = my_commit,
        .rollback = my_rollback,
        .claim = my_claim,
        .reader_open = staged ? my_reader_open : NULL,
        .lookup = staged ? my_lookup : NULL,
        .reader_close = staged ? my_reader_close : NULL,
        .scan = my_scan,
        .write_failures = s->table[T_FAILURES][0] ? my_write_failures : NULL,
        .scan_failures = s->table[T_FAILURES][0] ? my_scan_failures : NULL,
        .write_marks = s->table[T_MARKS][0] ? my_write_marks : NULL,
        .scan_marks = s->table[T_MARKS][0] ? my_scan_marks : NULL,
        .close = my_close,
        .version = s->versioned ? my_version : NULL,
        .self = s,
    };
    return 0;
out:
    my_close(s);
    return rc;
}
