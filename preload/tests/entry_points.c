/* Contract tests for librampart.so: every intercepted entry point, allowed and denied,
 * plus the hard cases (vfork, fork from a threaded parent, environment re-injection,
 * errno, PATH search, a 1 MiB argv).
 *
 * Run with the library preloaded and a fake policy server (tests/fake_server.py) in
 * "normal" mode: commands containing "denyme" are denied, everything else allowed.
 *   LD_PRELOAD=.../librampart.so RAMPART_URL=... ./entry_points LOGFILE LIBPATH
 * LOGFILE is the server's request log; each test asserts how many requests it caused and
 * what the last one said. Output ends with "N passed, N failed". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *LOG;
static const char *LIB;
static int passed, failed;

/* Allowed: a shell that exits 42 (proves the exec really happened).
 * Denied: echo with the deny marker; the child exits 77 when the call failed with EPERM,
 * 78 on any other failure, and 0 if echo ran. */
#define ALLOW_ARGV ((char *const[]){"sh", "-c", "exit 42", NULL})
#define DENY_ARGV ((char *const[]){"echo", "denyme", NULL})
#define DENIED(rc) ((rc) == -1 && errno == EPERM ? 77 : 78)

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 >= cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

static int log_lines(void) {
    char *s = slurp(LOG, NULL);
    int n = 0;
    if (s)
        for (char *p = s; *p; p++) n += *p == '\n';
    free(s);
    return n;
}

/* The last log line (caller frees). */
static char *last_line(void) {
    size_t n;
    char *s = slurp(LOG, &n);
    if (!s || n == 0) return s;
    s[n - 1] = 0;
    char *nl = strrchr(s, '\n');
    char *line = strdup(nl ? nl + 1 : s);
    free(s);
    return line;
}

static void check(int ok, const char *name, const char *fmt, ...) {
    if (ok) {
        passed++;
        printf("ok   %s\n", name);
        return;
    }
    failed++;
    printf("FAIL %s: ", name);
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

/* Runs fn in a forked child and checks its exit status, the number of policy requests
 * and that the last request mentions `want` (e.g. "\"via\": \"execve\""). */
static void run(const char *name, int (*fn)(void), int want_status, int want_requests,
                const char *want) {
    int before = log_lines();
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) _exit(fn());
    int st = 0;
    waitpid(pid, &st, 0);
    int status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    int requests = log_lines() - before;
    char *last = last_line();
    int has = !want || (last && strstr(last, want));
    check(status == want_status && requests == want_requests && has, name,
          "status %d (want %d), requests %d (want %d), last request %s %s", status,
          want_status, requests, want_requests, has ? "ok" : "lacks", want ? want : "");
    free(last);
}

/* ---- the 13 entry points ---- */
static int t_execve_allow(void) { return DENIED(execve("/bin/sh", ALLOW_ARGV, environ)); }
static int t_execve_deny(void) { return DENIED(execve("/bin/echo", DENY_ARGV, environ)); }
static int t_execv_allow(void) { return DENIED(execv("/bin/sh", ALLOW_ARGV)); }
static int t_execv_deny(void) { return DENIED(execv("/bin/echo", DENY_ARGV)); }
static int t_execvp_allow(void) { return DENIED(execvp("sh", ALLOW_ARGV)); }
static int t_execvp_deny(void) { return DENIED(execvp("echo", DENY_ARGV)); }
static int t_execvpe_allow(void) { return DENIED(execvpe("sh", ALLOW_ARGV, environ)); }
static int t_execvpe_deny(void) { return DENIED(execvpe("echo", DENY_ARGV, environ)); }
static int t_execl_allow(void) { return DENIED(execl("/bin/sh", "sh", "-c", "exit 42", (char *)0)); }
static int t_execl_deny(void) { return DENIED(execl("/bin/echo", "echo", "denyme", (char *)0)); }
static int t_execlp_allow(void) { return DENIED(execlp("sh", "sh", "-c", "exit 42", (char *)0)); }
static int t_execlp_deny(void) { return DENIED(execlp("echo", "echo", "denyme", (char *)0)); }
static int t_execle_allow(void) {
    return DENIED(execle("/bin/sh", "sh", "-c", "exit 42", (char *)0, environ));
}
static int t_execle_deny(void) {
    return DENIED(execle("/bin/echo", "echo", "denyme", (char *)0, environ));
}
static int t_fexecve_allow(void) {
    int fd = open("/bin/sh", O_RDONLY);
    return DENIED(fexecve(fd, ALLOW_ARGV, environ));
}
static int t_fexecve_deny(void) {
    int fd = open("/bin/echo", O_RDONLY);
    return DENIED(fexecve(fd, DENY_ARGV, environ));
}
static int t_execveat_allow(void) {
    return DENIED(execveat(AT_FDCWD, "/bin/sh", ALLOW_ARGV, environ, 0));
}
static int t_execveat_deny(void) {
    return DENIED(execveat(AT_FDCWD, "/bin/echo", DENY_ARGV, environ, 0));
}
static int t_execveat_empty_path_deny(void) {
    int fd = open("/bin/echo", O_RDONLY);
    return DENIED(execveat(fd, "", DENY_ARGV, environ, AT_EMPTY_PATH));
}
static int t_execveat_dirfd_allow(void) {
    int dir = open("/bin", O_RDONLY | O_DIRECTORY);
    return DENIED(execveat(dir, "sh", ALLOW_ARGV, environ, 0));
}
static int t_system_allow(void) {
    int rc = system("exit 42");
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 78;
}
static int t_system_deny(void) { return DENIED(system("echo denyme")); }
static int t_popen_allow(void) {
    FILE *f = popen("echo popen-ok", "r");
    if (!f) return 78;
    char buf[64] = {0};
    fgets(buf, sizeof buf, f);
    pclose(f);
    return strcmp(buf, "popen-ok\n") == 0 ? 42 : 79;
}
static int t_popen_deny(void) {
    FILE *f = popen("echo denyme", "r");
    return f == NULL && errno == EPERM ? 77 : 78;
}
static int spawn_status(int rc, pid_t pid) {
    if (rc != 0) return rc == EPERM ? 77 : 78;
    int st;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 79;
}
static int t_posix_spawn_allow(void) {
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/sh", NULL, NULL, ALLOW_ARGV, environ);
    return spawn_status(rc, pid);
}
static int t_posix_spawn_deny(void) {
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/echo", NULL, NULL, DENY_ARGV, environ);
    return spawn_status(rc, pid);
}
static int t_posix_spawnp_allow(void) {
    pid_t pid;
    int rc = posix_spawnp(&pid, "sh", NULL, NULL, ALLOW_ARGV, environ);
    return spawn_status(rc, pid);
}
static int t_posix_spawnp_deny(void) {
    pid_t pid;
    int rc = posix_spawnp(&pid, "echo", NULL, NULL, DENY_ARGV, environ);
    return spawn_status(rc, pid);
}

/* ---- hard cases ---- */
static int t_vfork_execv(void) {
    /* The child reports through its exit status only (valgrind turns vfork into fork). */
    pid_t pid = vfork();
    if (pid == 0) {
        int rc = execv("/bin/echo", DENY_ARGV);
        _exit(DENIED(rc));
    }
    int st;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 77) return 78;
    pid = vfork();
    if (pid == 0) {
        execv("/bin/sh", ALLOW_ARGV);
        _exit(78);
    }
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 79;
}

static volatile int spinning = 1;
static void *spin(void *arg) {
    (void)arg;
    while (spinning) {
        void *p = malloc(64 + (rand() & 1023));
        free(p);
    }
    return NULL;
}
static int t_threaded_fork(void) {
    pthread_t th[8];
    for (int i = 0; i < 8; i++) pthread_create(&th[i], NULL, spin, NULL);
    int result = 42;
    for (int round = 0; round < 20 && result == 42; round++) {
        pid_t pid = fork();
        if (pid == 0) {
            if (DENIED(execv("/bin/echo", DENY_ARGV)) != 77) _exit(78);
            execv("/bin/sh", ALLOW_ARGV);
            _exit(79);
        }
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 42) result = 80;
    }
    spinning = 0;
    for (int i = 0; i < 8; i++) pthread_join(th[i], NULL);
    return result;
}

/* Runs a shell snippet through `how` with stdout captured; 42 if the output contains
 * every needle. */
static int env_probe(int how, const char *needle1, const char *needle2) {
    int fds[2];
    if (pipe(fds) != 0) return 78;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        char *argv[] = {"sh", "-c", "echo \"LD=$LD_PRELOAD MODE=$RAMPART_MODE SESSION=$RAMPART_SESSION\"", NULL};
        char *empty[] = {NULL};
        if (how == 0) execve("/bin/sh", argv, empty);
        if (how == 1) {
            unsetenv("LD_PRELOAD");
            execv("/bin/sh", argv);
        }
        if (how == 2) {
            setenv("RAMPART_MODE", "disabled", 1);
            execv("/bin/sh", argv);
        }
        if (how == 3) {
            clearenv();
            system(argv[2]);
            _exit(0);
        }
        _exit(78);
    }
    close(fds[1]);
    char out[8192] = {0};
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], out + n, sizeof out - 1 - n)) > 0) n += r;
    close(fds[0]);
    waitpid(pid, NULL, 0);
    int ok = strstr(out, needle1) && (!needle2 || strstr(out, needle2));
    if (!ok) fprintf(stderr, "  probe output: %s", out);
    return ok ? 42 : 79;
}
static char want_ld[4200];
static int t_empty_envp(void) { return env_probe(0, want_ld, "MODE=enforce SESSION=entry-points"); }
static int t_unset_preload(void) { return env_probe(1, want_ld, "MODE=enforce"); }
static int t_mode_disabled_later(void) { return env_probe(2, want_ld, "MODE=enforce"); }
static int t_system_cleared_env(void) { return env_probe(3, want_ld, "MODE=enforce"); }
static int t_unset_preload_still_checked(void) {
    unsetenv("LD_PRELOAD");
    return DENIED(execv("/bin/echo", DENY_ARGV));
}
static int t_disabled_later_still_checked(void) {
    setenv("RAMPART_MODE", "disabled", 1);
    return DENIED(execv("/bin/echo", DENY_ARGV));
}

static int t_errno_preserved(void) {
    pid_t pid;
    errno = 4242;
    int rc = posix_spawn(&pid, "/bin/sh", NULL, NULL, ALLOW_ARGV, environ);
    int e = errno;
    if (rc != 0) return 78;
    waitpid(pid, NULL, 0);
    if (e != 4242) {
        fprintf(stderr, "  errno after allowed posix_spawn: %d\n", e);
        return 79;
    }
    errno = 4242;
    rc = system("exit 42");
    e = errno;
    if (e != 4242) {
        fprintf(stderr, "  errno after allowed system: %d\n", e);
        return 80;
    }
    return WEXITSTATUS(rc);
}
static int t_execvp_path_once(void) {
    setenv("PATH", "/nonexistent-a:/nonexistent-b/x:/etc:/usr/bin:/bin", 1);
    return DENIED(execvp("sh", ALLOW_ARGV));
}
static int t_execvp_missing_not_asked(void) {
    int rc = execvp("rampart-no-such-program", DENY_ARGV);
    return rc == -1 && errno == ENOENT ? 42 : 78;
}
static int t_execve_missing_not_asked(void) {
    int rc = execve("/nonexistent/echo", DENY_ARGV, environ);
    return rc == -1 && errno == ENOENT ? 42 : 78;
}
static int t_eacces_kept(void) {
    /* A file that exists but is not executable: asked (it exists), allowed by the
     * server, then the real execve fails with EACCES exactly as without Rampart. */
    char path[64];
    snprintf(path, sizeof path, "/tmp/rampart-noexec-%d", (int)getpid());
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    if (fd < 0) return 80;
    close(fd);
    int rc = execve(path, ALLOW_ARGV, environ);
    int e = errno;
    unlink(path);
    return rc == -1 && e == EACCES ? 42 : 78;
}

#define BIG_ARGS 11
#define BIG_LEN (100 * 1024)
static int t_big_argv(void) {
    char *argv[BIG_ARGS + 3];
    argv[0] = "echo";
    argv[1] = "denyme";
    for (int i = 0; i < BIG_ARGS; i++) {
        argv[i + 2] = malloc(BIG_LEN + 1);
        memset(argv[i + 2], 'a' + i, BIG_LEN);
        argv[i + 2][BIG_LEN] = 0;
    }
    argv[BIG_ARGS + 2] = NULL;
    return DENIED(execv("/bin/echo", argv));
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s SERVER_LOG LIBRARY_PATH\n", argv[0]);
        return 2;
    }
    LOG = argv[1];
    LIB = argv[2];
    snprintf(want_ld, sizeof want_ld, "LD=%s", LIB);
    setvbuf(stdout, NULL, _IOLBF, 0);

    run("execve allow", t_execve_allow, 42, 1, "\"via\": \"execve\"");
    run("execve deny", t_execve_deny, 77, 1, "\"via\": \"execve\"");
    run("execv allow", t_execv_allow, 42, 1, "\"via\": \"execv\"");
    run("execv deny", t_execv_deny, 77, 1, "\"via\": \"execv\"");
    run("execvp allow", t_execvp_allow, 42, 1, "\"via\": \"execvp\"");
    run("execvp deny", t_execvp_deny, 77, 1, "\"exe\": \"/usr/bin/echo\"");
    run("execvpe allow", t_execvpe_allow, 42, 1, "\"via\": \"execvpe\"");
    run("execvpe deny", t_execvpe_deny, 77, 1, "\"via\": \"execvpe\"");
    run("execl allow", t_execl_allow, 42, 1, "\"via\": \"execl\"");
    run("execl deny", t_execl_deny, 77, 1, "\"command\": \"echo denyme\"");
    run("execlp allow", t_execlp_allow, 42, 1, "\"via\": \"execlp\"");
    run("execlp deny", t_execlp_deny, 77, 1, "\"via\": \"execlp\"");
    run("execle allow", t_execle_allow, 42, 1, "\"via\": \"execle\"");
    run("execle deny", t_execle_deny, 77, 1, "\"via\": \"execle\"");
    run("fexecve allow", t_fexecve_allow, 42, 1, "\"via\": \"fexecve\"");
    run("fexecve deny", t_fexecve_deny, 77, 1, "\"exe\": \"/usr/bin/echo\"");
    run("execveat allow", t_execveat_allow, 42, 1, "\"via\": \"execveat\"");
    run("execveat deny", t_execveat_deny, 77, 1, "\"via\": \"execveat\"");
    run("execveat AT_EMPTY_PATH deny", t_execveat_empty_path_deny, 77, 1, "\"exe\": \"/usr/bin/echo\"");
    run("execveat dirfd allow", t_execveat_dirfd_allow, 42, 1, "\"exe\": \"/usr/bin/sh\"");
    run("system allow", t_system_allow, 42, 1, "\"argv\": [\"sh\", \"-c\", \"exit 42\"]");
    run("system deny", t_system_deny, 77, 1, "\"via\": \"system\"");
    run("popen allow", t_popen_allow, 42, 1, "\"via\": \"popen\"");
    run("popen deny", t_popen_deny, 77, 1, "\"exe\": \"/bin/sh\"");
    run("posix_spawn allow", t_posix_spawn_allow, 42, 1, "\"via\": \"posix_spawn\"");
    run("posix_spawn deny", t_posix_spawn_deny, 77, 1, "\"via\": \"posix_spawn\"");
    run("posix_spawnp allow", t_posix_spawnp_allow, 42, 1, "\"via\": \"posix_spawnp\"");
    run("posix_spawnp deny", t_posix_spawnp_deny, 77, 1, "\"via\": \"posix_spawnp\"");

    run("vfork + execv deny and allow", t_vfork_execv, 42, 2, "\"via\": \"execv\"");
    run("fork from 8 malloc-spinning threads, 20 rounds", t_threaded_fork, 42, 40, NULL);
    /* The child shell is preloaded too and reports nothing itself: 1 request. */
    run("empty envp gets library and snapshot", t_empty_envp, 42, 1, NULL);
    run("unsetenv(LD_PRELOAD) child still preloaded", t_unset_preload, 42, 1, NULL);
    run("setenv RAMPART_MODE=disabled child gets enforce", t_mode_disabled_later, 42, 1, NULL);
    run("system() after clearenv() re-injects", t_system_cleared_env, 42, 1, "\"via\": \"system\"");
    run("unsetenv(LD_PRELOAD) then exec still checked", t_unset_preload_still_checked, 77, 1, NULL);
    run("RAMPART_MODE=disabled later still checked", t_disabled_later_still_checked, 77, 1, NULL);
    run("errno preserved on allow", t_errno_preserved, 42, 2, NULL);
    run("execvp through missing PATH dirs asks once", t_execvp_path_once, 42, 1, "\"exe\": \"/usr/bin/sh\"");
    run("execvp of a missing program asks nobody", t_execvp_missing_not_asked, 42, 0, NULL);
    run("execve of a missing path asks nobody", t_execve_missing_not_asked, 42, 0, NULL);
    run("execve of a non-executable file keeps EACCES", t_eacces_kept, 42, 1, NULL);

    int before = log_lines();
    run("1 MiB argv is checked whole", t_big_argv, 77, 1, "\"via\": \"execv\"");
    (void)before;
    char *last = last_line();
    long cl = 0;
    char *p = last ? strstr(last, "\"content_length\": ") : NULL;
    if (p) cl = strtol(p + 18, NULL, 10);
    /* command and argv each carry all 11 x 100 KiB */
    check(cl > 2L * BIG_ARGS * BIG_LEN, "1 MiB argv arrives in full", "content_length %ld", cl);
    char tail[64];
    snprintf(tail, sizeof tail, "%c%c%c\"]", 'a' + BIG_ARGS - 1, 'a' + BIG_ARGS - 1, 'a' + BIG_ARGS - 1);
    check(last && strstr(last, tail), "1 MiB argv last word intact", "missing %s", tail);
    free(last);

    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
