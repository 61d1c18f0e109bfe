/*
 * main.c - `railgun`: the command-line front door of the engine.
 */
#include <stdio.h>
#include <string.h>
#include "railgun/railgun.h"
#include "commands.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *what;
} cmds[] = {
    {"demo", rg_cmd_demo, "run generated likes through the engine into "
                          "SQLite and verify the database"},
    {"bench", rg_cmd_bench, "bench likes: per-event transactions against "
                            "railgun on one database"},
    {"run", rg_cmd_run, "the likes job: Kafka in, SQLite or MariaDB out, "
                        "until SIGTERM"},
    {"produce", rg_cmd_produce, "produce like events into Kafka with the "
                                "producer SDK"},
    {"mock-kafka", rg_cmd_mock_kafka, "serve a mock Kafka cluster until "
                                      "SIGTERM (tests, demos, kcat)"},
    {"serve", rg_cmd_serve, "the like service: HTTP API and page, "
                            "writes to Kafka, reads Redis then the DB"},
    {"doctor", rg_cmd_doctor, "watch the nodes' metrics and name what is wrong"},
    {"flow", rg_cmd_flow, "show or set a consumer group's global rate "
                          "(through Redis)"},
    {"dlq", rg_cmd_dlq, "list and show the dead letters in the sink's "
                        "failures table"},
    {"config", rg_cmd_config, "list the configuration properties (or "
                              "--markdown for docs/CONFIGURATION.md)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: railgun COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].what);
    fprintf(f, "\nEvery command takes --help, --config FILE, "
               "-X name=value and --json.\n"
               "Exit status: 0 done, 1 the work failed (a server, a file, "
               "a mismatch),\n2 bad input (an option, a property, a "
               "combination of them).\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("railgun %s\n", rg_version());
        return 0;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (!strcmp(argv[1], cmds[i].name))
            return cmds[i].fn(argc - 2, argv + 2);
    fprintf(stderr, "railgun: unknown command \"%s\" (try railgun --help)\n",
            argv[1]);
    return 2;
}
