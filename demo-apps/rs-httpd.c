/* rs-httpd: small HTTP/1.1 static file server.  Single-threaded, nonblocking,
 * level-triggered epoll; keep-alive and pipelining (requests are parsed out
 * of a per-connection buffer, one response at a time, in order). */
#include "common.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define REQUEST_MAX 8192            /* request line plus headers */
#define RW_BUF_SIZE (64 * 1024)
#define SENDFILE_CHUNK (16 << 20)

static int root_fd;
static bool use_sendfile = true;

struct http_conn {
    int fd;
    uint32_t events;
    size_t in_len;
    uint64_t discard;           /* request body bytes still to skip */
    bool responding;
    bool close_after;
    struct bytebuf head;        /* status line, headers, and error bodies */
    int file_fd;                /* body source, -1 when none */
    uint64_t file_left;         /* body bytes not yet on the wire */
    off_t file_off;             /* sendfile position */
    char *rw_buf;               /* rw mode: body bytes read but not yet written */
    size_t rw_off, rw_len;
    char in[REQUEST_MAX];
};

static int epoll_fd;
static struct http_conn **conn_by_fd;
static size_t max_fds;
static char listener_tag;

static void usage(void)
{
    printf("usage: rs-httpd [-r DIR] [-p PORT] [-a ADDR] [-m sendfile|rw]\n"
           "Static file HTTP/1.1 server: GET and HEAD, keep-alive, pipelining.\n"
           "  -r DIR   document root (default .)\n"
           "  -p PORT  port to listen on (default 8080)\n"
           "  -a ADDR  address to bind (default 127.0.0.1)\n"
           "  -m MODE  body transfer: sendfile (default) or rw (read() then write())\n"
           "  -h       this help\n");
}

/* ---- responses ----------------------------------------------------------- */

static const char *content_type(const char *path)
{
    static const struct { const char *ext, *type; } types[] = {
        { ".html", "text/html" }, { ".htm", "text/html" }, { ".txt", "text/plain" },
        { ".css", "text/css" }, { ".js", "application/javascript" },
        { ".json", "application/json" }, { ".png", "image/png" }, { ".jpg", "image/jpeg" },
        { ".jpeg", "image/jpeg" }, { ".gif", "image/gif" }, { ".svg", "image/svg+xml" },
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (strcasecmp(dot, types[i].ext) == 0)
            return types[i].type;
    return "application/octet-stream";
}

static void queue_head(struct http_conn *c, int status, const char *reason, const char *type,
                       uint64_t length, const char *extra_header)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nServer: rs-httpd\r\nContent-Type: %s\r\n"
                     "Content-Length: %llu\r\nConnection: %s\r\n%s\r\n",
                     status, reason, type, (unsigned long long)length,
                     c->close_after ? "close" : "keep-alive", extra_header);
    bytebuf_append(&c->head, head, (size_t)n);
    c->responding = true;
}

static void respond_error(struct http_conn *c, int status, const char *reason, bool head_only)
{
    char body[64];
    int n = snprintf(body, sizeof body, "%d %s\n", status, reason);
    queue_head(c, status, reason, "text/plain", (uint64_t)n,
               status == 405 ? "Allow: GET, HEAD\r\n" : "");
    if (!head_only)
        bytebuf_append(&c->head, body, (size_t)n);
}

/* Decodes %XX escapes of the URL path (query and fragment dropped) into out
 * without the leading '/'.  Returns false for malformed or NUL escapes. */
static bool decode_path(const char *target, size_t len, char *out, size_t out_size)
{
    size_t o = 0;
    for (size_t i = 1; i < len && target[i] != '?' && target[i] != '#'; i++) {
        char ch = target[i];
        if (ch == '%') {
            if (i + 2 >= len || !isxdigit((unsigned char)target[i + 1]) ||
                !isxdigit((unsigned char)target[i + 2]))
                return false;
            char hex[3] = { target[i + 1], target[i + 2], 0 };
            ch = (char)strtol(hex, NULL, 16);
            if (ch == 0)
                return false;
            i += 2;
        }
        if (o + 1 >= out_size)
            return false;
        out[o++] = ch;
    }
    out[o] = 0;
    return true;
}

static bool has_dotdot_segment(const char *path)
{
    for (const char *seg = path;; seg++) {
        if (seg[0] == '.' && seg[1] == '.' && (seg[2] == '/' || seg[2] == 0))
            return true;
        seg = strchr(seg, '/');
        if (!seg)
            return false;
    }
}

static void respond_file(struct http_conn *c, const char *target, size_t target_len, bool head_only)
{
    char path[REQUEST_MAX];
    if (!decode_path(target, target_len, path, sizeof path)) {
        respond_error(c, 400, "Bad Request", head_only);
        return;
    }
    if (has_dotdot_segment(path)) {
        respond_error(c, 403, "Forbidden", head_only);
        return;
    }
    /* "//etc/passwd" must not become an absolute path for openat. */
    const char *rel = path + strspn(path, "/");
    int fd = openat(root_fd, rel[0] ? rel : ".", O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int errnum = fd < 0 ? errno : ENOENT;
        if (fd >= 0)
            close(fd);
        if (errnum == EACCES)
            respond_error(c, 403, "Forbidden", head_only);
        else if (errnum == ENOENT || errnum == ENOTDIR || errnum == ENAMETOOLONG)
            respond_error(c, 404, "Not Found", head_only);
        else
            respond_error(c, 500, "Internal Server Error", head_only);
        return;
    }
    queue_head(c, 200, "OK", content_type(path), (uint64_t)st.st_size, "");
    if (head_only || st.st_size == 0) {
        close(fd);
        return;
    }
    c->file_fd = fd;
    c->file_left = (uint64_t)st.st_size;
    c->file_off = 0;
    c->rw_off = c->rw_len = 0;
}

/* ---- request parsing ----------------------------------------------------- */

static bool token_in_list(const char *value, size_t len, const char *token)
{
    size_t tlen = strlen(token);
    for (size_t i = 0; i + tlen <= len; i++)
        if (strncasecmp(value + i, token, tlen) == 0)
            return true;
    return false;
}

enum parse_result { NEED_MORE, STARTED };

/* Takes the next complete request out of c->in and starts its response. */
static enum parse_result next_request(struct http_conn *c)
{
    if (c->discard) {
        size_t drop = c->discard < c->in_len ? (size_t)c->discard : c->in_len;
        memmove(c->in, c->in + drop, c->in_len - drop);
        c->in_len -= drop;
        c->discard -= drop;
        if (c->discard)
            return NEED_MORE;
    }
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end) {
        if (c->in_len < sizeof c->in)
            return NEED_MORE;
        c->close_after = true;
        respond_error(c, 400, "Bad Request", false);
        return STARTED;
    }
    size_t head_len = (size_t)(end - c->in) + 4;

    /* Request line: METHOD SP TARGET SP HTTP/1.x */
    char *line_end = memchr(c->in, '\r', head_len);
    char *sp1 = memchr(c->in, ' ', (size_t)(line_end - c->in));
    char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
    bool http11 = sp2 && line_end - sp2 - 1 == 8 && memcmp(sp2 + 1, "HTTP/1.1", 8) == 0;
    bool http10 = sp2 && line_end - sp2 - 1 == 8 && memcmp(sp2 + 1, "HTTP/1.0", 8) == 0;
    if ((!http11 && !http10) || sp1[1] != '/') {
        c->close_after = true;
        respond_error(c, 400, "Bad Request", false);
        return STARTED;
    }
    size_t method_len = (size_t)(sp1 - c->in);
    bool is_get = method_len == 3 && memcmp(c->in, "GET", 3) == 0;
    bool is_head = method_len == 4 && memcmp(c->in, "HEAD", 4) == 0;

    bool keep_alive = http11;
    uint64_t body_len = 0;
    bool bad = false;
    for (char *line = line_end + 2; line < end + 2;) {
        char *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        char *colon = memchr(line, ':', (size_t)(eol - line));
        if (!colon) {
            bad = true;
            break;
        }
        char *value = colon + 1;
        while (value < eol && (*value == ' ' || *value == '\t'))
            value++;
        size_t name_len = (size_t)(colon - line), value_len = (size_t)(eol - value);
        if (name_len == 10 && strncasecmp(line, "connection", 10) == 0) {
            if (token_in_list(value, value_len, "close"))
                keep_alive = false;
            else if (token_in_list(value, value_len, "keep-alive"))
                keep_alive = true;
        } else if (name_len == 14 && strncasecmp(line, "content-length", 14) == 0) {
            char *num_end;
            body_len = strtoull(value, &num_end, 10);
            bad |= num_end == value || num_end != eol;
        } else if (name_len == 17 && strncasecmp(line, "transfer-encoding", 17) == 0) {
            bad = true;     /* chunked bodies are not supported: cannot find the next request */
        }
        line = eol + 2;
    }

    c->close_after = !keep_alive || bad;
    if (bad)
        respond_error(c, 400, "Bad Request", is_head);
    else if (!is_get && !is_head)
        respond_error(c, 405, "Method Not Allowed", false);
    else
        respond_file(c, sp1 + 1, (size_t)(sp2 - sp1 - 1), is_head);

    memmove(c->in, c->in + head_len, c->in_len - head_len);
    c->in_len -= head_len;
    c->discard = body_len;
    return STARTED;
}

/* ---- connection state machine -------------------------------------------- */

enum progress { DONE, BLOCKED, BROKEN };

static enum progress write_some(int fd, const char *data, size_t len, size_t *written)
{
    ssize_t n;
    do
        n = write(fd, data, len);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN ? BLOCKED : BROKEN;
    *written = (size_t)n;
    return DONE;
}

static enum progress send_body_sendfile(struct http_conn *c)
{
    while (c->file_left > 0) {
        size_t chunk = c->file_left < SENDFILE_CHUNK ? (size_t)c->file_left : SENDFILE_CHUNK;
        ssize_t n = sendfile(c->fd, c->file_fd, &c->file_off, chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? BLOCKED : BROKEN;
        if (n == 0)
            return BROKEN;  /* the file shrank: the promised length cannot be kept */
        c->file_left -= (uint64_t)n;
    }
    return DONE;
}

static enum progress send_body_rw(struct http_conn *c)
{
    if (!c->rw_buf)
        c->rw_buf = xmalloc(RW_BUF_SIZE);
    while (c->file_left > 0) {
        if (c->rw_off == c->rw_len) {
            size_t want = c->file_left < RW_BUF_SIZE ? (size_t)c->file_left : RW_BUF_SIZE;
            ssize_t n;
            do
                n = read(c->file_fd, c->rw_buf, want);
            while (n < 0 && errno == EINTR);
            if (n <= 0)
                return BROKEN;
            c->rw_off = 0;
            c->rw_len = (size_t)n;
        }
        size_t written;
        enum progress p = write_some(c->fd, c->rw_buf + c->rw_off, c->rw_len - c->rw_off, &written);
        if (p != DONE)
            return p;
        c->rw_off += written;
        c->file_left -= written;
    }
    return DONE;
}

static enum progress send_response(struct http_conn *c)
{
    while (bytebuf_pending(&c->head)) {
        size_t written;
        enum progress p = write_some(c->fd, bytebuf_head(&c->head), bytebuf_pending(&c->head), &written);
        if (p != DONE)
            return p;
        bytebuf_consume(&c->head, written);
    }
    if (c->file_fd >= 0) {
        enum progress p = use_sendfile ? send_body_sendfile(c) : send_body_rw(c);
        if (p != DONE)
            return p;
        close(c->file_fd);
        c->file_fd = -1;
    }
    c->responding = false;
    return DONE;
}

static void conn_close(struct http_conn *c)
{
    conn_by_fd[c->fd] = NULL;
    close(c->fd);
    if (c->file_fd >= 0)
        close(c->file_fd);
    bytebuf_free(&c->head);
    free(c->rw_buf);
    free(c);
}

static void conn_want(struct http_conn *c, uint32_t events)
{
    if (c->events == events)
        return;
    struct epoll_event ev = { .events = events, .data.ptr = c };
    epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

/* Runs the connection until it has to wait: finish the current response,
 * start the next buffered request, or read more. */
static void conn_service(struct http_conn *c)
{
    for (;;) {
        if (c->responding) {
            enum progress p = send_response(c);
            if (p == BLOCKED) {
                conn_want(c, EPOLLOUT);
                return;
            }
            if (p == BROKEN || c->close_after)
                break;
        }
        if (next_request(c) == STARTED)
            continue;
        ssize_t n = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
        if (n > 0) {
            c->in_len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            conn_want(c, EPOLLIN);
            return;
        }
        break;  /* EOF or error */
    }
    conn_close(c);
}

static void accept_pending(int listen_fd)
{
    int fd;
    while ((fd = accept_connection(listen_fd, SOCK_NONBLOCK)) >= 0) {
        /* Only the fields before the request buffer need zeroing. */
        struct http_conn *c = xmalloc(sizeof *c);
        memset(c, 0, offsetof(struct http_conn, in));
        c->fd = fd;
        c->file_fd = -1;
        c->events = EPOLLIN;
        /* Headers and body go out in separate writes; without NODELAY the
         * body's last segment could wait for the client's delayed ACK. */
        set_nodelay(fd, true);
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
        if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) != 0) {
            warn_errno("epoll_ctl");
            close(fd);
            free(c);
            continue;
        }
        conn_by_fd[fd] = c;
    }
    if (errno != EAGAIN)
        warn_errno("accept");
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1", *root = ".";
    int port = 8080;
    static const struct option long_opts[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
    int opt;
    while ((opt = getopt_long(argc, argv, ":r:p:a:m:h", long_opts, NULL)) != -1) {
        switch (opt) {
        case 'r': root = optarg; break;
        case 'p': port = parse_port("-p", optarg); break;
        case 'a': addr = optarg; break;
        case 'm':
            if (strcmp(optarg, "sendfile") == 0)
                use_sendfile = true;
            else if (strcmp(optarg, "rw") == 0)
                use_sendfile = false;
            else
                usage_error("-m expects sendfile or rw, got '%s'", optarg);
            break;
        case 'h': usage(); return 0;
        default: getopt_failure(opt, argv);
        }
    }
    no_positional_args(argc, argv);
    root_fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0)
        usage_error("-r %s: %s", root, strerror(errno));

    raise_nofile_limit();
    /* sendfile() has no MSG_NOSIGNAL: a client that leaves mid-body must
     * give EPIPE, not kill the server. */
    signal(SIGPIPE, SIG_IGN);
    sigset_t wait_mask;
    block_stop_signals(&wait_mask);

    struct rlimit lim;
    getrlimit(RLIMIT_NOFILE, &lim);
    max_fds = lim.rlim_cur;
    conn_by_fd = xcalloc(max_fds, sizeof *conn_by_fd);
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0)
        die_errno("epoll_create1");
    int listen_fd = listen_tcp(addr, port, true);
    struct epoll_event lev = { .events = EPOLLIN, .data.ptr = &listener_tag };
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &lev) != 0)
        die_errno("epoll_ctl listener");
    announce_listening(listen_fd);

    struct epoll_event events[512];
    while (!stop_requested) {
        int n = epoll_pwait(epoll_fd, events, 512, -1, &wait_mask);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die_errno("epoll_pwait");
        }
        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == &listener_tag)
                accept_pending(listen_fd);
            else
                conn_service(events[i].data.ptr);
        }
    }
    for (size_t fd = 0; fd < max_fds; fd++)
        if (conn_by_fd[fd])
            conn_close(conn_by_fd[fd]);
    free(conn_by_fd);
    close(epoll_fd);
    close(listen_fd);
    close(root_fd);
    return 0;
}
