/*
 * cmd_flow.c - `railgun flow show [--json]` and `railgun flow set --rate
 * N`: a consumer group's global rate and its nodes' leases, read and set
 * through the same Redis that `railgun run` leases from (the flow.redis.*
 * properties, group.id). A `set` reaches every running node at its next
 * lease, within flow.lease.ms (railgun/redis.h).
 *
 * Exit status: 0 done, 1 Redis unreachable or failing, 2 bad input.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "cli.h"
#include "commands.h"
#include "likes_job.h"
#include "railgun/redis.h"
#include "run_flow.h"
#include "serve.h"

static void usage(void)
{
    printf("usage: railgun flow show [--json] [--config FILE] "
           "[-X name=value]\n"
           "       railgun flow set --rate N [--json] [--config FILE] "
           "[-X name=value]\n\n"
           "The global rate of consumer group `group.id`, in the Redis at "
           "flow.redis.*\n(host and port, socket, or sentinels; password, "
           "prefix), as `railgun run`\nleases it.\n\n"
           "  show         the group's rate (or \"not set\": no node leased "
           "yet), the sum\n"
           "               granted, and per live node: id, host, pid, mode, "
           "wants\n"
           "               (\"hungry\": all it can get), granted, consumed/s, "
           "total\n"
           "               consumed, age of its lease, when it expires\n"
           "  set --rate N the group's rate, events/s (0: unlimited); every "
           "node applies\n"
           "               it within one flow.lease.ms\n\n"
           "Exit 1 when Redis does not answer, 2 on bad input.\n");
}

/* s as a JSON string body (quotes and control characters escaped). */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static void show_json(const char *group, const rg_flow_group_t *g)
{
    printf("{\"group\":");
    json_str(stdout, group);
    printf(",\"rate_set\":%s,\"global_rate\":%" PRIu64 ",\"granted_total\":%"
           PRIu64 ",\"server_time_ms\":%" PRId64 ",\"nodes\":[",
           g->rate_set ? "true" : "false", g->global_rate, g->granted_total,
           g->server_time_ms);
    for (size_t i = 0; i < g->nnodes; i++) {
        const rg_flow_node_t *n = &g->nodes[i];
        printf("%s{\"id\":", i ? "," : "");
        json_str(stdout, n->id);
        printf(",\"host\":");
        json_str(stdout, n->host);
        printf(",\"pid\":%" PRId64 ",\"mode\":\"%s\",\"wants\":%" PRId64
               ",\"granted\":%" PRIu64 ",\"consumed_rate\":%" PRIu64
               ",\"consumed\":%" PRIu64 ",\"age_ms\":%" PRId64
               ",\"expires_in_ms\":%" PRId64 "}", n->pid,
               rg_flow_mode_name(n->mode), n->wants, n->granted,
               n->consumed_rate, n->consumed, n->age_ms, n->expires_in_ms);
    }
    printf("]}\n");
}

static void show_text(const char *group, const rg_flow_group_t *g)
{
    char rate[64];
    if (!g->rate_set)
        snprintf(rate, sizeof(rate), "not set");
    else if (g->global_rate == 0)
        snprintf(rate, sizeof(rate), "unlimited");
    else
        snprintf(rate, sizeof(rate), "%" PRIu64 "/s", g->global_rate);
    printf("group %s: global rate %s, granted %" PRIu64 "/s to %zu node%s\n",
           group, rate, g->granted_total, g->nnodes,
           g->nnodes == 1 ? "" : "s");
    if (g->nnodes == 0)
        return;
    printf("%-28s %-16s %8s %-8s %10s %10s %11s %12s %7s %10s\n", "NODE",
           "HOST", "PID", "MODE", "WANTS", "GRANTED", "CONSUMED/S", "TOTAL",
           "AGE", "EXPIRES IN");
    for (size_t i = 0; i < g->nnodes; i++) {
        const rg_flow_node_t *n = &g->nodes[i];
        char wants[32];
        if (n->wants < 0)
            snprintf(wants, sizeof(wants), "hungry");
        else
            snprintf(wants, sizeof(wants), "%" PRId64, n->wants);
        printf("%-28s %-16s %8" PRId64 " %-8s %10s %10" PRIu64 " %11" PRIu64
               " %12" PRIu64 " %5.1fs %9.1fs\n", n->id, n->host, n->pid,
               rg_flow_mode_name(n->mode), wants, n->granted,
               n->consumed_rate, n->consumed, (double)n->age_ms / 1e3,
               (double)n->expires_in_ms / 1e3);
    }
}

static int parse_args(rg_cli_t *cli, const char **verb, const char **rate,
                      int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        int c = rg_cli_common(cli, argc, argv, &i);
        if (c < 0)
            return 2;
        if (c > 0)
            continue;
        if (rg_cli_is(argv[i], "--rate")) {
            if (!(*rate = rg_cli_value(cli, argc, argv, &i, "--rate")))
                return 2;
        } else if (argv[i][0] != '-' && *verb == NULL) {
            *verb = argv[i];
        } else {
            return rg_cli_fail(cli, "unknown option \"%s\"", argv[i]);
        }
    }
    if (cli->help)
        return 0;
    if (*verb == NULL)
        return rg_cli_fail(cli, "show or set? (railgun flow --help)");
    if (strcmp(*verb, "show") != 0 && strcmp(*verb, "set") != 0)
        return rg_cli_fail(cli, "unknown subcommand \"%s\" (show, set)",
                           *verb);
    if (strcmp(*verb, "set") == 0 && *rate == NULL)
        return rg_cli_fail(cli, "set: --rate N missing (events/s, 0: "
                           "unlimited)");
    if (strcmp(*verb, "show") == 0 && *rate != NULL)
        return rg_cli_fail(cli, "show: --rate is for set");
    return rg_cli_finish(cli);
}

int rg_cmd_flow(int argc, char **argv)
{
    rg_cli_t cli = {.cmd = "flow", .conf = rg_likes_conf_new()};
    rg_flow_redis_opts_t *o = NULL;
    const char *verb = NULL, *rate_s = NULL;
    char err[512];
    int rc;
    if (cli.conf == NULL)
        return rg_cli_error(&cli, "out of memory");
    /* run's rows (the read cache's too), so that run's --config file
     * serves here as it is */
    if (rg_conf_add_table(cli.conf, rg_serve_conf_table(), err,
                          sizeof(err)) != 0 ||
        rg_run_flow_add_props(cli.conf, err, sizeof(err)) != 0) {
        rc = rg_cli_error(&cli, "%s", err);
        goto out;
    }
    if ((rc = parse_args(&cli, &verb, &rate_s, argc, argv)) != 0 ||
        cli.help) {
        if (rc == 0)
            usage();
        goto out;
    }
    uint64_t rate = 0;
    if (rate_s != NULL &&
        rg_cli_u64(&cli, "--rate", rate_s, 0, 64000000000ULL, &rate) != 0) {
        rc = 2;
        goto out;
    }
    if ((rc = rg_run_flow_opts(cli.conf, &o, err, sizeof(err))) != 0) {
        rc = rg_cli_report(&cli, rc, "%s", err);
        goto out;
    }
    const char *group = rg_conf_get_str(cli.conf, "group.id");
    if (strcmp(verb, "set") == 0) {
        if ((rc = rg_flow_redis_set_global_rate(o, rate, err,
                                                sizeof(err))) != 0) {
            rc = rg_cli_report(&cli, rc, "%s", err);
            goto out;
        }
        if (cli.json) {
            printf("{\"group\":");
            json_str(stdout, group);
            printf(",\"global_rate\":%" PRIu64 "}\n", rate);
        } else if (rate == 0) {
            printf("group %s: global rate unlimited (every node applies it "
                   "at its next lease)\n", group);
        } else {
            printf("group %s: global rate %" PRIu64 "/s (every node applies "
                   "it at its next lease)\n", group, rate);
        }
        goto out;
    }
    rg_flow_group_t g = {0};
    if ((rc = rg_flow_redis_show(o, &g, err, sizeof(err))) != 0) {
        rc = rg_cli_report(&cli, rc, "%s", err);
        goto out;
    }
    if (cli.json)
        show_json(group, &g);
    else
        show_text(group, &g);
    rg_flow_group_free(&g);
out:
    rg_flow_redis_opts_destroy(o);
    rg_conf_destroy(cli.conf);
    return rc;
}
