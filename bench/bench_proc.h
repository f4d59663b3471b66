/*
 * A process's memory and CPU time from /proc: what `--pid` samples before and after a run.
 * Linux only; reads /proc/PID/status and /proc/PID/stat, nothing else.
 */
#ifndef ORDINAL_BENCH_PROC_H
#define ORDINAL_BENCH_PROC_H

#include <stdint.h>
#include <sys/types.h>

struct proc_sample {
    int64_t vm_rss_kib;   /* VmRSS: resident, shared libraries included */
    int64_t rss_anon_kib; /* RssAnon: private anonymous memory (heap, stacks) */
    int64_t rss_file_kib; /* RssFile: resident file pages (mostly libraries) */
    int64_t vm_hwm_kib;   /* VmHWM: peak VmRSS */
    int64_t threads;
    double cpu_s; /* utime + stime, seconds */
};

/* Samples pid into *ret. Returns 0, -ESRCH when the process is gone, -EIO when a file does not
 * parse. *ret is written only on success. */
int proc_sample(pid_t pid, struct proc_sample *ret);

/* Parses the text of /proc/PID/status (borrowed, NUL-terminated) into the memory fields of
 * *ret (the others untouched). -EIO when VmRSS is missing. */
int proc_parse_status(const char *text, struct proc_sample *ret);

/* Parses the text of /proc/PID/stat into ret->cpu_s (ticks_per_s from sysconf). -EIO on a
 * malformed line. */
int proc_parse_stat(const char *text, long ticks_per_s, struct proc_sample *ret);

/* User + system CPU of this process (all its threads) so far, seconds. */
double self_cpu_s(void);

/* How busy the machine is, so that a report says what else was running: the 1-minute load
 * average and the PSI "some avg10" of CPU and I/O (-1 where the kernel has no PSI). */
struct machine_sample {
    double load1;
    double cpu_some_avg10, io_some_avg10;
    long cores;
};

/* Never fails: what cannot be read is -1. */
void machine_sample(struct machine_sample *ret);

#endif
