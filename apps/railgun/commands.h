/*
 * commands.h - the `railgun` subcommands. Each takes the arguments after
 * its name and returns the process exit status: 0 success, 1 the work
 * failed (e.g. verify: MISMATCH), 2 bad input.
 */
#ifndef RG_COMMANDS_H
#define RG_COMMANDS_H

int rg_cmd_demo(int argc, char **argv);
int rg_cmd_config(int argc, char **argv);
int rg_cmd_bench(int argc, char **argv);
int rg_cmd_mock_kafka(int argc, char **argv);
int rg_cmd_produce(int argc, char **argv);
int rg_cmd_run(int argc, char **argv);
int rg_cmd_serve(int argc, char **argv);
/* `railgun bench serve` (bench_serve.c), reached from rg_cmd_bench() */
int rg_bench_serve(int argc, char **argv);
int rg_cmd_doctor(int argc, char **argv); /* cmd_doctor.c */
int rg_cmd_flow(int argc, char **argv);   /* cmd_flow.c */
int rg_cmd_dlq(int argc, char **argv);    /* cmd_dlq.c */

#endif /* RG_COMMANDS_H */
