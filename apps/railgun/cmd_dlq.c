/*
 * cmd_dlq.c - `railgun dlq list` and `railgun dlq show P:OFFSET`: the dead
 * letters (and, asked for, the delayed retries) that the engine stored in
 * the sink's failures table (sink.table.failures, railgun/sinks.h),
 * through the sink's own scan_failures(). The sink is opened as `railgun
 * run` opens it (--config, -X, sink=sqlite|mysql and their properties;
 * --db FILE as `railgun demo` takes it), but read-only: no schema is
 * made, nothing is claimed, nothing written.
 *
 * Exit status: 0 done (also when nothing matched), 1 the database failed
 * or `show` found no such row, 2 bad input.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "commands.h"
#include "likes_job.h"
#include "railgun/sinks.h"
#include "run_flow.h"
#include "serve.h"

#define MAX_PARTS 1024

struct dlq {
    const char *verb;
    /* list's filters */
    int state;                 /* --state: RG_FAILURE_DEAD (default),
                                  _DELAYED, or 0 (all) */
    const char *reason;        /* --reason: a substring of reasons */
    int32_t parts[MAX_PARTS];  /* --partition (0 of them: all) */
    size_t nparts;
    int64_t since;             /* --since: last attempt at or after */
    bool has_since;
    /* show's row */
    int32_t at_part;
    int64_t at_off;
    const char *at;            /* "P:OFFSET" as given */
    const char *db;            /* --db FILE: sqlite.path */
};

static void usage(void)
{
    printf("usage: railgun dlq list [--reason S] [--partition P[,P...]] "
           "[--since MS]\n"
           "                        [--state dead|delayed|all] [--json]\n"
           "       railgun dlq show PARTITION:OFFSET [--json]\n"
           "       (both: [--config FILE] [-X name=value] [--db FILE])\n\n"
           "The failed events the likes job stored in the sink's failures "
           "table\n(sink.table.failures): dead letters, which gave up "
           "after retry.max.attempts\nor were undecodable, and delayed "
           "events waiting for a retry. The sink is\nthe one `railgun run` "
           "writes (sink=sqlite with sqlite.path or --db FILE,\nsink=mysql "
           "with mysql.*), opened read-only.\n\n"
           "  list            one line per dead letter, in (partition, "
           "offset) order:\n"
           "                  where it came from, attempts, first and last "
           "attempt\n"
           "                  (UTC), its reasons and its payload's size and "
           "start\n"
           "    --reason S    only rows whose reasons contain S\n"
           "    --partition P only these source partitions (a comma "
           "list; repeatable)\n"
           "    --since MS    only rows whose last attempt was at or after "
           "MS\n"
           "                  (epoch milliseconds)\n"
           "    --state X     dead (the default), delayed, or all\n"
           "  show P:OFFSET   every field of one row, and its payload: as "
           "text when it\n"
           "                  is printable, else in hex\n\n"
           "Exit 1 when the database fails or show finds no such row, 2 on "
           "bad input.\n");
}

/* ---- parsing ------------------------------------------------------------- */

/* "P:OFFSET" into the show's coordinates; 0 or 2 after the error. */
static int parse_at(rg_cli_t *cli, struct dlq *d, const char *s)
{
    const char *colon = strchr(s, ':');
    char part[24];
    uint64_t p, off;
    if (colon == NULL || colon == s || (size_t)(colon - s) >= sizeof(part))
        return rg_cli_fail(cli, "show: \"%s\" is not PARTITION:OFFSET", s);
    memcpy(part, s, (size_t)(colon - s));
    part[colon - s] = '\0';
    if (rg_cli_u64(cli, "show: partition", part, 0, INT32_MAX, &p) != 0 ||
        rg_cli_u64(cli, "show: offset", colon + 1, 0, INT64_MAX, &off) != 0)
        return 2;
    d->at_part = (int32_t)p;
    d->at_off = (int64_t)off;
    d->at = s;
    return 0;
}

/* "1,3,7" appended to the partition filter; 0 or 2 after the error. */
static int parse_parts(rg_cli_t *cli, struct dlq *d, const char *v)
{
    char buf[4096];
    if (strlen(v) >= sizeof(buf) || v[0] == '\0')
        return rg_cli_fail(cli, "--partition: \"%s\" is not a list of "
                           "partitions", v);
    snprintf(buf, sizeof(buf), "%s", v);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t != NULL;
         t = strtok_r(NULL, ",", &save)) {
        uint64_t p;
        if (rg_cli_u64(cli, "--partition", t, 0, INT32_MAX, &p) != 0)
            return 2;
        if (d->nparts == MAX_PARTS)
            return rg_cli_fail(cli, "--partition: more than %d partitions",
                               MAX_PARTS);
        d->parts[d->nparts++] = (int32_t)p;
    }
    return 0;
}

static int parse_args(rg_cli_t *cli, struct dlq *d, int argc, char **argv)
{
    bool list_opt = false;
    for (int i = 0; i < argc; i++) {
        const char *v;
        int c = rg_cli_common(cli, argc, argv, &i);
        if (c < 0)
            return 2;
        if (c > 0)
            continue;
        if (rg_cli_is(argv[i], "--db")) {
            if (!(d->db = rg_cli_value(cli, argc, argv, &i, "--db")))
                return 2;
        } else if (rg_cli_is(argv[i], "--reason")) {
            if (!(d->reason = rg_cli_value(cli, argc, argv, &i, "--reason")))
                return 2;
            list_opt = true;
        } else if (rg_cli_is(argv[i], "--partition")) {
            if (!(v = rg_cli_value(cli, argc, argv, &i, "--partition")) ||
                parse_parts(cli, d, v) != 0)
                return 2;
            list_opt = true;
        } else if (rg_cli_is(argv[i], "--since")) {
            uint64_t ms;
            if (!(v = rg_cli_value(cli, argc, argv, &i, "--since")) ||
                rg_cli_u64(cli, "--since", v, 0, INT64_MAX, &ms) != 0)
                return 2;
            d->since = (int64_t)ms;
            d->has_since = list_opt = true;
        } else if (rg_cli_is(argv[i], "--state")) {
            if (!(v = rg_cli_value(cli, argc, argv, &i, "--state")))
                return 2;
            if (strcmp(v, "dead") == 0)
                d->state = RG_FAILURE_DEAD;
            else if (strcmp(v, "delayed") == 0)
                d->state = RG_FAILURE_DELAYED;
            else if (strcmp(v, "all") == 0)
                d->state = 0;
            else
                return rg_cli_fail(cli, "--state: \"%s\" is not dead, "
                                   "delayed or all", v);
            list_opt = true;
        } else if (argv[i][0] != '-' && d->verb == NULL) {
            d->verb = argv[i];
        } else if (argv[i][0] != '-' && d->verb != NULL &&
                   strcmp(d->verb, "show") == 0 && d->at == NULL) {
            if (parse_at(cli, d, argv[i]) != 0)
                return 2;
        } else {
            return rg_cli_fail(cli, "unknown option \"%s\"", argv[i]);
        }
    }
    if (cli->help)
        return 0;
    if (d->verb == NULL)
        return rg_cli_fail(cli, "list or show? (railgun dlq --help)");
    if (strcmp(d->verb, "list") != 0 && strcmp(d->verb, "show") != 0)
        return rg_cli_fail(cli, "unknown subcommand \"%s\" (list, show)",
                           d->verb);
    if (strcmp(d->verb, "show") == 0) {
        if (d->at == NULL)
            return rg_cli_fail(cli, "show: which row? (PARTITION:OFFSET, "
                               "as list prints it)");
        if (list_opt)
            return rg_cli_fail(cli, "show: --reason, --partition, --since "
                               "and --state are list's filters");
    }
    if (rg_cli_finish(cli) != 0)
        return 2;
    if (d->db != NULL) {
        char err[512];
        if (rg_conf_set(cli->conf, "sqlite.path", d->db, err,
                        sizeof(err)) != 0)
            return rg_cli_fail(cli, "--db: %s", err);
    }
    return 0;
}

/* ---- formatting ---------------------------------------------------------- */

/* The length of the valid UTF-8 sequence at p (up to n bytes), 0 if
 * none starts there. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t len = p[0] < 0x80 ? 1 : (p[0] & 0xe0) == 0xc0 ? 2
               : (p[0] & 0xf0) == 0xe0 ? 3 : (p[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (len == 0 || len > n || (len == 2 && p[0] < 0xc2))
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if (len == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) ||
                     (p[0] == 0xed && p[1] >= 0xa0)))
        return 0; /* overlong, or a surrogate */
    if (len == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || p[0] > 0xf4 ||
                     (p[0] == 0xf4 && p[1] >= 0x90)))
        return 0;
    return len;
}

/* Text a terminal shows as it is: valid UTF-8 without control
 * characters other than tab and newline. */
static bool printable(const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n;) {
        if (p[i] < 0x80 && ((p[i] < 0x20 && p[i] != '\t' && p[i] != '\n' &&
                             p[i] != '\r') || p[i] == 0x7f))
            return false;
        size_t l = utf8_len(p + i, n - i);
        if (l == 0)
            return false;
        i += l;
    }
    return true;
}

/* data as a JSON string (invalid UTF-8 as U+FFFD). */
static void json_bytes(FILE *f, const void *data, size_t n)
{
    const unsigned char *p = data;
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        if (p[i] == '"' || p[i] == '\\') {
            fprintf(f, "\\%c", p[i++]);
        } else if (p[i] < 0x20 || p[i] == 0x7f) {
            fprintf(f, "\\u%04x", p[i++]);
        } else {
            size_t l = utf8_len(p + i, n - i);
            if (l == 0) {
                fputs("\\ufffd", f);
                i++;
            } else {
                fwrite(p + i, 1, l, f);
                i += l;
            }
        }
    }
    fputc('"', f);
}

static void json_hex(FILE *f, const void *data, size_t n)
{
    const unsigned char *p = data;
    fputc('"', f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", p[i]);
    fputc('"', f);
}

/* Epoch ms as "2026-12-01 19:04:05.123" (UTC), "-" for 0. */
static const char *fmt_ms(int64_t ms, char *buf, size_t size)
{
    if (ms <= 0) {
        snprintf(buf, size, "-");
        return buf;
    }
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03d", (int)(ms % 1000));
    return buf;
}

/* The first bytes of data, printable ASCII as it is and the rest as '.',
 * "..." when cut. */
static const char *preview(const void *data, size_t n, char *buf,
                           size_t size)
{
    const unsigned char *p = data;
    size_t max = size - 4, k = 0;
    for (size_t i = 0; i < n && k < max; i++)
        buf[k++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '.';
    if (n > max)
        buf[k++] = '.', buf[k++] = '.', buf[k++] = '.';
    buf[k] = '\0';
    return buf;
}

static const char *state_name(int32_t state)
{
    return state == RG_FAILURE_DEAD ? "dead"
           : state == RG_FAILURE_DELAYED ? "delayed" : "unknown";
}

/* "message, truncated" (or "-") for the flags. */
static const char *flag_names(uint32_t flags, char *buf, size_t size)
{
    snprintf(buf, size, "%s%s%s",
             flags & RG_FAILURE_F_MESSAGE ? "message" : "event",
             flags & RG_FAILURE_F_TRUNCATED ? ", truncated" : "",
             flags & ~(uint32_t)(RG_FAILURE_F_MESSAGE |
                                 RG_FAILURE_F_TRUNCATED) ? ", other" : "");
    return buf;
}

/* ---- list ---------------------------------------------------------------- */

struct lister {
    const struct dlq *d;
    bool json;
    uint64_t shown, seen;
};

static bool matches(const struct dlq *d, const rg_failure_t *f)
{
    if (d->has_since && f->last_ms < d->since)
        return false;
    if (d->reason != NULL && strstr(f->reasons, d->reason) == NULL)
        return false;
    return true;
}

static void list_row(void *arg, const rg_failure_t *f)
{
    struct lister *l = arg;
    l->seen++;
    if (!matches(l->d, f))
        return;
    char t1[40], t2[40], pv[44], at[48];
    if (l->json) {
        printf("%s{\"partition\":%" PRId32 ",\"offset\":%" PRId64
               ",\"state\":\"%s\",\"attempts\":%" PRIu32 ",\"first_ms\":%"
               PRId64 ",\"last_ms\":%" PRId64 ",\"reasons\":",
               l->shown ? "," : "", f->partition, f->offset,
               state_name(f->state), f->attempts, f->first_ms, f->last_ms);
        json_bytes(stdout, f->reasons, strlen(f->reasons));
        printf(",\"message\":%s,\"truncated\":%s,\"payload_len\":%zu,"
               "\"preview\":",
               f->flags & RG_FAILURE_F_MESSAGE ? "true" : "false",
               f->flags & RG_FAILURE_F_TRUNCATED ? "true" : "false",
               f->payload_len);
        json_bytes(stdout, pv, strlen(preview(f->payload, f->payload_len,
                                              pv, sizeof(pv))));
        printf("}");
    } else {
        if (l->shown == 0)
            printf("%-22s %-7s %8s  %-23s  %-23s  %8s  %s\n", "PARTITION:OFFSET",
                   "STATE", "ATTEMPTS", "FIRST (UTC)", "LAST (UTC)", "BYTES",
                   "REASONS | PAYLOAD");
        snprintf(at, sizeof(at), "%" PRId32 ":%" PRId64, f->partition,
                 f->offset);
        char rs[64];
        preview(f->reasons, strlen(f->reasons), rs, sizeof(rs));
        printf("%-22s %-7s %8" PRIu32 "  %-23s  %-23s  %8zu  %s | %s\"%s\"\n",
               at, state_name(f->state), f->attempts,
               fmt_ms(f->first_ms, t1, sizeof(t1)),
               fmt_ms(f->last_ms, t2, sizeof(t2)), f->payload_len,
               rs[0] ? rs : "-",
               f->flags & RG_FAILURE_F_TRUNCATED ? "(cut) " : "",
               preview(f->payload, f->payload_len, pv, sizeof(pv)));
    }
    l->shown++;
}

static int do_list(rg_cli_t *cli, const struct dlq *d, rg_sink_t *s)
{
    char err[512];
    struct lister l = {.d = d, .json = cli->json};
    if (cli->json)
        printf("{\"rows\":[");
    int rc = s->scan_failures(s->self, d->state, d->parts, d->nparts,
                              list_row, &l, err, sizeof(err));
    if (cli->json)
        printf("],\"count\":%" PRIu64 "}\n", l.shown);
    else if (rc == 0)
        printf("%" PRIu64 " of %" PRIu64 " %s%s%s\n", l.shown, l.seen,
               d->state == RG_FAILURE_DELAYED ? "delayed event"
               : d->state == RG_FAILURE_DEAD ? "dead letter" : "failed event",
               l.seen == 1 ? "" : "s",
               d->nparts ? " of these partitions" : "");
    fflush(stdout);
    if (rc != 0)
        return rg_cli_report(cli, rc, "%s", err);
    return 0;
}

/* ---- show ---------------------------------------------------------------- */

struct shower {
    const struct dlq *d;
    bool json, found;
};

static void hexdump(const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i += 16) {
        printf("  %08zx ", i);
        for (size_t k = 0; k < 16; k++) {
            if (i + k < n)
                printf(" %02x", p[i + k]);
            else
                printf("   ");
            if (k == 7)
                putchar(' ');
        }
        printf("  |");
        for (size_t k = 0; k < 16 && i + k < n; k++)
            putchar(p[i + k] >= 0x20 && p[i + k] < 0x7f ? p[i + k] : '.');
        printf("|\n");
    }
}

/* A key or payload in JSON: "NAME_text" when printable, else
 * "NAME_hex"; null when absent. */
static void json_blob(const char *name, const void *p, size_t n, bool present)
{
    if (!present) {
        printf(",\"%s\":null", name);
        return;
    }
    bool text = printable(p, n);
    printf(",\"%s_%s\":", name, text ? "text" : "hex");
    if (text)
        json_bytes(stdout, p, n);
    else
        json_hex(stdout, p, n);
}

static void show_row(void *arg, const rg_failure_t *f)
{
    struct shower *sh = arg;
    if (f->offset != sh->d->at_off || sh->found)
        return;
    sh->found = true;
    char t[40], fl[64];
    if (sh->json) {
        printf("{\"partition\":%" PRId32 ",\"offset\":%" PRId64 ",\"state\":"
               "\"%s\",\"route_key\":%" PRIu64 ",\"attempts\":%" PRIu32
               ",\"flags\":%" PRIu32 ",\"message\":%s,\"truncated\":%s"
               ",\"first_ms\":%" PRId64 ",\"last_ms\":%" PRId64
               ",\"due_ms\":%" PRId64 ",\"event_len\":%" PRIu32
               ",\"reasons\":", f->partition, f->offset,
               state_name(f->state), f->key, f->attempts, f->flags,
               f->flags & RG_FAILURE_F_MESSAGE ? "true" : "false",
               f->flags & RG_FAILURE_F_TRUNCATED ? "true" : "false",
               f->first_ms, f->last_ms, f->due_ms, f->event_len);
        json_bytes(stdout, f->reasons, strlen(f->reasons));
        json_blob("msg_key", f->msg_key, f->msg_key_len, f->msg_key != NULL);
        printf(",\"payload_len\":%zu", f->payload_len);
        json_blob("payload", f->payload, f->payload_len, true);
        printf("}\n");
        return;
    }
    printf("%s %" PRId32 ":%" PRId64 "\n", f->state == RG_FAILURE_DEAD
           ? "dead letter" : "delayed event", f->partition, f->offset);
    printf("  state        %s\n", state_name(f->state));
    printf("  route key    %" PRIu64 "\n", f->key);
    printf("  kind         %s\n", flag_names(f->flags, fl, sizeof(fl)));
    printf("  attempts     %" PRIu32 "\n", f->attempts);
    printf("  first        %s UTC (%" PRId64 ")\n",
           fmt_ms(f->first_ms, t, sizeof(t)), f->first_ms);
    printf("  last         %s UTC (%" PRId64 ")\n",
           fmt_ms(f->last_ms, t, sizeof(t)), f->last_ms);
    if (f->state == RG_FAILURE_DELAYED)
        printf("  due          %s UTC (%" PRId64 ")\n",
               fmt_ms(f->due_ms, t, sizeof(t)), f->due_ms);
    printf("  reasons      %s\n", f->reasons[0] ? f->reasons : "-");
    if (f->msg_key == NULL) {
        printf("  message key  none\n");
    } else if (printable(f->msg_key, f->msg_key_len)) {
        printf("  message key  %.*s (%zu bytes)\n", (int)f->msg_key_len,
               (const char *)f->msg_key, f->msg_key_len);
    } else {
        printf("  message key  %zu bytes, hex:\n", f->msg_key_len);
        hexdump(f->msg_key, f->msg_key_len);
    }
    if (!(f->flags & RG_FAILURE_F_MESSAGE))
        printf("  event len    %" PRIu32 "\n", f->event_len);
    const char *what = f->flags & RG_FAILURE_F_MESSAGE ? "message value"
                                                       : "event payload";
    const char *cut = f->flags & RG_FAILURE_F_TRUNCATED
                      ? ", cut at retry.payload.max.bytes" : "";
    if (f->payload_len == 0) {
        printf("  payload      empty (%s%s)\n", what, cut);
    } else if (printable(f->payload, f->payload_len)) {
        printf("  payload      %zu bytes (%s%s), text:\n", f->payload_len,
               what, cut);
        fwrite(f->payload, 1, f->payload_len, stdout);
        if (((const char *)f->payload)[f->payload_len - 1] != '\n')
            putchar('\n');
    } else {
        printf("  payload      %zu bytes (%s%s), hex:\n", f->payload_len,
               what, cut);
        hexdump(f->payload, f->payload_len);
    }
}

static int do_show(rg_cli_t *cli, const struct dlq *d, rg_sink_t *s)
{
    char err[512];
    struct shower sh = {.d = d, .json = cli->json};
    int rc = s->scan_failures(s->self, 0, &d->at_part, 1, show_row, &sh, err,
                              sizeof(err));
    fflush(stdout);
    if (rc != 0)
        return rg_cli_report(cli, rc, "%s", err);
    if (!sh.found)
        return rg_cli_error(cli, "show: no failed event at partition %"
                            PRId32 " offset %" PRId64 " (railgun dlq list "
                            "--state all lists them)", d->at_part,
                            d->at_off);
    return 0;
}

/* ---- the command --------------------------------------------------------- */

/* Opens the sink read-only; 0 or the exit status after the error. */
static int open_sink(rg_cli_t *cli, rg_sink_t *s)
{
    char err[512];
    const char *kind = rg_conf_get_str(cli->conf, "sink");
    if (strcmp(kind, "null") == 0)
        return rg_cli_fail(cli, "sink=null keeps no failures: use sqlite "
                           "or mysql, as railgun run does");
    if (strcmp(kind, "sqlite") == 0) {
        /* the sink creates a missing file: here that would only hide a
         * mistyped path */
        const char *path = rg_conf_get_str(cli->conf, "sqlite.path");
        if (path[0] == '\0')
            return rg_cli_fail(cli, "sqlite.path: not set (which database? "
                               "--db FILE)");
        if (access(path, F_OK) != 0)
            return rg_cli_error(cli, "sqlite.path: %s: no such file", path);
    }
    int rc = rg_likes_open_sink(cli->conf, 0, s, err, sizeof(err));
    if (rc != 0)
        return rg_cli_report(cli, rc, "%s", err);
    if (s->scan_failures == NULL) {
        if (s->close)
            s->close(s->self);
        return rg_cli_fail(cli, "sink.table.failures is empty: this sink "
                           "keeps no failures");
    }
    return 0;
}

int rg_cmd_dlq(int argc, char **argv)
{
    rg_cli_t cli = {.cmd = "dlq", .conf = rg_likes_conf_new()};
    struct dlq d = {.state = RG_FAILURE_DEAD};
    rg_sink_t sink = {0};
    bool opened = false;
    int rc;
    char err[512];
    if (cli.conf == NULL)
        return rg_cli_error(&cli, "out of memory");
    /* run's rows (the read cache's, the global rate's), so that run's
     * --config file serves here as it is */
    if (rg_conf_add_table(cli.conf, rg_serve_conf_table(), err,
                          sizeof(err)) != 0 ||
        rg_run_flow_add_props(cli.conf, err, sizeof(err)) != 0) {
        rc = rg_cli_error(&cli, "%s", err);
        goto out;
    }
    if ((rc = parse_args(&cli, &d, argc, argv)) != 0 || cli.help) {
        if (rc == 0)
            usage();
        goto out;
    }
    if ((rc = open_sink(&cli, &sink)) != 0)
        goto out;
    opened = true;
    if (strcmp(d.verb, "list") == 0)
        rc = do_list(&cli, &d, &sink);
    else
        rc = do_show(&cli, &d, &sink);
out:
    if (opened && sink.close)
        sink.close(sink.self);
    rg_conf_destroy(cli.conf);
    return rc;
}
