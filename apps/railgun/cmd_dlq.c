/*
 * cmd_dlq.c - `railgun dlq list`, `show P:OFFSET` and `replay`: the dead
 * letters (and, asked for, the delayed retries) that the engine stored in
 * the sink's failures table (sink.table.failures, railgun/sinks.h),
 * through the sink's own scan_failures(). The sink is opened as `railgun
 * run` opens it (--config, -X, sink=sqlite|mysql and their properties;
 * --db FILE as `railgun demo` takes it), but read-only: no schema is
 * made, nothing is claimed, nothing written through it. The one column
 * the sink API does not carry, replayed_ms, goes through dlq_store.h.
 *
 * replay produces the chosen dead letters' raw messages (rows with
 * RG_FAILURE_F_MESSAGE: the key and value unpack rejected) to --topic
 * with the producer SDK, waits for every delivery, then sets replayed_ms
 * of the delivered ones in one transaction: at least once (a crash
 * between the delivery and the mark replays the row again next time,
 * unless it was marked), and a row replayed once is skipped unless
 * --again. Rows that cannot be produced as they came are skipped, saying
 * why: an unpacked event's payload (not the raw message), a value cut at
 * retry.payload.max.bytes, a message without a key (the producer refuses
 * one: the key keeps a video's events in order).
 *
 * Exit status: 0 done (also when nothing matched), 1 the database or
 * Kafka failed (a delivery, the mark) or `show` found no such row, 2 bad
 * input.
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
#include "dlq_json.h"
#include "dlq_store.h"
#include "railgun/producer.h"
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
    /* replay's */
    const char *topic;         /* --topic */
    const char *bootstrap;     /* --bootstrap, else kafka.bootstrap.servers */
    bool again;                /* --again: rows replayed before too */
    bool dry_run;              /* --dry-run: say what, produce nothing */
    const rg_dlq_store_t *store; /* replayed_ms of the rows */
};

static void usage(void)
{
    printf("usage: railgun dlq list [--reason S] [--partition P[,P...]] "
           "[--since MS]\n"
           "                        [--state dead|delayed|all] [--json]\n"
           "       railgun dlq show PARTITION:OFFSET [--json]\n"
           "       railgun dlq replay [--reason S] [--partition P[,P...]] "
           "[--since MS]\n"
           "                          --topic T [--bootstrap B] [--again] "
           "[--dry-run] [--json]\n"
           "       (all: [--config FILE] [-X name=value] [--db FILE])\n\n"
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
           "                  is printable, else in hex\n"
           "  replay          produce the dead letters list's filters choose "
           "to topic T\n"
           "                  at B (kafka.bootstrap.servers), as they came "
           "(key and\n"
           "                  value), then mark them replayed; only raw "
           "messages\n"
           "                  (undecodable ones), whole and with a key, are "
           "replayed\n"
           "    --again       also rows that were replayed before\n"
           "    --dry-run     say what would be replayed, produce nothing\n\n"
           "Fix the producer (or the job) first: a replayed message that "
           "still fails\nlands in the dead letters again, at its new "
           "offset. Exit 1 when the\ndatabase or Kafka fails or show finds "
           "no such row, 2 on bad input.\n");
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
        } else if (rg_cli_is(argv[i], "--topic")) {
            if (!(d->topic = rg_cli_value(cli, argc, argv, &i, "--topic")))
                return 2;
        } else if (rg_cli_is(argv[i], "--bootstrap")) {
            if (!(d->bootstrap = rg_cli_value(cli, argc, argv, &i,
                                              "--bootstrap")))
                return 2;
        } else if (strcmp(argv[i], "--again") == 0) {
            d->again = true;
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            d->dry_run = true;
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
    bool replay = strcmp(d->verb, "replay") == 0;
    if (strcmp(d->verb, "list") != 0 && strcmp(d->verb, "show") != 0 &&
        !replay)
        return rg_cli_fail(cli, "unknown subcommand \"%s\" (list, show, "
                           "replay)", d->verb);
    if (!replay && (d->topic || d->bootstrap || d->again || d->dry_run))
        return rg_cli_fail(cli, "%s: --topic, --bootstrap, --again and "
                           "--dry-run are replay's", d->verb);
    if (replay && d->state != RG_FAILURE_DEAD)
        return rg_cli_fail(cli, "replay: only dead letters are replayed "
                           "(delayed events are the engine's own)");
    if (replay && d->topic == NULL)
        return rg_cli_fail(cli, "replay: --topic T missing (where do the "
                           "messages go? the topic the job consumes)");
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
    char err[512];
    if (d->db != NULL &&
        rg_conf_set(cli->conf, "sqlite.path", d->db, err, sizeof(err)) != 0)
        return rg_cli_fail(cli, "--db: %s", err);
    if (replay && !d->dry_run && d->bootstrap == NULL &&
        rg_conf_get_str(cli->conf, "kafka.bootstrap.servers") == NULL)
        return rg_cli_fail(cli, "replay: --bootstrap B missing (where is "
                           "the cluster? or -X kafka.bootstrap.servers)");
    return 0;
}

/* ---- formatting ---------------------------------------------------------- */

/* data for a terminal: printable UTF-8 as it is, any other byte as \xNN
 * (a reason may quote a payload: no control sequence reaches the
 * terminal). */
static void put_safe(const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n;) {
        size_t l = p[i] >= 0x20 && p[i] != 0x7f ? rg_dlq_utf8_len(p + i, n - i) : 0;
        if (l == 0) {
            printf("\\x%02x", p[i++]);
        } else {
            fwrite(p + i, 1, l, stdout);
            i += l;
        }
    }
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

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
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

/* A likes event row's payload as the JSON like it was (else as is). */
static void like_view(const rg_failure_t *f, const void **data, size_t *n,
                      char *buf)
{
    rg_like_t like;
    *data = f->payload;
    *n = f->payload_len;
    if (rg_likes_failure_like(f, &like) == 0) {
        *n = rg_like_encode_json(&like, buf);
        *data = buf;
    }
}

static void list_row(void *arg, const rg_failure_t *f)
{
    struct lister *l = arg;
    char lj[RG_LIKE_JSON_MAX];
    const void *pl;
    size_t pn;
    like_view(f, &pl, &pn, lj);
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
        rg_dlq_json_bytes(stdout, f->reasons, strlen(f->reasons));
        printf(",\"message\":%s,\"truncated\":%s,\"payload_len\":%zu,"
               "\"preview\":",
               f->flags & RG_FAILURE_F_MESSAGE ? "true" : "false",
               f->flags & RG_FAILURE_F_TRUNCATED ? "true" : "false",
               f->payload_len);
        rg_dlq_json_bytes(stdout, pv, strlen(preview(pl, pn, pv, sizeof(pv))));
        int64_t rep = rg_dlq_store_replayed(l->d->store, f->partition,
                                            f->offset);
        if (rep != 0)
            printf(",\"replayed_ms\":%" PRId64, rep);
        else
            printf(",\"replayed_ms\":null");
        int64_t fwd = rg_dlq_store_forwarded(l->d->store, f->partition,
                                             f->offset);
        if (fwd != 0)
            printf(",\"forwarded_ms\":%" PRId64 "}", fwd);
        else
            printf(",\"forwarded_ms\":null}");
    } else {
        if (l->shown == 0)
            printf("%-22s %-7s %8s  %-23s  %-23s  %8s  %s\n", "PARTITION:OFFSET",
                   "STATE", "ATTEMPTS", "FIRST (UTC)", "LAST (UTC)", "BYTES",
                   "REASONS | PAYLOAD");
        snprintf(at, sizeof(at), "%" PRId32 ":%" PRId64, f->partition,
                 f->offset);
        char rs[64];
        preview(f->reasons, strlen(f->reasons), rs, sizeof(rs));
        char t3[40], rep[64] = "";
        int64_t rms = rg_dlq_store_replayed(l->d->store, f->partition,
                                            f->offset);
        if (rms != 0)
            snprintf(rep, sizeof(rep), " (replayed %s)",
                     fmt_ms(rms, t3, sizeof(t3)));
        printf("%-22s %-7s %8" PRIu32 "  %-23s  %-23s  %8zu  %s | %s\"%s\"%s\n",
               at, state_name(f->state), f->attempts,
               fmt_ms(f->first_ms, t1, sizeof(t1)),
               fmt_ms(f->last_ms, t2, sizeof(t2)), f->payload_len,
               rs[0] ? rs : "-",
               f->flags & RG_FAILURE_F_TRUNCATED ? "(cut) " : "",
               preview(pl, pn, pv, sizeof(pv)), rep);
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

static void show_row(void *arg, const rg_failure_t *f)
{
    struct shower *sh = arg;
    if (f->offset != sh->d->at_off || sh->found)
        return;
    sh->found = true;
    char t[40], fl[64];
    int64_t rep = rg_dlq_store_replayed(sh->d->store, f->partition,
                                        f->offset);
    int64_t fwd = rg_dlq_store_forwarded(sh->d->store, f->partition,
                                         f->offset);
    if (sh->json) {
        printf("{\"state\":\"%s\",\"due_ms\":%" PRId64 ",",
               state_name(f->state), f->due_ms);
        rg_dlq_json_fields(stdout, f);
        if (rep != 0)
            printf(",\"replayed_ms\":%" PRId64, rep);
        else
            printf(",\"replayed_ms\":null");
        if (fwd != 0)
            printf(",\"forwarded_ms\":%" PRId64 "}\n", fwd);
        else
            printf(",\"forwarded_ms\":null}\n");
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
    if (rep != 0)
        printf("  replayed     %s UTC (%" PRId64 ")\n",
               fmt_ms(rep, t, sizeof(t)), rep);
    else if (f->state == RG_FAILURE_DEAD)
        printf("  replayed     never\n");
    if (fwd != 0)
        printf("  forwarded    %s UTC (%" PRId64 ", to dlq.topic)\n",
               fmt_ms(fwd, t, sizeof(t)), fwd);
    const char *rs = f->reasons[0] ? f->reasons : "-";
    printf("  reasons      ");
    put_safe(rs, strlen(rs));
    putchar('\n');
    if (f->msg_key == NULL) {
        printf("  message key  none\n");
    } else if (rg_dlq_printable(f->msg_key, f->msg_key_len)) {
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
    } else if (rg_dlq_printable(f->payload, f->payload_len)) {
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

/* ---- replay -------------------------------------------------------------- */

/* A dead letter chosen for replay, its message copied out of the scan. */
struct pick {
    int32_t partition;
    int64_t offset;
    void *key, *value;
    size_t key_len, value_len;
    bool pending;          /* sent, no delivery report yet */
    int err;               /* 0 delivered, else why not (why[]) */
    int32_t to_partition;  /* where it landed */
    int64_t to_offset;
    char why[200];
};

struct picker {
    const struct dlq *d;
    bool json;
    struct pick *picks;
    size_t n, cap;
    uint64_t seen, skipped;
    int err;               /* RG_ENOMEM while copying */
};

/* One row's outcome line (or JSON element); first: no comma before. */
static void replay_line(bool json, bool first, int32_t p, int64_t off,
                        const char *result, const char *why, int32_t to_p,
                        int64_t to_off)
{
    if (json) {
        printf("%s{\"partition\":%" PRId32 ",\"offset\":%" PRId64
               ",\"result\":\"%s\"", first ? "" : ",", p, off, result);
        if (why != NULL) {
            printf(",\"why\":");
            rg_dlq_json_bytes(stdout, why, strlen(why));
        }
        if (to_off >= 0)
            printf(",\"to_partition\":%" PRId32 ",\"to_offset\":%" PRId64,
                   to_p, to_off);
        printf("}");
    } else if (to_off >= 0) {
        printf("%-9s %" PRId32 ":%" PRId64 " -> partition %" PRId32
               " offset %" PRId64 "\n", result, p, off, to_p, to_off);
    } else {
        printf("%-9s %" PRId32 ":%" PRId64 "%s%s\n", result, p, off,
               why ? ": " : "", why ? why : "");
    }
}

/* Why row f cannot be replayed as it came, or NULL. */
static const char *unreplayable(const struct dlq *d, const rg_failure_t *f)
{
    rg_like_t like;
    if (!(f->flags & RG_FAILURE_F_MESSAGE) &&
        rg_likes_failure_like(f, &like) != 0)
        return "an unpacked event's payload that is not a like";
    if (!(f->flags & RG_FAILURE_F_MESSAGE)) {
        if (!d->again && rg_dlq_store_replayed(d->store, f->partition,
                                               f->offset) != 0)
            return "replayed before (--again replays it again)";
        return NULL; /* produced again as the JSON like it was */
    }
    if (f->flags & RG_FAILURE_F_TRUNCATED)
        return "the value was cut at retry.payload.max.bytes";
    if (f->msg_key == NULL || f->msg_key_len == 0)
        return "the message has no key (the producer needs one)";
    if (!d->again && rg_dlq_store_replayed(d->store, f->partition,
                                           f->offset) != 0)
        return "replayed before (--again replays it again)";
    return NULL;
}

static void *dup_bytes(const void *p, size_t n)
{
    void *q = malloc(n ? n : 1);
    if (q != NULL && n)
        memcpy(q, p, n);
    return q;
}

static void pick_row(void *arg, const rg_failure_t *f)
{
    struct picker *k = arg;
    k->seen++;
    if (k->err != 0 || !matches(k->d, f))
        return;
    const char *why = unreplayable(k->d, f);
    if (why != NULL) {
        replay_line(k->json, k->n + k->skipped == 0, f->partition, f->offset,
                    "skipped", why, 0, -1);
        k->skipped++;
        return;
    }
    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 64;
        struct pick *p = realloc(k->picks, cap * sizeof(*p));
        if (p == NULL) {
            k->err = RG_ENOMEM;
            return;
        }
        k->picks = p;
        k->cap = cap;
    }
    struct pick *p = &k->picks[k->n];
    char kb[32], vb[RG_LIKE_JSON_MAX];
    const void *key = f->msg_key, *val = f->payload;
    size_t kl = f->msg_key_len, vl = f->payload_len;
    rg_like_t like;
    if (!(f->flags & RG_FAILURE_F_MESSAGE) &&
        rg_likes_failure_like(f, &like) == 0) {
        /* an event the likes job gave up on: the like as a message */
        kl = rg_like_encode_key(like.video_id, kb);
        vl = rg_like_encode_json(&like, vb);
        key = kb;
        val = vb;
    }
    *p = (struct pick){.partition = f->partition, .offset = f->offset,
                       .key = dup_bytes(key, kl), .key_len = kl,
                       .value = dup_bytes(val, vl), .value_len = vl,
                       .to_offset = -1};
    if (p->key == NULL || p->value == NULL) {
        free(p->key);
        free(p->value);
        k->err = RG_ENOMEM;
        return;
    }
    k->n++;
}

/* Delivery report (on this thread, from poll or flush). */
static void on_delivery(void *opaque, const rg_delivery_t *dr)
{
    (void)opaque;
    struct pick *p = dr->msg_opaque;
    p->pending = false;
    p->err = dr->err;
    if (dr->err != 0) {
        snprintf(p->why, sizeof(p->why), "%s",
                 dr->errstr ? dr->errstr : "not delivered");
    } else if (dr->offset < 0) {
        /* spooled, not in Kafka: the spool is off (see replay_send) */
        p->err = RG_EIO;
        snprintf(p->why, sizeof(p->why), "not delivered (spooled)");
    } else {
        p->to_partition = dr->partition;
        p->to_offset = dr->offset;
    }
}

/* Produces every pick and waits for its delivery. 0, or the exit status
 * after the error (the producer could not be made). */
static int replay_send(rg_cli_t *cli, const struct dlq *d,
                       struct picker *k)
{
    char err[512];
    rg_conf_t *pc = rg_conf_dup(cli->conf);
    if (pc == NULL)
        return rg_cli_error(cli, "out of memory");
    /* the spool (degraded mode) would outlive this process: a replay
     * is delivered to Kafka or reported as not */
    int rc = rg_conf_set(pc, "topic", d->topic, err, sizeof(err));
    if (rc == 0 && d->bootstrap != NULL)
        rc = rg_conf_set(pc, "kafka.bootstrap.servers", d->bootstrap, err,
                         sizeof(err));
    if (rc == 0)
        rc = rg_conf_set(pc, "fallback.spool.dir", "", err, sizeof(err));
    rg_producer_t *prod = rc == 0 ? rg_producer_new(pc, on_delivery, NULL,
                                                    err, sizeof(err))
                                  : NULL;
    rg_conf_destroy(pc);
    if (prod == NULL)
        return rg_cli_report(cli, rc != 0 ? rc : RG_EINVAL, "replay: %s",
                             err);
    for (size_t i = 0; i < k->n; i++) {
        struct pick *p = &k->picks[i];
        p->pending = true;
        while ((rc = rg_producer_send_bytes(prod, p->key, p->key_len,
                                            p->value, p->value_len, p)) ==
               RG_EFULL)
            rg_producer_poll(prod, 100);
        if (rc != 0) {
            p->pending = false;
            p->err = rc;
            snprintf(p->why, sizeof(p->why), "refused: %s",
                     rg_producer_last_error());
        }
    }
    if (rg_producer_flush(prod, 30000) != 0)
        for (size_t i = 0; i < k->n; i++)
            if (k->picks[i].pending) {
                k->picks[i].err = RG_ETIMEDOUT;
                snprintf(k->picks[i].why, sizeof(k->picks[i].why),
                         "no delivery report within 30 s (it may still "
                         "arrive: not marked, so a later replay may "
                         "produce it twice)");
            }
    /* the pending ones stay unmarked; destroy purges them */
    rg_producer_destroy(prod);
    return 0;
}

static int do_replay(rg_cli_t *cli, const struct dlq *d, rg_sink_t *s,
                     rg_dlq_store_t *store)
{
    char err[512];
    struct picker k = {.d = d, .json = cli->json};
    if (cli->json)
        printf("{\"rows\":[");
    int rc = s->scan_failures(s->self, RG_FAILURE_DEAD, d->parts, d->nparts,
                              pick_row, &k, err, sizeof(err));
    if (rc == 0 && k.err != 0) {
        rc = k.err;
        snprintf(err, sizeof(err), "out of memory copying the dead letters");
    }
    int status = 0;
    size_t delivered = 0, marked = 0, failed = 0;
    if (rc != 0) {
        status = -1;
    } else if (d->dry_run) {
        for (size_t i = 0; i < k.n; i++) {
            char why[64];
            snprintf(why, sizeof(why), "key %zu bytes, value %zu bytes",
                     k.picks[i].key_len, k.picks[i].value_len);
            replay_line(cli->json, i + k.skipped == 0, k.picks[i].partition,
                        k.picks[i].offset, "would", why, 0, -1);
        }
    } else if (k.n > 0 && (status = replay_send(cli, d, &k)) == 0) {
        rg_dlq_at_t *at = malloc(k.n * sizeof(*at));
        if (at == NULL) {
            rc = RG_ENOMEM;
            snprintf(err, sizeof(err), "out of memory");
            status = -1;
        }
        for (size_t i = 0; at != NULL && i < k.n; i++)
            if (k.picks[i].err == 0)
                at[delivered++] = (rg_dlq_at_t){k.picks[i].partition,
                                                k.picks[i].offset};
        if (at != NULL && delivered > 0 &&
            (rc = rg_dlq_store_mark(store, RG_DLQ_REPLAYED, at, delivered,
                                    now_ms(), &marked,
                                    err, sizeof(err))) != 0)
            status = -1;
        free(at);
        for (size_t i = 0; i < k.n; i++) {
            const struct pick *p = &k.picks[i];
            failed += p->err != 0;
            replay_line(cli->json, i + k.skipped == 0, p->partition,
                        p->offset, p->err == 0 ? "replayed" : "failed",
                        p->err == 0 ? NULL : p->why, p->to_partition,
                        p->err == 0 ? p->to_offset : -1);
        }
    }
    if (cli->json)
        printf("],\"replayed\":%zu,\"marked\":%zu,\"skipped\":%" PRIu64
               ",\"failed\":%zu,\"dry_run\":%s}\n", delivered, marked,
               k.skipped, failed, d->dry_run ? "true" : "false");
    else if (status == 0)
        printf("%s %zu of %" PRIu64 " dead letter%s to %s, skipped %" PRIu64
               ", failed %zu\n", d->dry_run ? "would replay" : "replayed",
               d->dry_run ? k.n : delivered, k.seen, k.seen == 1 ? "" : "s",
               d->topic, k.skipped, failed);
    fflush(stdout);
    for (size_t i = 0; i < k.n; i++) {
        free(k.picks[i].key);
        free(k.picks[i].value);
    }
    free(k.picks);
    if (status > 0)
        return status;
    if (status < 0)
        return rg_cli_report(cli, rc, "replay: %s", err);
    if (failed > 0)
        return rg_cli_error(cli, "replay: %zu of %zu not delivered (not "
                            "marked: a later replay retries them)", failed,
                            k.n);
    if (marked != delivered)
        return rg_cli_error(cli, "replay: %zu delivered but only %zu "
                            "marked replayed (rows that stopped being "
                            "dead letters meanwhile)", delivered, marked);
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
    rg_dlq_store_t *store = NULL;
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
    bool replay = strcmp(d.verb, "replay") == 0;
    if ((rc = rg_dlq_store_open(cli.conf, RG_DLQ_LOAD |
                                        (replay && !d.dry_run ? RG_DLQ_WRITE : 0),
                                    &store, err,
                                sizeof(err))) != 0) {
        rc = rg_cli_report(&cli, rc, "%s", err);
        goto out;
    }
    d.store = store;
    if (strcmp(d.verb, "list") == 0)
        rc = do_list(&cli, &d, &sink);
    else if (replay)
        rc = do_replay(&cli, &d, &sink, store);
    else
        rc = do_show(&cli, &d, &sink);
out:
    rg_dlq_store_close(store);
    if (opened && sink.close)
        sink.close(sink.self);
    rg_conf_destroy(cli.conf);
    return rc;
}
