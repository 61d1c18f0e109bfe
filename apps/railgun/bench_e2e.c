/*
 * bench_e2e.c - `railgun bench e2e`: the whole write path under load, each
 * part in its own process as in production:
 *
 *   producer SDK (this process) -> Kafka (`railgun mock-kafka`, a child)
 *     -> `railgun run` (a child: likes job, epochs into the sink) -> sink
 *
 * at a given rate (--rate N) or flat out, and reports the throughput and
 * the end-to-end latency: from an event's send to its row being readable
 * in the database. Latency is measured with probes: every --probe-ms one
 * like of a dedicated probe video (a fresh id per run) by user 1, 2, 3...
 * is sent with the load; all probes share one key, so they are applied in
 * order, and a poller reading the actions table through the sink's own
 * point reads (every --poll-ms) sees probe k visible exactly when its row
 * is committed: latency(k) = first poll that reads it - its send time
 * (resolution: the poll interval). A warm-up probe, waited for before the
 * clock starts, keeps the group join and the first epoch out of the
 * figures; the last probe, sent after the last event, dates the end of
 * the run (throughput = events / (last probe visible - first send)).
 *
 * While it runs, `railgun run`'s /metrics (on a free loopback port given
 * as -X metrics.listen) is sampled every 250 ms: processed events and
 * lag go into the timeline (a build whose `run` has no metrics.listen
 * yet runs without, and says so). The report is JSON (--out FILE, default
 * bench-e2e.json; stdout with --json too) and a plot beside it (FILE with
 * .svg: gnuplot's svg terminal): throughput over time, and each probe's
 * latency with p50 and p99.
 *
 * The mock cluster keeps only the newest few MB of each partition, so
 * flat out the producer stays at most RG_STREAM_PRODUCE_LAG events ahead
 * of what `run` processed (from /metrics; without metrics, of the probes
 * seen: a coarser bound).
 *
 * The temp dir (the SQLite file, the children's logs, the plot's data)
 * is removed at the end; with KEEP set in the environment a failed run
 * keeps it and says where.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "cli.h"
#include "fetch.h"
#include "like_codec.h"
#include "likes_job.h"
#include "prom.h"
#include "railgun/railgun.h"
#include "railgun/sinks.h"
#include "stream.h"
#include "zipf.h"

int rg_bench_e2e(int argc, char **argv);

#define SAMPLE_MS 250
#define PROBES_MAX 200000
#define CONFIGS_MAX 16

struct opts {
    uint64_t events, rate, partitions, probe_ms, poll_ms, timeout_s, seed;
    const char *out;
    const char *configs[CONFIGS_MAX];
    int nconfigs;
};

/* one timeline sample */
struct sample {
    double t;              /* seconds since the clock started */
    uint64_t produced;     /* events sent so far */
    uint64_t visible;      /* probes visible so far */
    double processed;      /* railgun_events_processed_total, NaN: none */
    double lag;            /* sum of railgun_partition_lag, NaN: none */
};

struct e2e {
    rg_cli_t *cli;
    const struct opts *o;
    char dir[256];         /* temp dir: db, logs, plot data */
    char self[4096];       /* this executable */
    pid_t mock, run;
    char servers[512];
    unsigned mport;        /* run's metrics port, 0 without */
    rg_url_t murl;
    rg_producer_t *prod;
    _Atomic uint64_t failed; /* deliveries that failed */
    int64_t probe_video;
    /* probes: send times (seconds since t0) and when seen */
    double *sent, *seen;
    uint64_t *at;             /* events sent before probe k */
    _Atomic uint64_t nsent;   /* probes sent, warm-up (0) included */
    _Atomic uint64_t nseen;   /* probes 0 .. nseen-1 are visible */
    _Atomic uint64_t produced;
    _Atomic int stop;         /* ends the poller and sampler */
    _Atomic int produce_done; /* set when the producer returned */
    double t0;                /* monotonic seconds at the first send */
    double processed_now;     /* the sampler's last processed total (-1) */
    pthread_mutex_t mu;       /* guards processed_now, samples */
    struct sample *samples;
    size_t nsamples, samples_cap;
    char err[512];            /* the first failure of a thread */
};

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    nanosleep(&ts, NULL);
}

static void fail_once(struct e2e *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail_once(struct e2e *x, const char *fmt, ...)
{
    pthread_mutex_lock(&x->mu);
    if (x->err[0] == '\0') {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(x->err, sizeof(x->err), fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&x->mu);
    atomic_store_explicit(&x->stop, 1, memory_order_relaxed);
}

/* ---- child processes --------------------------------------------------- */

/* Starts this executable with argv (NULL-terminated); stdout to out_fd
 * (-1: the log), stderr to the log file. */
static pid_t spawn(struct e2e *x, char *const *argv, int out_fd,
                   const char *log)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", x->dir, log);
    int lfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (lfd < 0)
        return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(out_fd >= 0 ? out_fd : lfd, 1);
        dup2(lfd, 2);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(x->self, argv);
        _exit(127);
    }
    close(lfd);
    return pid;
}

/* SIGTERM, then SIGKILL after 20 s; the exit status (-1: killed). */
static int stop_child(pid_t *pid)
{
    if (*pid <= 0)
        return 0;
    kill(*pid, SIGTERM);
    int st = 0;
    for (int i = 0; i < 200; i++) {
        if (waitpid(*pid, &st, WNOHANG) == *pid) {
            *pid = 0;
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        }
        nap(0.1);
    }
    kill(*pid, SIGKILL);
    waitpid(*pid, &st, 0);
    *pid = 0;
    return -1;
}

/* Says how a child that should still run ended (nothing while it runs). */
static void child_gone(struct e2e *x, pid_t *pid, const char *name)
{
    int st;
    if (*pid <= 0 || waitpid(*pid, &st, WNOHANG) != *pid)
        return;
    *pid = 0;
    if (WIFSIGNALED(st))
        rg_cli_error(x->cli, "%s died of signal %d", name, WTERMSIG(st));
    else
        rg_cli_error(x->cli, "%s exited %d", name, WEXITSTATUS(st));
}

static void log_tail(struct e2e *x, const char *log)
{
    char path[512], line[600];
    snprintf(path, sizeof(path), "%s/%s", x->dir, log);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char *lines[8] = {0};
    int n = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        free(lines[n % 8]);
        lines[n % 8] = strdup(line);
        n++;
    }
    fclose(f);
    for (int i = n > 8 ? n - 8 : 0; i < n; i++) {
        fprintf(stderr, "  %s: %s", log, lines[i % 8] ? lines[i % 8] : "\n");
        free(lines[i % 8]);
    }
}

/* mock-kafka prints its servers on stdout: into a file of the temp dir
 * (not a pipe, which it would write into after we stopped reading) */
static int start_mock(struct e2e *x)
{
    char path[600], topic[64];
    snprintf(path, sizeof(path), "%s/mock-kafka.out", x->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return rg_cli_error(x->cli, "%s: %s", path, strerror(errno));
    snprintf(topic, sizeof(topic), "likes:%" PRIu64, x->o->partitions);
    char *argv[] = {"railgun", "mock-kafka", "--topic", topic, NULL};
    x->mock = spawn(x, argv, fd, "mock-kafka.log");
    close(fd);
    double end = mono() + 30;
    char *nl = NULL;
    while (x->mock > 0 && mono() < end) {
        if (waitpid(x->mock, NULL, WNOHANG) == x->mock) {
            x->mock = 0; /* died: reaped */
            break;
        }
        FILE *f = fopen(path, "r");
        if (f != NULL) {
            size_t n = fread(x->servers, 1, sizeof(x->servers) - 1, f);
            fclose(f);
            x->servers[n] = '\0';
            if ((nl = strchr(x->servers, '\n')) != NULL)
                break;
        }
        nap(0.02);
    }
    if (nl == NULL) {
        log_tail(x, "mock-kafka.log");
        return rg_cli_error(x->cli, "mock-kafka printed no servers");
    }
    *nl = '\0';
    return 0;
}

static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t l = sizeof(a);
    unsigned port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &l) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int start_run(struct e2e *x, const rg_conf_t *conf)
{
    char *argv[16 + 2 * 256 + 2 * CONFIGS_MAX];
    int n = 0;
    static char servers[600], group[64], metrics[64], db[600];
    argv[n++] = "railgun";
    argv[n++] = "run";
    argv[n++] = "--init-schema";
    for (int i = 0; i < x->o->nconfigs; i++) {
        argv[n++] = "--config";
        argv[n++] = (char *)x->o->configs[i];
    }
    for (int i = 0; i < x->cli->nx; i++) { /* the user's -X first */
        argv[n++] = "-X";
        argv[n++] = (char *)x->cli->xs[i];
    }
    snprintf(servers, sizeof(servers), "kafka.bootstrap.servers=%s",
             x->servers);
    snprintf(group, sizeof(group), "group.id=bench-e2e-%d", (int)getpid());
    argv[n++] = "-X";
    argv[n++] = servers;
    argv[n++] = "-X";
    argv[n++] = group;
    argv[n++] = "-X";
    argv[n++] = "kafka.auto.offset.reset=earliest";
    const char *path = rg_conf_get_str(conf, "sqlite.path");
    if (!strcmp(rg_conf_get_str(conf, "sink"), "sqlite")) {
        snprintf(db, sizeof(db), "sqlite.path=%s", path);
        argv[n++] = "-X";
        argv[n++] = db;
    }
    if (rg_conf_get_str(conf, "metrics.listen") != NULL &&
        (x->mport = free_port()) != 0) {
        snprintf(metrics, sizeof(metrics), "metrics.listen=127.0.0.1:%u",
                 x->mport);
        argv[n++] = "-X";
        argv[n++] = metrics;
        char url[64];
        snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", x->mport);
        rg_url_parse(url, &x->murl, NULL, 0);
    }
    argv[n] = NULL;
    x->run = spawn(x, argv, -1, "run.log");
    if (x->run <= 0)
        return rg_cli_error(x->cli, "cannot start railgun run");
    return 0;
}

/* ---- the producer -------------------------------------------------------- */

static void on_delivery(void *opaque, const rg_delivery_t *d)
{
    struct e2e *x = opaque;
    if (d->err != 0)
        atomic_fetch_add_explicit(&x->failed, 1, memory_order_relaxed);
}

static int send_like(struct e2e *x, uint64_t video, uint64_t user,
                     uint8_t state)
{
    char key[RG_STREAM_KEY_MAX], val[RG_LIKE_JSON_MAX];
    rg_like_t like = {video, user, wall_ms(), state};
    size_t kl = rg_like_encode_key(video, key);
    size_t vl = rg_like_encode_json(&like, val);
    int rc;
    while ((rc = rg_producer_send_bytes(x->prod, key, kl, val, vl, NULL)) ==
           RG_EFULL)
        rg_producer_poll(x->prod, 5);
    return rc;
}

/* Sends probe k and records when. */
static int send_probe(struct e2e *x, uint64_t k)
{
    x->sent[k] = mono() - x->t0;
    x->at[k] = atomic_load_explicit(&x->produced, memory_order_relaxed);
    int rc = send_like(x, (uint64_t)x->probe_video, k + 1, 1);
    /* release: the poller reads sent[k] after seeing nsent > k (A1) */
    atomic_store_explicit(&x->nsent, k + 1, memory_order_release);
    return rc;
}

static uint64_t processed_now(struct e2e *x)
{
    pthread_mutex_lock(&x->mu);
    double v = x->processed_now;
    pthread_mutex_unlock(&x->mu);
    return v < 0 ? 0 : (uint64_t)v;
}

/* Probes on schedule: sends the next one when its time has come (also
 * while the producer waits, so waits show in the latency). 0, or -1 after
 * fail_once(). */
struct probing {
    uint64_t k;         /* the next probe */
    double next;        /* when it is due (seconds since t0) */
};

static int probe_due(struct e2e *x, struct probing *pb)
{
    double now = mono() - x->t0;
    if (now < pb->next || pb->k >= PROBES_MAX - 1)
        return 0;
    if (send_probe(x, pb->k++) != 0) {
        fail_once(x, "probe: %s", rg_producer_last_error());
        return -1;
    }
    pb->next = now + x->o->probe_ms / 1e3;
    return 0;
}

/* The measured phase: the events (Zipf videos, 2 in 3 likes) with a
 * probe every probe_ms and a last one after them. */
static void produce(struct e2e *x)
{
    const struct opts *o = x->o;
    rg_rng_t rng;
    rg_zipf_t zipf;
    rg_rng_seed(&rng, o->seed);
    rg_zipf_init(&zipf, 10000, 0.99);
    uint64_t base = processed_now(x);
    struct probing pb = {.k = 1, .next = 0};
    x->t0 = mono();
    for (uint64_t i = 0; i < o->events; i++) {
        if (atomic_load_explicit(&x->stop, memory_order_relaxed) ||
            probe_due(x, &pb) != 0)
            return;
        if (o->rate > 0) { /* paced: at most rate * elapsed sent */
            double due = (double)i / (double)o->rate;
            for (double now = mono() - x->t0; due > now + 0.0005;
                 now = mono() - x->t0) {
                nap(fmin(due - now, o->probe_ms / 2e3));
                if (probe_due(x, &pb) != 0)
                    return;
            }
        } else if ((i & 1023) == 0) {
            /* flat out: stay within the mock's window of the consumer */
            while (!atomic_load_explicit(&x->stop, memory_order_relaxed)) {
                /* relaxed: only a count; at[] is this thread's own */
                uint64_t seen = atomic_load_explicit(&x->nseen,
                                                     memory_order_relaxed);
                uint64_t done = x->mport ? processed_now(x) - base :
                                seen > 0 ? x->at[seen - 1] : 0;
                if (i < done + RG_STREAM_PRODUCE_LAG)
                    break;
                rg_producer_poll(x->prod, 1);
                if (probe_due(x, &pb) != 0)
                    return;
            }
        }
        uint64_t video = rg_zipf_next(&zipf, &rng);
        if (send_like(x, video, 1 + rg_rng_below(&rng, 100000),
                      rg_rng_below(&rng, 3) != 0) != 0) {
            fail_once(x, "send: %s", rg_producer_last_error());
            return;
        }
        atomic_store_explicit(&x->produced, i + 1, memory_order_relaxed);
        if ((i & 255) == 0)
            rg_producer_poll(x->prod, 0);
    }
    if (send_probe(x, pb.k) != 0) /* the last probe: after every event */
        fail_once(x, "probe: %s", rg_producer_last_error());
    if (rg_producer_flush(x->prod, 120000) != 0)
        fail_once(x, "the producer could not deliver everything in 120 s");
}

/* ---- the poller: probes visible in the database -------------------------- */

static void *poller(void *arg)
{
    struct e2e *x = arg;
    rg_sink_t sink = {0};
    rg_sink_reader_t *rd = NULL;
    char err[512] = "";
    double give_up = mono() + 60;
    /* the database exists once `run` created its schema */
    while (!atomic_load_explicit(&x->stop, memory_order_relaxed)) {
        if (rg_likes_open_sink(x->cli->conf, 0, &sink, err, sizeof(err)) ==
                0 &&
            sink.reader_open != NULL &&
            (rd = sink.reader_open(sink.self, err, sizeof(err))) != NULL) {
            rg_row_t row = {x->probe_video, 1, 0, 0};
            if (sink.lookup(rd, &row, 1, err, sizeof(err)) == 0)
                break;
            sink.reader_close(rd);
            rd = NULL;
        }
        if (sink.close != NULL)
            sink.close(sink.self);
        sink = (rg_sink_t){0};
        if (mono() > give_up) {
            fail_once(x, "cannot read the database: %s", err);
            return NULL;
        }
        nap(0.1);
    }
    if (rd == NULL)
        goto out;
    if (sink.lookup == NULL) {
        fail_once(x, "this sink has no point reads: no latency");
        goto out;
    }
    enum { BATCH = 64 };
    rg_row_t rows[BATCH];
    while (!atomic_load_explicit(&x->stop, memory_order_relaxed)) {
        /* acquire: pairs with the release in send_probe() (A1) */
        uint64_t sent = atomic_load_explicit(&x->nsent, memory_order_acquire);
        uint64_t seen = atomic_load_explicit(&x->nseen, memory_order_relaxed);
        size_t n = 0;
        for (uint64_t k = seen; k < sent && n < BATCH; k++, n++)
            rows[n] = (rg_row_t){x->probe_video, (int64_t)k + 1, 0, 0};
        if (n > 0) {
            if (sink.lookup(rd, rows, n, err, sizeof(err)) != 0) {
                fail_once(x, "probe lookup: %s", err);
                break;
            }
            double now = mono() - x->t0;
            size_t v = 0;
            while (v < n && rows[v].value == 1)
                x->seen[seen + v++] = now;
            /* release: seen[] before nseen; the main thread's acquire
             * loads of nseen pair with it */
            if (v > 0)
                atomic_store_explicit(&x->nseen, seen + v,
                                      memory_order_release);
        }
        nap(x->o->poll_ms / 1e3);
    }
    sink.reader_close(rd);
out:
    if (sink.close != NULL)
        sink.close(sink.self);
    return NULL;
}

/* ---- the sampler: /metrics and the counters -------------------------------- */

static void *sampler(void *arg)
{
    struct e2e *x = arg;
    double next = mono();
    while (!atomic_load_explicit(&x->stop, memory_order_relaxed)) {
        struct sample s = {.processed = NAN, .lag = NAN};
        if (x->mport != 0) {
            char *body = NULL, err[256];
            size_t len;
            int status;
            rg_prom_t *p = NULL;
            if (rg_fetch(&x->murl, 1000, 64u << 20, &status, &body, &len, err,
                         sizeof(err)) == 0 && status == 200 &&
                rg_prom_parse(body, len, &p, err, sizeof(err)) == 0) {
                double proc = 0, lag = 0;
                bool any = false;
                for (size_t i = 0; i < p->n; i++) {
                    if (!strcmp(p->samples[i].name,
                                "railgun_events_processed_total")) {
                        proc += p->samples[i].value;
                        any = true;
                    } else if (!strcmp(p->samples[i].name,
                                       "railgun_partition_lag")) {
                        lag += p->samples[i].value;
                    }
                }
                if (any) {
                    s.processed = proc;
                    s.lag = lag;
                }
            }
            rg_prom_free(p);
            free(body);
        }
        s.t = x->t0 > 0 ? mono() - x->t0 : 0;
        s.produced = atomic_load_explicit(&x->produced, memory_order_relaxed);
        s.visible = atomic_load_explicit(&x->nseen, memory_order_relaxed);
        pthread_mutex_lock(&x->mu);
        if (!isnan(s.processed))
            x->processed_now = s.processed;
        if (x->t0 > 0) {
            if (x->nsamples == x->samples_cap) {
                size_t cap = x->samples_cap ? x->samples_cap * 2 : 256;
                struct sample *a = realloc(x->samples, cap * sizeof(*a));
                if (a != NULL) {
                    x->samples = a;
                    x->samples_cap = cap;
                }
            }
            if (x->nsamples < x->samples_cap)
                x->samples[x->nsamples++] = s;
        }
        pthread_mutex_unlock(&x->mu);
        next += SAMPLE_MS / 1e3;
        double d = next - mono();
        if (d > 0)
            nap(d);
    }
    return NULL;
}

/* ---- the report ------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pctl(const double *v, size_t n, double q)
{
    if (n == 0)
        return NAN;
    size_t i = (size_t)ceil(q * (double)n);
    return v[i == 0 ? 0 : i - 1];
}

static void jnum(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.6g", v);
    else
        fputs("null", f);
}

static int plot(struct e2e *x, const char *svg, const double *lat, size_t n,
                double p50, double p99)
{
    char dat[600], pr[600], gp[600];
    snprintf(dat, sizeof(dat), "%s/timeline.dat", x->dir);
    snprintf(pr, sizeof(pr), "%s/probes.dat", x->dir);
    snprintf(gp, sizeof(gp), "%s/plot.gp", x->dir);
    FILE *f = fopen(dat, "w");
    if (f == NULL)
        return -1;
    bool metrics = false;
    for (size_t i = 1; i < x->nsamples; i++) {
        const struct sample *a = &x->samples[i - 1], *b = &x->samples[i];
        double dt = b->t - a->t;
        if (dt <= 0)
            continue;
        double proc = (b->processed - a->processed) / dt;
        metrics |= isfinite(proc);
        fprintf(f, "%.3f %.1f %s%.1f %s%.0f\n", b->t,
                (double)(b->produced - a->produced) / dt,
                isfinite(proc) ? "" : "NaN", isfinite(proc) ? proc : 0.0,
                isfinite(b->lag) ? "" : "NaN", isfinite(b->lag) ? b->lag : 0.0);
    }
    fclose(f);
    if ((f = fopen(pr, "w")) == NULL)
        return -1;
    (void)lat;
    for (size_t k = 1; k < n + 1; k++)
        fprintf(f, "%.4f %.3f\n", x->sent[k], (x->seen[k] - x->sent[k]) * 1e3);
    fclose(f);
    if ((f = fopen(gp, "w")) == NULL)
        return -1;
    fprintf(f,
            "set terminal svg size 960,720 dynamic font 'sans,11' background '#ffffff'\n"
            "set output '%s'\n"
            "set datafile missing 'NaN'\n"
            "set multiplot layout 2,1 title 'railgun bench e2e: %" PRIu64
            " events, %s, %" PRIu64 " partitions'\n"
            "set grid\nset key top right\nset xlabel 'seconds'\n"
            "set ylabel 'events / s'\nset format y '%%.0s%%c'\n"
            "plot '%s' using 1:2 with lines lw 1.5 title 'produced (SDK)'%s\n"
            "set ylabel 'produced -> in the database (ms)'\nset format y '%%g'\n"
            "plot '%s' using 1:2 with points pt 7 ps 0.4 title 'probe latency', "
            "%.3f with lines lw 1.5 title 'p50 %.1f ms', "
            "%.3f with lines lw 1.5 dt 2 title 'p99 %.1f ms'\n"
            "unset multiplot\n",
            svg, x->o->events,
            x->o->rate ? "paced" : "flat out", x->o->partitions, dat,
            metrics ? ", '' using 1:3 with lines lw 1.5 title 'processed "
                      "(railgun run /metrics)'" : "",
            pr, p50, p50, p99, p99);
    fclose(f);
    char cmd[1400];
    snprintf(cmd, sizeof(cmd), "gnuplot '%s' 2>'%s/gnuplot.err'", gp, x->dir);
    int rc = system(cmd);
    if (rc != 0) {
        log_tail(x, "gnuplot.err");
        return -1;
    }
    return 0;
}

static int report(struct e2e *x, double e2e_s, double produce_s)
{
    const struct opts *o = x->o;
    uint64_t nseen = atomic_load_explicit(&x->nseen, memory_order_relaxed);
    size_t n = nseen > 1 ? nseen - 1 : 0; /* probe 0: the warm-up */
    double *lat = malloc((n ? n : 1) * sizeof(double));
    if (lat == NULL)
        return rg_cli_error(x->cli, "out of memory");
    double sum = 0;
    for (size_t k = 0; k < n; k++) {
        lat[k] = (x->seen[k + 1] - x->sent[k + 1]) * 1e3;
        sum += lat[k];
    }
    qsort(lat, n, sizeof(double), cmp_double);
    double p50 = pctl(lat, n, 0.5), p90 = pctl(lat, n, 0.9),
           p99 = pctl(lat, n, 0.99), p999 = pctl(lat, n, 0.999);
    /* the metrics: peak and median processed rate, largest lag */
    double *rates = malloc((x->nsamples ? x->nsamples : 1) * sizeof(double));
    size_t nr = 0;
    double lag_max = NAN;
    for (size_t i = 1; rates != NULL && i < x->nsamples; i++) {
        double dt = x->samples[i].t - x->samples[i - 1].t;
        double r = (x->samples[i].processed - x->samples[i - 1].processed) / dt;
        if (dt > 0 && isfinite(r))
            rates[nr++] = r;
        if (isfinite(x->samples[i].lag) &&
            (isnan(lag_max) || x->samples[i].lag > lag_max))
            lag_max = x->samples[i].lag;
    }
    if (rates != NULL)
        qsort(rates, nr, sizeof(double), cmp_double);
    char svg[1100];
    snprintf(svg, sizeof(svg), "%.*s.svg",
             (int)(strlen(o->out) > 5 && !strcmp(o->out + strlen(o->out) - 5,
                                                 ".json") ?
                       strlen(o->out) - 5 : strlen(o->out)), o->out);
    int prc = plot(x, svg, lat, n, p50, p99);
    FILE *f = fopen(o->out, "w");
    if (f == NULL) {
        free(lat);
        free(rates);
        return rg_cli_error(x->cli, "%s: %s", o->out, strerror(errno));
    }
    fprintf(f, "{\"suite\":\"e2e\",\"events\":%" PRIu64 ",\"partitions\":%"
            PRIu64 ",\"rate_target\":%" PRIu64 ",\"sink\":\"%s\","
            "\"produce_seconds\":", o->events, o->partitions, o->rate,
            rg_conf_get_str(x->cli->conf, "sink"));
    jnum(f, produce_s);
    fputs(",\"produced_per_second\":", f);
    jnum(f, (double)o->events / produce_s);
    fputs(",\"end_to_end_seconds\":", f);
    jnum(f, e2e_s);
    fputs(",\"throughput_events_per_second\":", f);
    jnum(f, (double)o->events / e2e_s);
    fprintf(f, ",\"delivery_failures\":%" PRIu64 ",\"latency_ms\":{\"probes\":"
            "%zu,\"probe_interval_ms\":%" PRIu64 ",\"resolution_ms\":%" PRIu64,
            atomic_load_explicit(&x->failed, memory_order_relaxed), n,
            o->probe_ms, o->poll_ms);
    const char *names[] = {"min", "p50", "p90", "p99", "p999", "max", "mean"};
    double vals[] = {n ? lat[0] : NAN, p50, p90, p99, p999,
                     n ? lat[n - 1] : NAN, n ? sum / (double)n : NAN};
    for (int i = 0; i < 7; i++) {
        fprintf(f, ",\"%s\":", names[i]);
        jnum(f, vals[i]);
    }
    fputs("},\"metrics\":", f);
    if (x->mport != 0 && nr > 0) {
        fprintf(f, "{\"url\":\"http://127.0.0.1:%u/metrics\",\"samples\":%zu,"
                "\"processed_per_second_peak\":", x->mport, x->nsamples);
        jnum(f, rates[nr - 1]);
        fputs(",\"processed_per_second_median\":", f);
        jnum(f, pctl(rates, nr, 0.5));
        fputs(",\"lag_max\":", f);
        jnum(f, lag_max);
        fputs("}", f);
    } else {
        fputs("null", f);
    }
    fputs(",\"timeline\":[", f);
    for (size_t i = 0; i < x->nsamples; i++) {
        const struct sample *s = &x->samples[i];
        fprintf(f, "%s{\"t\":%.3f,\"produced\":%" PRIu64 ",\"visible_probes\":%"
                PRIu64 ",\"processed\":", i ? "," : "", s->t, s->produced,
                s->visible);
        jnum(f, s->processed);
        fputs(",\"lag\":", f);
        jnum(f, s->lag);
        fputs("}", f);
    }
    fprintf(f, "],\"plot\":\"%s\"}\n", prc == 0 ? svg : "");
    int wrc = ferror(f);
    wrc |= fclose(f);
    if (x->cli->json) {
        printf("{\"suite\":\"e2e\",\"events\":%" PRIu64 ",\"throughput_events_"
               "per_second\":%.0f,\"latency_ms_p50\":%.2f,\"latency_ms_p99\":"
               "%.2f,\"report\":\"%s\",\"plot\":\"%s\"}\n", o->events,
               (double)o->events / e2e_s, p50, p99, o->out,
               prc == 0 ? svg : "");
    } else {
        char h1[16], h2[16];
        printf("railgun bench e2e: %" PRIu64 " like events, %s, %" PRIu64
               " partitions: producer SDK -> mock-kafka -> railgun run -> %s\n",
               o->events, o->rate ? "paced" : "flat out", o->partitions,
               rg_conf_get_str(x->cli->conf, "sink"));
        printf("  produced         %s events/s (%.2f s)\n",
               rg_human((double)o->events / produce_s, h1, sizeof(h1)),
               produce_s);
        printf("  end to end       %s events/s (%.2f s to the last probe in "
               "the database)\n", rg_human((double)o->events / e2e_s, h2,
                                           sizeof(h2)), e2e_s);
        printf("  latency (ms)     p50 %.1f  p90 %.1f  p99 %.1f  max %.1f  "
               "(%zu probes, every %" PRIu64 " ms, read every %" PRIu64
               " ms)\n", p50, p90, p99, n ? lat[n - 1] : NAN, n, o->probe_ms,
               o->poll_ms);
        if (x->mport != 0 && nr > 0)
            printf("  railgun run      processed up to %.0f/s (median %.0f/s), "
                   "lag up to %.0f\n", rates[nr - 1], pctl(rates, nr, 0.5),
                   lag_max);
        else
            printf("  railgun run      no metrics (this build's `run` has no "
                   "metrics.listen)\n");
        printf("  report           %s%s%s\n", o->out, prc == 0 ? ", plot " :
               "", prc == 0 ? svg : " (no plot: gnuplot failed)");
    }
    free(lat);
    free(rates);
    if (wrc != 0)
        return rg_cli_error(x->cli, "%s: write failed", o->out);
    return prc == 0 ? 0 : rg_cli_error(x->cli, "gnuplot could not draw %s",
                                       svg);
}

/* ---- the command ------------------------------------------------------------- */

static void usage(void)
{
    printf("usage: railgun bench e2e [--events N] [--rate N] [--partitions P] "
           "[--probe-ms MS]\n"
           "                         [--poll-ms MS] [--timeout-s S] [--seed N] "
           "[--out FILE.json]\n"
           "                         [--json] [--config FILE] "
           "[-X name=value]\n\n"
           "Drives the whole path with each part in its own process: the "
           "producer SDK\nsends --events like events (default 200000) at "
           "--rate events/s (0: flat\nout) into `railgun mock-kafka` (topic "
           "likes, --partitions 32), consumed\nby `railgun run` into the "
           "sink (a temporary SQLite file; -X sink=mysql\n-X mysql.* for "
           "MariaDB). Probes every --probe-ms (20) measure the\nlatency "
           "from a send to the row being readable in the database "
           "(read\nevery --poll-ms, 2). -X settings go to `railgun run` "
           "too. Writes a JSON\nreport to --out (bench-e2e.json) and a "
           "gnuplot SVG plot beside it.\n");
}

static int parse_args(rg_cli_t *cli, struct opts *o, int argc, char **argv)
{
    static const char *const names[] = {"--events", "--rate", "--partitions",
                                        "--probe-ms", "--poll-ms",
                                        "--timeout-s", "--seed"};
    uint64_t *const dest[] = {&o->events, &o->rate, &o->partitions,
                              &o->probe_ms, &o->poll_ms, &o->timeout_s,
                              &o->seed};
    const uint64_t min[] = {1, 0, 1, 1, 1, 1, 0};
    const uint64_t max[] = {100000000, 100000000, 1024, 60000, 1000, 86400,
                            UINT64_MAX};
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (rg_cli_is(a, "--config") && o->nconfigs < CONFIGS_MAX)
            o->configs[o->nconfigs++] = a[8] == '=' ? a + 9 :
                                        i + 1 < argc ? argv[i + 1] : "";
        int c = rg_cli_common(cli, argc, argv, &i);
        if (c < 0)
            return 2;
        if (c > 0)
            continue;
        size_t k = 0;
        while (k < 7 && !rg_cli_is(a, names[k]))
            k++;
        if (k < 7) {
            const char *v = rg_cli_value(cli, argc, argv, &i, names[k]);
            if (!v || rg_cli_u64(cli, names[k], v, min[k], max[k], dest[k]))
                return 2;
        } else if (rg_cli_is(a, "--out")) {
            if ((o->out = rg_cli_value(cli, argc, argv, &i, "--out")) == NULL)
                return 2;
            if (o->out[0] == '\0')
                return rg_cli_fail(cli, "--out: empty");
        } else {
            return rg_cli_fail(cli, "unknown option \"%s\"", a);
        }
    }
    return cli->help ? 0 : rg_cli_finish(cli);
}

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "railgun bench e2e: could not remove %s\n", dir);
}

int rg_bench_e2e(int argc, char **argv)
{
    rg_cli_t cli = {.cmd = "bench e2e", .conf = rg_likes_conf_new()};
    struct opts o = {.events = 200000, .partitions = 32, .probe_ms = 20,
                     .poll_ms = 2, .timeout_s = 600, .seed = 1,
                     .out = "bench-e2e.json"};
    struct e2e x = {.cli = &cli, .o = &o, .processed_now = -1,
                    .mu = PTHREAD_MUTEX_INITIALIZER};
    pthread_t poll_th, sample_th;
    bool poll_started = false, sample_started = false;
    char err[512];
    int rc;
    if (cli.conf == NULL)
        return rg_cli_error(&cli, "out of memory");
    if ((rc = parse_args(&cli, &o, argc, argv)) != 0 || cli.help) {
        if (rc == 0)
            usage();
        goto out;
    }
    const char *sink = rg_conf_get_str(cli.conf, "sink");
    if (!strcmp(sink, "null")) {
        rc = rg_cli_fail(&cli, "sink=null stores nothing: the latency is "
                         "measured in the database (sqlite or mysql)");
        goto out;
    }
    ssize_t sl = readlink("/proc/self/exe", x.self, sizeof(x.self) - 1);
    if (sl <= 0) {
        rc = rg_cli_error(&cli, "cannot find this executable");
        goto out;
    }
    x.self[sl] = '\0';
    snprintf(x.dir, sizeof(x.dir), "%s/rg-e2e.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (mkdtemp(x.dir) == NULL) {
        rc = rg_cli_error(&cli, "mkdtemp: %s", strerror(errno));
        x.dir[0] = '\0';
        goto out;
    }
    if (!strcmp(sink, "sqlite") &&
        !rg_conf_is_set(cli.conf, "sqlite.path")) {
        char db[600];
        snprintf(db, sizeof(db), "%s/likes.db", x.dir);
        rg_conf_set(cli.conf, "sqlite.path", db, NULL, 0);
    }
    x.sent = calloc(PROBES_MAX, sizeof(double));
    x.seen = calloc(PROBES_MAX, sizeof(double));
    x.at = calloc(PROBES_MAX, sizeof(uint64_t));
    if (x.sent == NULL || x.seen == NULL || x.at == NULL) {
        rc = rg_cli_error(&cli, "out of memory");
        goto out;
    }
    /* a probe video no earlier run used: old rows must not look visible */
    x.probe_video = 4000000000000000000ll + (wall_ms() % 1000000000) * 1000 +
                    (getpid() % 1000);
    signal(SIGPIPE, SIG_IGN);

    /* the processes */
    if ((rc = start_mock(&x)) != 0)
        goto out;
    if (rg_conf_set(cli.conf, "kafka.bootstrap.servers", x.servers, err,
                    sizeof(err)) != 0) {
        rc = rg_cli_error(&cli, "%s", err);
        goto out;
    }
    if ((rc = start_run(&x, cli.conf)) != 0)
        goto out;
    /* as `railgun produce` sends: idempotent, linger 5 ms */
    rg_conf_t *pc = rg_conf_dup(cli.conf);
    if (pc == NULL ||
        rg_conf_set(pc, "kafka.linger.ms", "5", err, sizeof(err)) != 0 ||
        rg_conf_set(pc, "kafka.enable.idempotence", "true", err,
                    sizeof(err)) != 0 ||
        (x.prod = rg_producer_new(pc, on_delivery, &x, err, sizeof(err))) ==
            NULL) {
        rg_conf_destroy(pc);
        rc = rg_cli_error(&cli, "producer: %s", err);
        goto out;
    }
    rg_conf_destroy(pc);
    if (pthread_create(&poll_th, NULL, poller, &x) != 0 ||
        !(poll_started = true) ||
        pthread_create(&sample_th, NULL, sampler, &x) != 0) {
        rc = rg_cli_error(&cli, "cannot start a thread");
        goto out;
    }
    sample_started = true;

    /* warm-up: the group joined and one epoch stored, clock not started */
    x.t0 = mono();
    if (send_probe(&x, 0) != 0) {
        rc = rg_cli_error(&cli, "probe: %s", rg_producer_last_error());
        goto out;
    }
    rg_producer_flush(x.prod, 10000);
    double until = mono() + 120;
    while (atomic_load_explicit(&x.nseen, memory_order_acquire) < 1 &&
           !atomic_load_explicit(&x.stop, memory_order_relaxed) &&
           mono() < until) {
        if (waitpid(x.run, NULL, WNOHANG) == x.run) {
            x.run = 0; /* died: reaped */
            break;
        }
        nap(0.01);
    }
    if (atomic_load_explicit(&x.nseen, memory_order_acquire) < 1) {
        child_gone(&x, &x.mock, "mock-kafka");
        child_gone(&x, &x.run, "railgun run");
        log_tail(&x, "mock-kafka.log");
        log_tail(&x, "run.log");
        rc = rg_cli_error(&cli, "railgun run never stored the warm-up probe"
                          "%s%s", x.err[0] ? ": " : "", x.err);
        goto out;
    }
    pthread_mutex_lock(&x.mu);
    x.nsamples = 0;
    pthread_mutex_unlock(&x.mu);

    /* the measured phase */
    produce(&x);
    double produce_s = mono() - x.t0;
    uint64_t last = atomic_load_explicit(&x.nsent, memory_order_relaxed);
    until = mono() + (double)o.timeout_s;
    while (atomic_load_explicit(&x.nseen, memory_order_acquire) < last &&
           !atomic_load_explicit(&x.stop, memory_order_relaxed) &&
           mono() < until)
        nap(0.005);
    uint64_t seen = atomic_load_explicit(&x.nseen, memory_order_acquire);
    double e2e_s = seen == last ? x.seen[last - 1] : NAN;
    atomic_store_explicit(&x.stop, 1, memory_order_relaxed);
    pthread_join(poll_th, NULL);
    pthread_join(sample_th, NULL);
    poll_started = sample_started = false;
    if (x.err[0] != '\0') {
        rc = rg_cli_error(&cli, "%s", x.err);
        goto out;
    }
    if (seen < last) {
        child_gone(&x, &x.mock, "mock-kafka");
        child_gone(&x, &x.run, "railgun run");
        log_tail(&x, "mock-kafka.log");
        log_tail(&x, "run.log");
        rc = rg_cli_error(&cli, "%" PRIu64 " of %" PRIu64 " probes reached "
                          "the database in %" PRIu64 " s", seen, last,
                          o.timeout_s);
        goto out;
    }
    int run_rc = stop_child(&x.run);
    if (run_rc != 0) {
        log_tail(&x, "run.log");
        rc = rg_cli_error(&cli, "railgun run exited %d", run_rc);
        goto out;
    }
    rc = report(&x, e2e_s, produce_s);
out:
    atomic_store_explicit(&x.stop, 1, memory_order_relaxed);
    if (poll_started)
        pthread_join(poll_th, NULL);
    if (sample_started)
        pthread_join(sample_th, NULL);
    rg_producer_destroy(x.prod);
    stop_child(&x.run);
    stop_child(&x.mock);
    if (x.dir[0] != '\0' && getenv("KEEP") != NULL && rc != 0)
        fprintf(stderr, "railgun bench e2e: KEEP: logs kept in %s\n", x.dir);
    else if (x.dir[0] != '\0')
        rm_rf(x.dir);
    free(x.sent);
    free(x.seen);
    free(x.at);
    free(x.samples);
    rg_conf_destroy(cli.conf);
    return rc;
}
