/* Round trips of one preflight-sized request over a Unix socket: prints the mean
 * nanoseconds per request/answer. With `taskset` on both ends it shows what waking an
 * idle CPU costs on this machine, for bench/where-the-time-goes.sh.
 *   unix_ping SOCKET TOKEN N */
#define _GNU_SOURCE
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 4) return 2;
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", argv[1]);
    if (connect(s, (void *)&a, sizeof a)) return 1;
    const char *b = "{\"agent\":\"ping\",\"params\":{\"command\":\"/bin/true\"},\"argv\":[\"/bin/true\"],"
                    "\"exe\":\"/bin/true\",\"cwd\":\"/tmp\",\"pid\":1,\"ppid\":1,\"via\":\"posix_spawn\"}";
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "POST /v1/preflight/exec HTTP/1.1\r\nHost: rampart\r\nAuthorization: Bearer %s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
                     argv[2], strlen(b), b);
    char buf[4096];
    int count = atoi(argv[3]);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < count; i++) {
        if (send(s, req, n, MSG_NOSIGNAL) != n) return 1;
        struct pollfd p = {s, POLLIN, 0};
        if (poll(&p, 1, 2000) != 1 || recv(s, buf, sizeof buf, 0) <= 0) return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("%lld\n", ((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec)) / count);
    return 0;
}
