/* Test helper for `rampart supervise`, built with `gcc -static` so that the preload
 * library could never see it. Each mode starts PROGRAM ARGS... a different way, bypassing
 * libc's exec wrappers where it can. When the exec fails it prints one line and exits
 * 77 (EPERM), 78 (ENOSYS) or 79 (anything else). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int failed(const char *mode) {
    int e = errno;
    fprintf(stderr, "exec_helper: %s: %s\n", mode, strerror(e));
    return e == EPERM ? 77 : e == ENOSYS ? 78 : 79;
}

static int run(const char *mode, char **argv) {
    char *empty[] = {NULL};
    if (!strcmp(mode, "execve")) {
        syscall(SYS_execve, argv[0], argv, environ);
    } else if (!strcmp(mode, "execveat")) {
        syscall(SYS_execveat, AT_FDCWD, argv[0], argv, environ, 0);
    } else if (!strcmp(mode, "noenv")) {
        syscall(SYS_execve, argv[0], argv, empty);
    } else if (!strcmp(mode, "nodump")) {
        prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
        syscall(SYS_execve, argv[0], argv, environ);
    } else if (!strcmp(mode, "memfd")) {
        int src = open(argv[0], O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (src < 0 || fstat(src, &st) != 0) return failed("open");
        int fd = memfd_create("payload", MFD_CLOEXEC);
        if (fd < 0) return failed("memfd_create");
        off_t off = 0;
        while (off < st.st_size)
            if (sendfile(fd, src, &off, st.st_size - off) <= 0) return failed("sendfile");
        fexecve(fd, argv, environ);
    } else if (!strcmp(mode, "fork")) {
        /* The exec happens in a child; the parent reports the child's result. */
        pid_t pid = fork();
        if (pid == 0) {
            syscall(SYS_execve, argv[0], argv, environ);
            _exit(failed("fork+execve"));
        }
        int status;
        waitpid(pid, &status, 0);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    } else if (!strcmp(mode, "wait")) {
        /* Wait for a line on stdin (the test kills the supervisor meanwhile), then exec. */
        char line[16];
        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin)) return 79;
        syscall(SYS_execve, argv[0], argv, environ);
    } else {
        fprintf(stderr, "exec_helper: unknown mode %s\n", mode);
        return 2;
    }
    return failed(mode);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: exec_helper MODE PROGRAM [ARGS...]\n");
        return 2;
    }
    return run(argv[1], argv + 2);
}
