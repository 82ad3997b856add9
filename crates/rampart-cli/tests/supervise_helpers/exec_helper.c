/* Test helper for `rampart supervise`, built with `gcc -static` so that the preload
 * library could never see it. Each mode starts PROGRAM ARGS... a different way, bypassing
 * libc's exec wrappers where it can. When the exec fails it prints one line and exits
 * 77 (EPERM), 78 (ENOSYS) or 79 (anything else).
 *
 * Copied under the name `touch` it is a fake touch (creates each ARG, appending one byte
 * if it exists: the tests count how often a denied program ran); under the name `allow`
 * it does nothing and exits 0. The name is that of /proc/self/exe (argv[0] where there is
 * no /proc), so a race that swaps only the path is counted right. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
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
    } else if (!strcmp(mode, "chroot")) {
        /* chroot DIR PROGRAM ARGS: in a new user and mount namespace (no privilege needed),
         * chroot into DIR and exec PROGRAM as given (a relative name means DIR's file). */
        if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) return failed("unshare");
        if (chroot(argv[0]) != 0) return failed("chroot");
        if (chdir("/") != 0) return failed("chdir");
        syscall(SYS_execve, argv[1], argv + 1, environ);
    } else if (!strcmp(mode, "loop")) {
        /* loop N PROGRAM ARGS: N times fork + execve; prints how each attempt ended. */
        int n = atoi(argv[0]), ran = 0, refused = 0, missing = 0, other = 0;
        for (int i = 0; i < n; i++) {
            pid_t pid = fork();
            if (pid == 0) {
                syscall(SYS_execve, argv[1], argv + 1, environ);
                _exit(errno == EPERM ? 77 : errno == ENOENT ? 80 : 79);
            }
            int status;
            if (pid < 0 || waitpid(pid, &status, 0) != pid) return failed("fork");
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
            if (code == 0) ran++;
            else if (code == 77) refused++;
            else if (code == 80) missing++;
            else other++;
        }
        printf("ran=%d refused=%d missing=%d other=%d\n", ran, refused, missing, other);
        return 0;
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

/* The fake programs: what this binary does when it was started under another name. */
static int fake(int argc, char **argv) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) {
        /* No /proc (inside a chroot): argv[0] is all there is. */
        if (argc < 1 || strlen(argv[0]) >= sizeof self) return -1;
        strcpy(self, argv[0]);
    } else {
        self[n] = 0;
    }
    const char *base = strrchr(self, '/') ? strrchr(self, '/') + 1 : self;
    if (!strcmp(base, "allow")) return 0;
    if (strcmp(base, "touch")) return -1;
    for (int i = 1; i < argc; i++) {
        int fd = open(argv[i], O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0 || write(fd, "x", 1) != 1) return 1;
        close(fd);
    }
    return 0;
}

int main(int argc, char **argv) {
    int faked = fake(argc, argv);
    if (faked >= 0) return faked;
    if (argc < 3) {
        fprintf(stderr, "usage: exec_helper MODE PROGRAM [ARGS...]\n");
        return 2;
    }
    return run(argv[1], argv + 2);
}
