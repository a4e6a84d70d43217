/* rs-filetool: concurrent small-file workload (the monoio-vs-tokio file
 * benchmark shape: many 64 KiB files read and written at once).
 *
 * File i is handled by thread i % THREADS, so up to THREADS files are in
 * flight together.  File contents are the pattern stream of the file index,
 * so every read is verified without keeping a second copy. */
#include "common.h"
#include "pattern.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define COPY_CHUNK (16 * 1024)
#define MAX_ERROR_LINES 10

enum mode { MODE_WRITE = 1, MODE_READ = 2, MODE_COPY = 4, MODE_ALL = 7 };

struct config {
    const char *dir;
    unsigned files;
    size_t size;
    unsigned threads;
    unsigned rounds;
    enum mode mode;
    const char *mode_name;
    bool json;
};

struct worker {
    pthread_t thread;
    const struct config *cfg;
    unsigned index;
    uint64_t bytes;
    uint64_t errors;
    char *data;     /* one whole file */
    char *expect;   /* its expected content */
};

static unsigned error_lines;

static void usage(void)
{
    printf("usage: rs-filetool -d DIR [-n FILES] [-s BYTES] [-T THREADS] [-r ROUNDS]\n"
           "                   [-m write|read|copy|all] [-j]\n"
           "Concurrent file workload with verified content.\n"
           "  -d DIR      directory for the files (must exist)\n"
           "  -n FILES    number of files (default 100)\n"
           "  -s BYTES    bytes per file, K/M suffix allowed (default 65536)\n"
           "  -T THREADS  worker threads; files are spread across them (default 4)\n"
           "  -r ROUNDS   repetitions (default 10)\n"
           "  -m MODE     write: create DIR/src-I with write();  read: read() and verify them;\n"
           "              copy: pread/pwrite DIR/src-I to DIR/dst-I in 16 KiB chunks, verify;\n"
           "              all (default): write, read, copy in each round\n"
           "  -j          print a JSON object instead of the text line\n"
           "  -h          this help\n"
           "Exit status 1 on any I/O or verification error.\n");
}

static void file_error(struct worker *w, const char *path, const char *what, int errnum)
{
    w->errors++;
    unsigned line = __atomic_fetch_add(&error_lines, 1, __ATOMIC_RELAXED);
    if (line < MAX_ERROR_LINES)
        fprintf(stderr, "rs-filetool: %s: %s%s%s\n", path, what, errnum ? ": " : "",
                errnum ? strerror(errnum) : "");
    else if (line == MAX_ERROR_LINES)
        fprintf(stderr, "rs-filetool: further errors not shown\n");
}

static void file_path(const struct config *cfg, char *out, size_t len, const char *kind, unsigned i)
{
    snprintf(out, len, "%s/%s-%u", cfg->dir, kind, i);
}

/* pread/pwrite until done: regular files may still return short counts. */
static ssize_t pio_all(bool writing, int fd, char *buf, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = writing ? pwrite(fd, buf + done, len - done, off + (off_t)done)
                            : pread(fd, buf + done, len - done, off + (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static void write_file(struct worker *w, unsigned i)
{
    char path[4096];
    file_path(w->cfg, path, sizeof path, "src", i);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        file_error(w, path, "open", errno);
        return;
    }
    pattern_fill(i, 0, w->data, w->cfg->size);
    if (!write_all(fd, w->data, w->cfg->size))
        file_error(w, path, "write", errno);
    else
        w->bytes += w->cfg->size;
    if (close(fd) != 0)
        file_error(w, path, "close", errno);
}

static void read_file(struct worker *w, unsigned i)
{
    char path[4096];
    file_path(w->cfg, path, sizeof path, "src", i);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        file_error(w, path, "open", errno);
        return;
    }
    size_t size = w->cfg->size, got = 0;
    const char *problem = NULL;
    int errnum = 0;
    for (;;) {
        /* Ask for one byte more than expected to catch a longer file. */
        char extra;
        ssize_t n = got < size ? read(fd, w->data + got, size - got) : read(fd, &extra, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            problem = "read";
            errnum = errno;
            break;
        }
        if (n == 0)
            break;
        if (got == size) {
            problem = "file longer than expected";
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    if (!problem && got < size)
        problem = "file shorter than expected";
    if (!problem) {
        pattern_fill(i, 0, w->expect, size);
        if (memcmp(w->data, w->expect, size) != 0)
            problem = "content verification failed";
    }
    if (problem)
        file_error(w, path, problem, errnum);
    else
        w->bytes += size;
}

/* Copies src-i to dst-i chunk by chunk, checking each chunk read, then reads
 * dst-i back to prove the writes landed where they should. */
static void copy_file(struct worker *w, unsigned i)
{
    char src_path[4096], dst_path[4096];
    file_path(w->cfg, src_path, sizeof src_path, "src", i);
    file_path(w->cfg, dst_path, sizeof dst_path, "dst", i);
    int src = open(src_path, O_RDONLY | O_CLOEXEC);
    if (src < 0) {
        file_error(w, src_path, "open", errno);
        return;
    }
    int dst = open(dst_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (dst < 0) {
        file_error(w, dst_path, "open", errno);
        close(src);
        return;
    }
    size_t size = w->cfg->size;
    pattern_fill(i, 0, w->expect, size);
    for (size_t off = 0; off < size; off += COPY_CHUNK) {
        size_t len = size - off < COPY_CHUNK ? size - off : COPY_CHUNK;
        char *chunk = w->data + off;
        ssize_t n = pio_all(false, src, chunk, len, (off_t)off);
        if (n != (ssize_t)len) {
            file_error(w, src_path, n < 0 ? "pread" : "file shorter than expected", n < 0 ? errno : 0);
            goto out;
        }
        if (memcmp(chunk, w->expect + off, len) != 0) {
            file_error(w, src_path, "content verification failed", 0);
            goto out;
        }
        if (pio_all(true, dst, chunk, len, (off_t)off) != (ssize_t)len) {
            file_error(w, dst_path, "pwrite", errno);
            goto out;
        }
    }
    for (size_t off = 0; off < size; off += COPY_CHUNK) {
        size_t len = size - off < COPY_CHUNK ? size - off : COPY_CHUNK;
        ssize_t n = pio_all(false, dst, w->data + off, len, (off_t)off);
        if (n != (ssize_t)len || memcmp(w->data + off, w->expect + off, len) != 0) {
            file_error(w, dst_path, n < 0 ? "pread" : "copy verification failed", n < 0 ? errno : 0);
            goto out;
        }
    }
    w->bytes += 3 * (uint64_t)size;   /* read src, write dst, read dst back */
out:
    close(src);
    if (close(dst) != 0)
        file_error(w, dst_path, "close", errno);
}

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    const struct config *cfg = w->cfg;
    for (unsigned round = 0; round < cfg->rounds; round++) {
        if (cfg->mode & MODE_WRITE)
            for (unsigned i = w->index; i < cfg->files; i += cfg->threads)
                write_file(w, i);
        if (cfg->mode & MODE_READ)
            for (unsigned i = w->index; i < cfg->files; i += cfg->threads)
                read_file(w, i);
        if (cfg->mode & MODE_COPY)
            for (unsigned i = w->index; i < cfg->files; i += cfg->threads)
                copy_file(w, i);
    }
    return NULL;
}

static void parse_args(int argc, char **argv, struct config *cfg)
{
    *cfg = (struct config){ .files = 100, .size = 65536, .threads = 4, .rounds = 10,
                            .mode = MODE_ALL, .mode_name = "all" };
    static const struct option long_opts[] = { { "help", no_argument, NULL, 'h' }, { 0 } };
    static const struct { const char *name; enum mode mode; } modes[] = {
        { "write", MODE_WRITE }, { "read", MODE_READ }, { "copy", MODE_COPY }, { "all", MODE_ALL },
    };
    int c;
    while ((c = getopt_long(argc, argv, ":d:n:s:T:r:m:jh", long_opts, NULL)) != -1) {
        switch (c) {
        case 'd': cfg->dir = optarg; break;
        case 'n': cfg->files = (unsigned)parse_long("-n", optarg, 1, 10000000); break;
        case 's': cfg->size = parse_size("-s", optarg, 1, 256 << 20); break;
        case 'T': cfg->threads = (unsigned)parse_long("-T", optarg, 1, 1024); break;
        case 'r': cfg->rounds = (unsigned)parse_long("-r", optarg, 1, 1000000); break;
        case 'm':
            cfg->mode_name = NULL;
            for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
                if (strcmp(optarg, modes[i].name) == 0) {
                    cfg->mode = modes[i].mode;
                    cfg->mode_name = modes[i].name;
                }
            }
            if (!cfg->mode_name)
                usage_error("-m expects write, read, copy or all, got '%s'", optarg);
            break;
        case 'j': cfg->json = true; break;
        case 'h': usage(); exit(0);
        default: getopt_failure(c, argv);
        }
    }
    no_positional_args(argc, argv);
    if (!cfg->dir)
        usage_error("-d DIR is required");
    struct stat st;
    if (stat(cfg->dir, &st) != 0 || !S_ISDIR(st.st_mode))
        usage_error("-d %s: not a directory", cfg->dir);
}

int main(int argc, char **argv)
{
    struct config cfg;
    parse_args(argc, argv, &cfg);
    unsigned nworkers = cfg.threads < cfg.files ? cfg.threads : cfg.files;
    struct worker *workers = xcalloc(nworkers, sizeof *workers);
    for (unsigned t = 0; t < nworkers; t++)
        workers[t] = (struct worker){ .cfg = &cfg, .index = t,
                                      .data = xmalloc(cfg.size), .expect = xmalloc(cfg.size) };
    /* Threads beyond the file count would have nothing to do. */
    cfg.threads = nworkers;

    uint64_t start = now_ns();
    for (unsigned t = 0; t < nworkers; t++) {
        int err = pthread_create(&workers[t].thread, NULL, worker_run, &workers[t]);
        if (err) {
            errno = err;
            die_errno("pthread_create");
        }
    }
    uint64_t bytes = 0, errors = 0;
    for (unsigned t = 0; t < nworkers; t++) {
        pthread_join(workers[t].thread, NULL);
        bytes += workers[t].bytes;
        errors += workers[t].errors;
        free(workers[t].data);
        free(workers[t].expect);
    }
    double secs = (double)(now_ns() - start) / 1e9;
    free(workers);

    double mbps = (double)bytes * 8 / secs / 1e6;
    const char *fmt = cfg.json
        ? "{\"mode\":\"%s\",\"files\":%u,\"size\":%zu,\"threads\":%u,\"rounds\":%u,"
          "\"secs\":%.3f,\"mbps\":%.1f,\"errors\":%llu}\n"
        : "rs-filetool: mode=%s files=%u size=%zu threads=%u rounds=%u secs=%.3f mbps=%.1f errors=%llu\n";
    printf(fmt, cfg.mode_name, cfg.files, cfg.size, cfg.threads, cfg.rounds, secs, mbps,
           (unsigned long long)errors);
    return errors ? 1 : 0;
}
