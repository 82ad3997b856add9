/* Spawns a program N times (posix_spawn + wait) and prints the elapsed nanoseconds.
 * With a library argument, the child gets LD_PRELOAD=<library>; this launcher itself is
 * never preloaded, so only the child's load cost is measured.
 *   spawn_loop N PROGRAM [LIBRARY] */
#define _GNU_SOURCE
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

int main(int argc, char **argv) {
    if (argc < 3) return 2;
    int n = atoi(argv[1]);
    char *prog = argv[2];
    size_t ne = 0;
    while (environ[ne]) ne++;
    char **env = calloc(ne + 2, sizeof *env);
    size_t k = 0;
    for (size_t i = 0; i < ne; i++)
        if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0) env[k++] = environ[i];
    char pre[4200];
    if (argc > 3 && argv[3][0]) {
        snprintf(pre, sizeof pre, "LD_PRELOAD=%s", argv[3]);
        env[k++] = pre;
    }
    env[k] = NULL;
    char *cargv[] = {prog, NULL};
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < n; i++) {
        pid_t pid;
        if (posix_spawn(&pid, prog, NULL, NULL, cargv, env) != 0) return 1;
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%lld\n", (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
    return 0;
}
