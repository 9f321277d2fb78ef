/* The open-loop fixed-rate generator of bench/fixed_rate.py, in C, so that the generator costs
 * next to nothing beside what it measures (bench/use_latency.py builds it with the system's cc;
 * bench/fixed_rate.py is the fallback, and says the same things).
 *
 *   fixed_rate HOST PORT PATH RATE SECONDS WARMUP CONNECTIONS METHOD [HEADER ...]
 *
 * Request i is due at start + i / RATE; its latency is measured from that time (no coordinated
 * omission). A due request goes out on an idle keep-alive connection, or waits in line for one.
 * A timerfd wakes the loop at each due time (microsecond precision, where epoll's timeout has
 * milliseconds). Answers are framed by Content-Length or chunked encoding. One line of output:
 * FIXEDRATE {"rate", "seconds", "sent", "answered", "non_2xx", "errors", "late", "p50_ms", ...}.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define BUF 262144
#define LATE_NS 1000000LL

typedef struct {
    int fd, alive, busy, header_done, chunked;
    int64_t due, left;
    int status;
    size_t len;
    char *buf;
} conn_t;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static char *request;
static size_t request_len;
static int64_t *lat, record_from, *waiting;
static long n_lat, sent, non_2xx, errors, late, outstanding, w_head, w_tail;
static conn_t *conns;
static int *idle, n_idle;

static void send_on(conn_t *c, int64_t due, int64_t now) {
    if (due >= record_from && now - due > LATE_NS) late++;
    c->busy = 1; c->due = due; c->len = 0; c->header_done = 0; c->chunked = 0; c->left = 0; c->status = 0;
    size_t off = 0;
    while (off < request_len) {
        ssize_t n = write(c->fd, request + off, request_len - off);
        if (n < 0) { if (errno == EAGAIN) continue; c->alive = 0; errors += due >= record_from; outstanding--; return; }
        off += (size_t)n;
    }
}

static void next_or_idle(int i, int64_t now) {
    if (w_head < w_tail) send_on(&conns[i], waiting[w_head++], now);
    else idle[n_idle++] = i;
}

/* 1: the answer is complete. Consumes c->buf as it goes. */
static int parse(conn_t *c) {
    if (!c->header_done) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end) return 0;
        *end = 0;
        c->status = atoi(strchr(c->buf, ' ') + 1);
        for (char *line = strstr(c->buf, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
            char *h = line + 2;
            if (!strncasecmp(h, "content-length:", 15)) c->left = atoll(h + 15);
            else if (!strncasecmp(h, "transfer-encoding:", 18) && strcasestr(h, "chunked")) c->chunked = 1;
        }
        size_t head = (size_t)(end - c->buf) + 4;
        memmove(c->buf, c->buf + head, c->len - head);
        c->len -= head;
        c->header_done = 1;
    }
    if (!c->chunked) {
        c->left -= (int64_t)c->len;
        c->len = 0;
        return c->left <= 0;
    }
    for (;;) {
        char *eol = memmem(c->buf, c->len, "\r\n", 2);
        if (!eol) return 0;
        long size = strtol(c->buf, NULL, 16);
        size_t need = (size_t)(eol - c->buf) + 2 + (size_t)size + 2;
        if (c->len < need) return 0;
        memmove(c->buf, c->buf + need, c->len - need);
        c->len -= need;
        if (size == 0) return 1;
    }
}

static double ms(long pct) {
    if (!n_lat) return -1;
    long rank = (long)((pct * n_lat + 999) / 1000);
    if (rank < 1) rank = 1;
    return lat[rank - 1] / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 9) { fprintf(stderr, "usage: fixed_rate HOST PORT PATH RATE SECONDS WARMUP CONNECTIONS METHOD [HEADER...]\n"); return 2; }
    const char *host = argv[1], *path = argv[3], *method = argv[8];
    int port = atoi(argv[2]), nconn = atoi(argv[7]);
    double rate = atof(argv[4]), seconds = atof(argv[5]), warmup = atof(argv[6]);
    size_t cap = 4096;
    for (int i = 9; i < argc; i++) cap += strlen(argv[i]) + 2;
    request = malloc(cap);
    int n = snprintf(request, cap, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n", method, path, host, port);
    for (int i = 9; i < argc; i++) n += snprintf(request + n, cap - n, "%s\r\n", argv[i]);
    if (!strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH"))
        n += snprintf(request + n, cap - n, "Content-Length: 0\r\n");
    n += snprintf(request + n, cap - n, "\r\n");
    request_len = (size_t)n;

    long total = (long)((warmup + seconds) * rate);
    lat = malloc(sizeof(int64_t) * (size_t)(total + 1));
    waiting = malloc(sizeof(int64_t) * (size_t)(total + 1));
    conns = calloc((size_t)nconn, sizeof(conn_t));
    idle = malloc(sizeof(int) * (size_t)nconn);
    int ep = epoll_create1(0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &addr.sin_addr);
    for (int i = 0; i < nconn; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("connect"); return 1; }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conns[i] = (conn_t){.fd = fd, .alive = 1, .buf = malloc(BUF)};
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        idle[n_idle++] = i;
    }
    int tfd = timerfd_create(CLOCK_MONOTONIC, 0);
    struct epoll_event tev = {.events = EPOLLIN, .data.u32 = UINT32_MAX};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);

    int64_t start = now_ns() + 50000000LL, interval = (int64_t)(1e9 / rate);
    record_from = start + (int64_t)(warmup * 1e9);
    long i = 0;
    int64_t drain_until = 0;
    struct epoll_event events[256];
    for (;;) {
        int64_t now = now_ns();
        while (i < total && start + i * interval <= now) {
            int64_t due = start + i * interval;
            outstanding++;
            if (due >= record_from) sent++;
            if (n_idle && w_head == w_tail) send_on(&conns[idle[--n_idle]], due, now);
            else waiting[w_tail++] = due;
            i++;
        }
        if (i >= total) {
            if (!drain_until) drain_until = now + 10000000000LL;
            if (outstanding <= 0 || now > drain_until) break;
        }
        int64_t wake = i < total ? start + i * interval : now + 10000000LL;
        struct itimerspec its = {.it_value = {.tv_sec = wake / 1000000000LL, .tv_nsec = wake % 1000000000LL}};
        timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
        int got = epoll_wait(ep, events, 256, -1);
        now = now_ns();
        for (int k = 0; k < got; k++) {
            uint32_t id = events[k].data.u32;
            if (id == UINT32_MAX) { uint64_t x; if (read(tfd, &x, sizeof x) < 0) {} continue; }
            conn_t *c = &conns[id];
            ssize_t r = read(c->fd, c->buf + c->len, BUF - c->len);
            if (r <= 0) {
                if (c->busy) { outstanding--; if (c->due >= record_from) errors++; }
                c->alive = 0; c->busy = 0;
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                continue;
            }
            c->len += (size_t)r;
            if (!c->busy) { c->len = 0; continue; }
            if (parse(c)) {
                c->busy = 0;
                outstanding--;
                if (c->due >= record_from) {
                    lat[n_lat++] = now - c->due;
                    if (c->status < 200 || c->status >= 300) non_2xx++;
                }
                next_or_idle((int)id, now);
            } else if (c->len >= BUF) {
                c->len = 0;  /* a body larger than the buffer: its bytes are counted, not kept */
            }
        }
    }
    for (long w = w_head; w < w_tail; w++) if (waiting[w] >= record_from) errors++;
    qsort(lat, (size_t)n_lat, sizeof(int64_t), cmp);
    printf("FIXEDRATE {\"rate\": %.1f, \"seconds\": %.1f, \"sent\": %ld, \"answered\": %ld, \"non_2xx\": %ld, "
           "\"errors\": %ld, \"late\": %ld, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, "
           "\"max_ms\": %.3f, \"generator\": \"c\"}\n",
           rate, seconds, sent, n_lat, non_2xx, errors, late, ms(500), ms(900), ms(990), ms(999), ms(1000));
    return 0;
}
