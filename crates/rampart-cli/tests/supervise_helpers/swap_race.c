/* Measures the argument-swap race of `rampart supervise` (README, "Honest limits").
 *
 *     swap_race N
 *
 * Makes a temp dir holding two copies of itself, `allow` (does nothing) and `touch`
 * (appends one byte to its first argument: the marker), then N times: fork; in the child
 * a second thread flips the path buffer between DIR/allow and DIR/touch as fast as it can
 * while the main thread calls execve(buffer, {"allow", MARKER}). The supervisor decides on
 * what it read; the kernel runs what is in the buffer when it resumes. Under a policy that
 * denies `touch`, every byte in the marker is a denied program that ran.
 *
 * Prints one line: attempts=N denied_ran=D allowed_ran=A refused=R missing=M other=O
 * (missing: the kernel or the supervisor read a torn name, ENOENT). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static char path[4096];
static size_t name_at; /* offset of the 5-byte program name in `path` */

static void *flip(void *unused) {
    (void)unused;
    volatile char *name = path + name_at;
    for (;;) {
        for (int i = 0; i < 5; i++) name[i] = "touch"[i];
        for (int i = 0; i < 5; i++) name[i] = "allow"[i];
    }
    return NULL;
}

static int copy_self(const char *to) {
    int src = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    int dst = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
    struct stat st;
    if (src < 0 || dst < 0 || fstat(src, &st) != 0) return -1;
    off_t off = 0;
    while (off < st.st_size)
        if (sendfile(dst, src, &off, st.st_size - off) <= 0) return -1;
    close(src);
    return close(dst);
}

/* Started as `allow` or `touch`: the fake programs. */
static int fake(int argc, char **argv) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) return -1;
    self[n] = 0;
    const char *base = strrchr(self, '/') ? strrchr(self, '/') + 1 : self;
    if (!strcmp(base, "allow")) return 0;
    if (strcmp(base, "touch")) return -1;
    if (argc < 2) return 1;
    int fd = open(argv[1], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0 || write(fd, "x", 1) != 1) return 1;
    return close(fd) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    int faked = fake(argc, argv);
    if (faked >= 0) return faked;
    if (argc != 2 || atoi(argv[1]) <= 0) {
        fprintf(stderr, "usage: swap_race N\n");
        return 2;
    }
    int n = atoi(argv[1]);
    char dir[] = "/tmp/swap_race-XXXXXX", allow[64], touch[64], marker[64];
    if (!mkdtemp(dir)) return perror("mkdtemp"), 1;
    snprintf(allow, sizeof allow, "%s/allow", dir);
    snprintf(touch, sizeof touch, "%s/touch", dir);
    snprintf(marker, sizeof marker, "%s/marker", dir);
    if (copy_self(allow) != 0 || copy_self(touch) != 0) return perror("copy"), 1;
    snprintf(path, sizeof path, "%s", allow);
    name_at = strlen(dir) + 1;

    int allowed_ran = 0, refused = 0, missing = 0, other = 0;
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            pthread_t t;
            char *args[] = {"allow", marker, NULL};
            if (pthread_create(&t, NULL, flip, NULL) != 0) _exit(79);
            syscall(SYS_execve, path, args, environ);
            _exit(errno == EPERM ? 77 : errno == ENOENT ? 80 : 79);
        }
        int status;
        if (pid < 0 || waitpid(pid, &status, 0) != pid) return perror("fork"), 1;
        int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
        if (code == 0) allowed_ran++;
        else if (code == 77) refused++;
        else if (code == 80) missing++;
        else other++;
    }
    struct stat st;
    int denied_ran = stat(marker, &st) == 0 ? (int)st.st_size : 0;
    /* A run of `touch` exits 0 too: count it once, as denied. */
    allowed_ran -= denied_ran;
    printf("attempts=%d denied_ran=%d allowed_ran=%d refused=%d missing=%d other=%d\n", n,
           denied_ran, allowed_ran, refused, missing, other);
    unlink(allow);
    unlink(touch);
    unlink(marker);
    rmdir(dir);
    return 0;
}
