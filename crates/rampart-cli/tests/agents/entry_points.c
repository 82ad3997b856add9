/* Every libc entry point that starts a program, allowed and denied, against the real
 * policy server (tests/preload.rs compiles and runs this under `rampart preload`).
 *
 *   entry_points VICTIM
 *
 * The allowed command is `echo <case>` (it prints "<case> ran"); the denied one is
 * `rm -rf VICTIM`, which the seed policy's "rm -rf /<star>" rule blocks. One line per case on
 * stdout: "<case> allow ok" or "<case> deny ok", or what went wrong instead. Exit status
 * is the number of failed cases. Programs are named by absolute path except for the
 * PATH-searching variants, which get the bare name (run with PATH=/usr/bin:/bin). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const char *victim;
static int failures;

static void report(const char *name, const char *what, int ok, const char *detail) {
    if (ok) {
        printf("%s %s ok\n", name, what);
    } else {
        printf("%s %s FAILED: %s\n", name, what, detail);
        failures++;
    }
    fflush(stdout);
}

/* Children report how the call went by exit status. */
enum { RAN = 0, GOT_EPERM = 42, OTHER_ERROR = 43 };

static int returned_eperm(int r) { return r == -1 && errno == EPERM ? GOT_EPERM : OTHER_ERROR; }

/* Runs one exec-family call in a forked child and checks how the child ended. */
static void in_child(const char *name, int deny, int (*call)(int deny)) {
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(20);
        _exit(call(deny));
    }
    int status = 0;
    waitpid(pid, &status, 0);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    char detail[64];
    snprintf(detail, sizeof detail, "child status %d", code);
    report(name, deny ? "deny" : "allow", code == (deny ? GOT_EPERM : RAN), detail);
}

#define ARGV(deny, name) \
    char *argv[] = {deny ? "rm" : "echo", deny ? "-rf" : name " ran", deny ? (char *)victim : NULL, NULL}
#define PROG(deny) (deny ? "/usr/bin/rm" : "/usr/bin/echo")
#define WORD(deny) (deny ? "rm" : "echo")

static int c_execve(int deny) { ARGV(deny, "execve"); return returned_eperm(execve(PROG(deny), argv, environ)); }
static int c_execv(int deny) { ARGV(deny, "execv"); return returned_eperm(execv(PROG(deny), argv)); }
static int c_execvp(int deny) { ARGV(deny, "execvp"); return returned_eperm(execvp(WORD(deny), argv)); }
static int c_execvpe(int deny) { ARGV(deny, "execvpe"); return returned_eperm(execvpe(WORD(deny), argv, environ)); }
static int c_execl(int deny) {
    return returned_eperm(deny ? execl("/usr/bin/rm", "rm", "-rf", victim, (char *)NULL)
                               : execl("/usr/bin/echo", "echo", "execl ran", (char *)NULL));
}
static int c_execlp(int deny) {
    return returned_eperm(deny ? execlp("rm", "rm", "-rf", victim, (char *)NULL)
                               : execlp("echo", "echo", "execlp ran", (char *)NULL));
}
static int c_execle(int deny) {
    char *envp[] = {"FROM_EXECLE=1", NULL};
    return returned_eperm(deny ? execle("/usr/bin/rm", "rm", "-rf", victim, (char *)NULL, envp)
                               : execle("/usr/bin/echo", "echo", "execle ran", (char *)NULL, envp));
}
static int c_fexecve(int deny) {
    ARGV(deny, "fexecve");
    int fd = open(PROG(deny), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return OTHER_ERROR;
    return returned_eperm(fexecve(fd, argv, environ));
}
static int c_execveat(int deny) {
    ARGV(deny, "execveat");
    int dir = open("/usr/bin", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return OTHER_ERROR;
    return returned_eperm(execveat(dir, WORD(deny), argv, environ, 0));
}

/* vfork: the child shares the parent's memory until it execs or exits. */
static void vfork_case(int deny) {
    ARGV(deny, "vfork+execv");
    fflush(stdout);
    volatile int child_errno = 0;
    pid_t pid = vfork();
    if (pid == 0) {
        execv(PROG(deny), argv);
        child_errno = errno;
        _exit(GOT_EPERM);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    int ok = deny ? code == GOT_EPERM && child_errno == EPERM : code == RAN;
    report("vfork+execv", deny ? "deny" : "allow", ok, "wrong child status or errno");
}

/* fork from a parent whose other threads hammer malloc: the child's exec path must not
 * need the malloc lock some thread may have held at fork time. */
static atomic_int spinning = 1;
static void *spin(void *arg) {
    (void)arg;
    while (atomic_load(&spinning)) free(malloc(64 + (rand() & 1023)));
    return NULL;
}

static void threaded_fork_cases(void) {
    pthread_t threads[8];
    for (int i = 0; i < 8; i++) pthread_create(&threads[i], NULL, spin, NULL);
    for (int round = 0; round < 5; round++) {
        in_child("threaded-fork+execv", 1, c_execv);
    }
    in_child("threaded-fork+execv", 0, c_execv);
    atomic_store(&spinning, 0);
    for (int i = 0; i < 8; i++) pthread_join(threads[i], NULL);
}

static void system_case(int deny) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, deny ? "rm -rf %s" : "echo system ran", victim);
    fflush(stdout);
    errno = 0;
    int r = system(cmd);
    report("system", deny ? "deny" : "allow",
           deny ? r == -1 && errno == EPERM : r == 0, "wrong return value or errno");
}

static void popen_case(int deny) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, deny ? "rm -rf %s" : "echo popen ran", victim);
    fflush(stdout);
    errno = 0;
    FILE *f = popen(cmd, "r");
    if (deny) {
        report("popen", "deny", f == NULL && errno == EPERM, "expected NULL and EPERM");
        if (f) pclose(f);
        return;
    }
    char line[64] = "";
    int ok = f && fgets(line, sizeof line, f) && strcmp(line, "popen ran\n") == 0;
    ok = ok && pclose(f) == 0;
    report("popen", "allow", ok, "did not read \"popen ran\"");
}

static void spawn_case(const char *name, int search, int deny) {
    ARGV(deny, "posix_spawn");
    char ran[32];
    if (!deny) {
        snprintf(ran, sizeof ran, "%s ran", name);
        argv[1] = ran;
    }
    fflush(stdout);
    pid_t pid = 0;
    int r = search ? posix_spawnp(&pid, WORD(deny), NULL, NULL, argv, environ)
                   : posix_spawn(&pid, PROG(deny), NULL, NULL, argv, environ);
    if (deny) {
        report(name, "deny", r == EPERM, "expected EPERM as the return value");
        return;
    }
    int status = -1;
    if (r == 0) waitpid(pid, &status, 0);
    report(name, "allow", r == 0 && status == 0, "spawn failed or child failed");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: entry_points VICTIM\n");
        return 100;
    }
    victim = argv[1];
    static const struct {
        const char *name;
        int (*call)(int);
    } execs[] = {
        {"execve", c_execve},   {"execv", c_execv},     {"execvp", c_execvp},
        {"execvpe", c_execvpe}, {"execl", c_execl},     {"execlp", c_execlp},
        {"execle", c_execle},   {"fexecve", c_fexecve}, {"execveat", c_execveat},
    };
    for (size_t i = 0; i < sizeof execs / sizeof execs[0]; i++) {
        in_child(execs[i].name, 0, execs[i].call);
        in_child(execs[i].name, 1, execs[i].call);
    }
    system_case(0);
    system_case(1);
    popen_case(0);
    popen_case(1);
    spawn_case("posix_spawn", 0, 0);
    spawn_case("posix_spawn", 0, 1);
    spawn_case("posix_spawnp", 1, 0);
    spawn_case("posix_spawnp", 1, 1);
    vfork_case(0);
    vfork_case(1);
    threaded_fork_cases();
    return failures;
}
