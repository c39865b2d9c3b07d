/* Runs one command and reports what it cost, for Strata's benchmark harness (bench/harness.py).
 *
 *   rusage OUT CMD [ARG...]
 *
 * Forks, execs CMD (stdin, stdout and stderr are passed through), waits for it with wait4 and
 * writes one JSON line to the file OUT:
 *   {"rc": N, "signal": N, "wall_s": S, "utime_s": S, "stime_s": S, "maxrss_kib": N}
 * and exits with the command's exit code (128 + the signal if a signal ended it).
 *
 * Why a separate program: on Linux a forked child's ru_maxrss starts at its parent's resident
 * size and is carried across exec, so a command started straight from the harness (a Python
 * process holding DuckDB and pyarrow) would report at least the harness's own peak. Started
 * from this small program it starts from about a megabyte.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double seconds(struct timeval tv) { return (double)tv.tv_sec + (double)tv.tv_usec / 1e6; }

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: rusage OUT CMD [ARG...]\n");
        return 125;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    pid_t pid = fork();
    if (pid < 0) {
        perror("rusage: fork");
        return 125;
    }
    if (pid == 0) {
        execvp(argv[2], argv + 2);
        perror(argv[2]);
        _exit(127);
    }
    int status = 0;
    struct rusage ru;
    if (wait4(pid, &status, 0, &ru) < 0) {
        perror("rusage: wait4");
        return 125;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    int rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    int sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    FILE *out = fopen(argv[1], "w");
    if (!out) {
        perror(argv[1]);
        return 125;
    }
    fprintf(out,
            "{\"rc\": %d, \"signal\": %d, \"wall_s\": %.6f, \"utime_s\": %.6f, \"stime_s\": %.6f, "
            "\"maxrss_kib\": %ld}\n",
            rc, sig, wall, seconds(ru.ru_utime), seconds(ru.ru_stime), ru.ru_maxrss);
    fclose(out);
    return rc;
}
