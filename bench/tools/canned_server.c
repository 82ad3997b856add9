/* A policy server that answers every request with the same allow, at once: no
 * authentication, no policy, no audit. It is the floor of an out-of-process check on
 * this machine (what the round trip alone costs), for bench/where-the-time-goes.sh.
 *   canned_server SOCKET_PATH      (serves until killed) */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static const char body[] =
    "{\"allowed\":true,\"decision\":\"allow\",\"message\":\"\",\"matched_policies\":[],"
    "\"eval_duration_us\":1,\"audit_id\":\"canned\"}";
static char resp[512];
static int rlen;

static void *serve(void *arg) {
    int c = (int)(long)arg;
    static __thread char buf[65536];
    int have = 0;
    for (;;) {
        int n = read(c, buf + have, sizeof buf - 1 - have);
        if (n <= 0) break;
        have += n;
        for (;;) {
            buf[have] = 0;
            char *end = strstr(buf, "\r\n\r\n");
            if (!end) break;
            char *cl = strcasestr(buf, "content-length:");
            int len = cl && cl < end ? atoi(cl + 15) : 0;
            int total = (int)(end - buf) + 4 + len;
            if (have < total) break;
            if (write(c, resp, rlen) != rlen) goto out;
            memmove(buf, buf + total, have - total);
            have -= total;
        }
        if (have >= (int)sizeof buf - 1) break;
    }
out:
    close(c);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    rlen = snprintf(resp, sizeof resp,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %zu\r\n\r\n%s",
                    strlen(body), body);
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", argv[1]);
    unlink(argv[1]);
    if (bind(s, (void *)&a, sizeof a) || listen(s, 128)) return 1;
    for (;;) {
        int c = accept(s, 0, 0);
        if (c < 0) continue;
        pthread_t t;
        if (pthread_create(&t, 0, serve, (void *)(long)c) == 0) pthread_detach(t);
        else close(c);
    }
}
