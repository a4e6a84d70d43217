/* Differential fuzzer: `fuzz SEED [--ops N] [--skip LIST] [--avoid LIST]`
 * generates a random program of N operations on sockets, pipes, files and
 * epoll instances from SEED, runs it, and prints one transcript line per
 * operation. tests/fuzz/run-fuzz runs it natively and under the shim and
 * compares the transcripts (see tests/integ/check.h for the conventions:
 * lines starting with "~ " hold values batch mode may change by design).
 *
 * Every operation's random choices come from its own PRNG stream, seeded
 * from SEED and the operation's index, so --skip (used to minimise a
 * failing program) leaves the choices of the other operations alone; what
 * they act on follows the model of the objects at that point.
 *
 * The model. The generator keeps a model of every object so that no call
 * can block forever and no printed value depends on timing:
 *   - per connection and direction: the unread writes (lengths) and bytes,
 *     whether EOF follows them, whether the reader is gone (EPIPE), and a
 *     conservative estimate of the kernel memory they use (unix sockets
 *     stop taking bytes, and stop being writable, by skb truesize);
 *   - per open file description: O_NONBLOCK; per process: the fd table;
 *   - per epoll instance: its registrations, keyed by (fd, file) as in the
 *     kernel, so a registration outlives close() while a dup holds the file.
 * The model learns from the results of calls whose outcome is the same with
 * and without the shim (a kernel-deterministic answer); that is what the
 * transcript checks. Where the outcome legitimately differs in batch mode
 * (docs/semantics.md: how much a full stream socket takes, write-behind
 * reporting a failed send with a later write, unread stashed bytes at
 * close, what follows from those), the line gets the "~ " prefix and the
 * direction is "fuzzy": only a drain (read back every byte this run wrote,
 * print whether they came in order) is allowed on it until it is empty
 * again; an end whose further outcomes may differ is "tainted" (its lines
 * keep the prefix until it is closed). For TCP such values depend on
 * timing even natively (ACKs, RSTs on their way): those lines get "? " and
 * are never compared (run-fuzz). Everything a line without a prefix shows
 * is the same in every run, natively and under the shim.
 *
 * `--avoid LIST` makes the programs steer clear of known shim bugs (see
 * avoid_names), so that a run can find others while those are open.
 * FUZZ_DEBUG=1 prints the model after every operation on stderr.
 *
 * TCP: bytes written are not guaranteed to be in the peer's receive queue
 * when the write returns (Nagle is off, but cwnd and delayed ACKs can hold
 * segments back). A direction with bytes in flight is "unsettled"; before
 * anything observes the receiving end (a read, FIONREAD, poll, epoll_wait)
 * the generator waits - without printing - until a nonblocking MSG_PEEK
 * sees every byte (and TCP_INFO shows a FIN that was sent has arrived).
 * A blocking MSG_WAITALL receive of at most the bytes in flight needs no
 * settling. Unread bytes per TCP direction stay below the receive window.
 *
 * The model lives in a MAP_SHARED mapping so that what a fork child does to
 * the shared kernel objects (bytes read/written, O_NONBLOCK, epoll
 * registrations) is known to the parent afterwards; the fd table is per
 * process. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "check.h"

/* ---- PRNG: splitmix64 to seed, xoshiro256** per stream ------------------ */

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

struct rng {
	uint64_t s[4];
};

static void rng_seed(struct rng *r, uint64_t seed, uint64_t a, uint64_t b)
{
	uint64_t x = seed ^ (a * 0xD1B54A32D192ED03ULL) ^ (b * 0x8CB92BA72F3D8DD7ULL);
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix(&x);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rnext(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

/* Uniform in [0, n). */
static unsigned rn(struct rng *r, unsigned n)
{
	return n ? (unsigned)((rnext(r) >> 11) % n) : 0;
}

/* True with probability pct percent. */
static bool chance(struct rng *r, unsigned pct)
{
	return rn(r, 100) < pct;
}

/* A size in 0..70000, most of them small. */
static size_t rsize(struct rng *r)
{
	switch (rn(r, 10)) {
	case 0: return rn(r, 2) ? 0 : 1;
	case 1: case 2: return 1 + rn(r, 16);
	case 3: case 4: return 1 + rn(r, 512);
	case 5: case 6: return 1 + rn(r, 4096);
	case 7: return 4096 * (1 + rn(r, 4)) + rn(r, 3) - 1;
	case 8: return 1 + rn(r, 20000);
	default: return rn(r, 70001);
	}
}

/* ---- the model ----------------------------------------------------------- */

enum kind { K_NONE, K_USTREAM, K_UDGRAM, K_USEQ, K_TCP, K_PIPE, K_FILE, K_EPOLL, K_LISTEN };
static const char *kind_name[] = { "-", "ustream", "udgram", "useq", "tcp", "pipe", "file", "epoll", "listen" };

#define MAXFD 128	  /* fd numbers the program uses are below this */
#define MAXOFD 96	  /* open file descriptions */
#define MAXCH 24	  /* connections/pipes */
#define MAXEP 3		  /* epoll instances */
#define MAXREG 24	  /* registrations per epoll instance */
#define MAXLS 2		  /* TCP listeners */
#define MAXPEND 4	  /* connections waiting per listener */
#define MAXSEG 256	  /* unread writes per direction */
#define NFILES 4
#define MAXLIVE 12	  /* open file descriptions alive at once */
#define TCP_CAP 65536	  /* unread bytes per TCP direction (exact mode) */
#define TCP_SEGCAP 24	  /* unread writes per TCP direction */
#define UNIX_SNDBUF 212992 /* net.core.wmem_default: unix sockets' SO_SNDBUF */
#define UNIX_WRITABLE (UNIX_SNDBUF / 4)
#define BUFSZ (1 << 17)

struct seg {
	int len, rem;
};

/* Bytes flowing from one end of a connection to the other. */
struct dirm {
	struct seg seg[MAXSEG];
	int head, n;	    /* FIFO of unread writes (messages for dgram/seqpacket) */
	long U;		    /* unread bytes */
	long wpos, rpos;    /* stream positions: content of byte p is cbyte(key, p) */
	uint64_t epoch;	    /* content key changes when a drain resets positions */
	int fuzzy;	    /* byte count differs between runs by design: drain only */
	int unsettled;	    /* TCP: some written bytes may still be in flight */
	int fin;	    /* EOF follows the data (writer shut down or closed) */
	int fin_unsettled;  /* TCP: that FIN may still be in flight */
	int broken;	    /* the reader is gone or shut: writes fail at once */
};

struct chan {
	int used, kind;
	uint64_t gen;
	int ofd[2]; /* -1 closed, -2 connection not accepted yet */
	int shut_rd[2], shut_wr[2]; /* the kernel's RCV/SEND_SHUTDOWN */
	int own_shut_wr[2];	    /* shutdown(SHUT_WR) called on this end */
	int child_shut_wr[2];	    /* ... by a fork child (--avoid forkshutwr) */
	int taint[2]; /* outcome of anything on this end may differ by design */
	int lst;      /* listener slot while not accepted */
	struct dirm d[2]; /* d[e]: written at end e, read at end 1-e */
};

struct ofd {
	int used, kind, obj, end, nonblock, acc;
};

struct reg {
	int used, fd, ofd;
	uint32_t ev;
	uint64_t data;
	int fuzzy; /* ET/ONESHOT state depends on a fuzzy history */
};

struct epm {
	int used;
	struct reg r[MAXREG];
};

struct lsn {
	int used, ofd;
	struct sockaddr_in addr;
	int pend[MAXPEND], npend;
};

struct world {
	struct chan ch[MAXCH];
	struct ofd of[MAXOFD];
	struct epm ep[MAXEP];
	struct lsn ls[MAXLS];
	uint64_t gen;
};

static struct world *W;
static int fdtab[MAXFD];   /* per process: fd -> ofd, -1 */
static int prefs[MAXOFD];  /* in a fork child: the parent's references */
static int cforbid[MAXOFD]; /* in a fork child: must not observe (see op_fork) */
static int in_child;
static uint64_t seed;
static int note[2]; /* signal handler -> helper: "the handler ran" */
static char tmpdir[64];
static unsigned char *rbuf, *wbuf, *pbuf;
static struct sockaddr_in dummy_in;

static volatile sig_atomic_t sigpipes, usr_hits;

/* --avoid LIST: steer clear of known shim bugs, so that a run can find
 * others while they are open (run-fuzz --avoid passes it on). */
enum {
	AV_DUPFD = 1,	     /* fcntl(F_DUPFD*): moves the shim's fds to low numbers */
	AV_PEEKWAITALL = 2,  /* MSG_PEEK|MSG_WAITALL: strict returns what is there */
	AV_DGRAMRD = 4,	     /* blocking recv on a unix dgram after SHUT_RD: spins */
	AV_EPOLLDUP = 8,     /* dup of an epoll fd: batch forgets the instance */
	AV_SHUTWR = 16,	     /* write after own SHUT_WR (batch): no EPIPE; fixed, kept
				for the saved regressions that name it */
	AV_TCPSHUTRD = 32,   /* bytes for a TCP socket after its SHUT_RD (batch: EOF);
				fixed (seed 183), kept for the saved regressions */
	AV_DUPNONBLOCK = 64, /* O_NONBLOCK changed through a dup (batch: stale) */
	AV_FORKSHUTWR = 128, /* write in the parent after a fork child's SHUT_WR
				(batch: queued, no EPIPE; issue 3) */
};
static const struct {
	const char *name;
	int bit;
} avoid_names[] = {
	{ "dupfd", AV_DUPFD }, { "peekwaitall", AV_PEEKWAITALL }, { "dgramrd", AV_DGRAMRD },
	{ "epolldup", AV_EPOLLDUP }, { "shutwr", AV_SHUTWR }, { "tcpshutrd", AV_TCPSHUTRD },
	{ "dupnonblock", AV_DUPNONBLOCK }, { "forkshutwr", AV_FORKSHUTWR },
};
static int avoid;

/* ---- output ------------------------------------------------------------- */

struct ctx {
	struct rng r;
	char label[32];
	int child;
	int idx;
};

static char line[8192];
static int linelen;
static int line_err;  /* the line reports a failed call */
static int n_errors;  /* failed calls on exact lines: a fork child's exit status */

static void lput(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void lput(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line + linelen, sizeof(line) - (size_t)linelen, fmt, ap);
	va_end(ap);
	if (n > 0)
		linelen += n;
	if (linelen >= (int)sizeof(line))
		linelen = sizeof(line) - 1;
}

static void lbegin(struct ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void lbegin(struct ctx *c, const char *fmt, ...)
{
	linelen = 0;
	lput("%s ", c->label);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line + linelen, sizeof(line) - (size_t)linelen, fmt, ap);
	va_end(ap);
	if (n > 0)
		linelen += n;
}

/* level 0: compared everywhere; 1: "~ " (batch mode may differ by design,
 * compared natively and in strict mode); 2: "? " (depends on timing even
 * natively, e.g. how much a full TCP socket takes while ACKs are on their
 * way: never compared, printed for the reader). */
static void lend(int level)
{
	printf("%s%s\n", level >= 2 ? "? " : level ? "~ " : "", line);
	fflush(stdout);
	linelen = 0;
	if (line_err && !level)
		n_errors++;
	line_err = 0;
}

static void lres(struct ctx *c, long r, int e)
{
	(void)c;
	if (r < 0) {
		lput(": ret=%ld errno=%s", r, t_errname(e));
		line_err = 1;
	} else {
		lput(": ret=%ld", r);
	}
}

static int sp_before;
static void sp_mark(void)
{
	sp_before = sigpipes;
}

static void sp_put(void)
{
	int d = sigpipes - sp_before;
	if (d)
		lput(" sigpipe=+%d", d);
}

static void model_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void model_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "fuzz-model: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static const char *evstr(uint32_t e)
{
	static char s[160];
	static const struct {
		uint32_t bit;
		const char *name;
	} names[] = {
		{ EPOLLIN, "IN" },	   { EPOLLPRI, "PRI" },	      { EPOLLOUT, "OUT" },
		{ EPOLLRDNORM, "RDNORM" }, { EPOLLRDBAND, "RDBAND" }, { EPOLLWRNORM, "WRNORM" },
		{ EPOLLWRBAND, "WRBAND" }, { EPOLLMSG, "MSG" },	      { EPOLLERR, "ERR" },
		{ EPOLLHUP, "HUP" },	   { EPOLLRDHUP, "RDHUP" },   { EPOLLET, "ET" },
		{ EPOLLONESHOT, "ONESHOT" }, { EPOLLEXCLUSIVE, "EXCLUSIVE" }, { POLLNVAL, "NVAL" },
	};
	s[0] = 0;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (e & names[i].bit) {
			if (s[0])
				strcat(s, "|");
			strcat(s, names[i].name);
			e &= ~names[i].bit;
		}
	}
	if (e)
		sprintf(s + strlen(s), "%s0x%x", s[0] ? "|" : "", e);
	if (!s[0])
		strcpy(s, "0");
	return s;
}

static const char *msgflags_str(int f)
{
	static char s[128];
	s[0] = 0;
	if (f & MSG_DONTWAIT) strcat(s, "|DONTWAIT");
	if (f & MSG_PEEK) strcat(s, "|PEEK");
	if (f & MSG_TRUNC) strcat(s, "|TRUNC");
	if (f & MSG_WAITALL) strcat(s, "|WAITALL");
	if (f & MSG_NOSIGNAL) strcat(s, "|NOSIGNAL");
	if (f & MSG_EOR) strcat(s, "|EOR");
	if (f & MSG_CTRUNC) strcat(s, "|CTRUNC");
	return s[0] ? s + 1 : "0";
}

/* ---- content ------------------------------------------------------------- */

static uint64_t dir_key(struct chan *c, int dir)
{
	return (c->gen * 0x9E3779B97F4A7C15ULL) ^ ((uint64_t)dir << 40) ^ (c->d[dir].epoch << 48);
}

static void fill_content(unsigned char *p, uint64_t key, long pos, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t x = (uint64_t)(pos + (long)i);
		uint64_t w = key ^ ((x >> 3) * 0xBF58476D1CE4E5B9ULL);
		w ^= w >> 29;
		w *= 0x94D049BB133111EBULL;
		w ^= w >> 32;
		p[i] = (unsigned char)(w >> ((x & 7) * 8));
	}
}

/* ---- model helpers ----------------------------------------------------- */

static int ofd_refs(int o)
{
	int n = prefs[o];
	for (int i = 0; i < MAXFD; i++)
		n += fdtab[i] == o;
	return n;
}

static int ofd_fd(int o) /* some fd of this process referring to o, or -1 */
{
	for (int i = 0; i < MAXFD; i++)
		if (fdtab[i] == o)
			return i;
	return -1;
}

static int ofd_new(int kind, int obj, int end, int nonblock)
{
	for (int i = 0; i < MAXOFD; i++) {
		if (!W->of[i].used) {
			W->of[i] = (struct ofd){ 1, kind, obj, end, nonblock, 0 };
			return i;
		}
	}
	model_warn("out of ofds");
	exit(99);
}

static int chan_new(int kind)
{
	for (int i = 0; i < MAXCH; i++) {
		if (!W->ch[i].used) {
			memset(&W->ch[i], 0, sizeof(W->ch[i]));
			W->ch[i].used = 1;
			W->ch[i].kind = kind;
			W->ch[i].gen = ++W->gen;
			W->ch[i].ofd[0] = W->ch[i].ofd[1] = -1;
			W->ch[i].lst = -1;
			return i;
		}
	}
	return -1;
}

static int live_objects(void)
{
	int n = 0;
	for (int i = 0; i < MAXOFD; i++)
		n += W->of[i].used;
	return n;
}

static int free_fds(void)
{
	int n = 0;
	for (int i = 5; i < 60; i++)
		n += fdtab[i] < 0;
	return n;
}

static struct chan *ofd_chan(int o, int *end)
{
	if (o < 0 || !W->of[o].used)
		return NULL;
	struct ofd *f = &W->of[o];
	if (f->kind == K_USTREAM || f->kind == K_UDGRAM || f->kind == K_USEQ || f->kind == K_TCP ||
	    f->kind == K_PIPE) {
		*end = f->end;
		return &W->ch[f->obj];
	}
	return NULL;
}

static struct chan *fd_chan(int fd, int *end)
{
	if (fd < 0 || fd >= MAXFD || fdtab[fd] < 0)
		return NULL;
	return ofd_chan(fdtab[fd], end);
}

static int fd_kind(int fd)
{
	if (fd < 0 || fd >= MAXFD || fdtab[fd] < 0)
		return K_NONE;
	return W->of[fdtab[fd]].kind;
}

static struct dirm *in_dir(struct chan *c, int e)
{
	return &c->d[1 - e];
}

static struct dirm *out_dir(struct chan *c, int e)
{
	return &c->d[e];
}

static bool is_msg(int kind)
{
	return kind == K_UDGRAM || kind == K_USEQ;
}

static long press1(long len)
{
	return len + (len < 8192 ? len : 8192) + 1024;
}

/* Upper bound of the kernel memory the unread writes of d use. */
static long dir_pressure(struct dirm *d)
{
	long p = 0;
	for (int i = 0; i < d->n; i++)
		p += press1(d->seg[(d->head + i) % MAXSEG].len);
	return p;
}

/* Upper bound of pipe buffer slots in use. */
static int dir_slots(struct dirm *d)
{
	int s = 0;
	for (int i = 0; i < d->n; i++)
		s += (d->seg[(d->head + i) % MAXSEG].rem + 4095) / 4096 + 1;
	return s;
}

static void dir_clear(struct dirm *d)
{
	d->head = d->n = 0;
	d->U = 0;
	d->fuzzy = 0;
	d->unsettled = 0;
}

static void dir_append(struct dirm *d, int kind, long n)
{
	if (n <= 0 && !is_msg(kind))
		return;
	if (d->n >= MAXSEG) {
		model_warn("segment list full");
		d->fuzzy = 1;
		return;
	}
	d->seg[(d->head + d->n) % MAXSEG] = (struct seg){ (int)n, (int)n };
	d->n++;
	d->U += n;
	d->wpos += n;
	if (kind == K_TCP && n > 0)
		d->unsettled = 1;
}

static void dir_consume(struct dirm *d, int kind, long k, const char *what)
{
	if (is_msg(kind)) {
		if (!d->n) {
			model_warn("%s: message consumed from an empty queue", what);
			return;
		}
		d->U -= d->seg[d->head].len;
		d->rpos += d->seg[d->head].len;
		d->head = (d->head + 1) % MAXSEG;
		d->n--;
		return;
	}
	if (k > d->U) {
		model_warn("%s: consumed %ld of %ld", what, k, d->U);
		k = d->U;
	}
	d->U -= k;
	d->rpos += k;
	while (k > 0 && d->n) {
		struct seg *s = &d->seg[d->head];
		long t = k < s->rem ? k : s->rem;
		s->rem -= (int)t;
		k -= t;
		if (!s->rem) {
			d->head = (d->head + 1) % MAXSEG;
			d->n--;
		}
	}
	while (d->n && !d->seg[d->head].rem && !is_msg(kind)) {
		d->head = (d->head + 1) % MAXSEG;
		d->n--;
	}
	if (!d->U)
		d->unsettled = 0;
}

/* How uncertain what follows from a fuzzy state of c is (see lend). */
static int lvl(struct chan *c)
{
	return c->kind == K_TCP ? 2 : 1;
}

static int imax(int a, int b)
{
	return a > b ? a : b;
}

/* Registrations whose edge-triggered/one-shot state may now differ. */
static void taint_regs_ofd(int o, int level)
{
	for (int i = 0; i < MAXEP; i++)
		for (int j = 0; j < MAXREG; j++) {
			struct reg *g = &W->ep[i].r[j];
			if (g->used && g->ofd == o && (g->ev & (EPOLLET | EPOLLONESHOT)))
				g->fuzzy = imax(g->fuzzy, level);
		}
}

static void taint_regs_chan(struct chan *c)
{
	for (int e = 0; e < 2; e++)
		if (c->ofd[e] >= 0)
			taint_regs_ofd(c->ofd[e], lvl(c));
}

static void set_fuzzy(struct chan *c, int dir)
{
	c->d[dir].fuzzy = 1;
	taint_regs_chan(c);
}

static void set_taint(struct chan *c, int e)
{
	c->taint[e] = 1;
	taint_regs_chan(c);
}

static int ofd_rfuzzy(int o, int depth);

static int chan_end_rfuzzy(struct chan *c, int e)
{
	if (c->taint[e] || c->d[0].fuzzy || c->d[1].fuzzy)
		return lvl(c);
	if (c->kind == K_USTREAM && dir_pressure(out_dir(c, e)) > UNIX_WRITABLE - 4096)
		return 1;
	return 0;
}

/* Readiness of o may differ between runs: the level (see lend). */
static int ofd_rfuzzy(int o, int depth)
{
	int e;
	struct chan *c = ofd_chan(o, &e);
	if (c)
		return chan_end_rfuzzy(c, e);
	if (W->of[o].kind == K_EPOLL && depth < 4) {
		struct epm *m = &W->ep[W->of[o].obj];
		int l = 0;
		for (int j = 0; j < MAXREG; j++)
			if (m->r[j].used)
				l = imax(l, imax(m->r[j].fuzzy, ofd_rfuzzy(m->r[j].ofd, depth + 1)));
		return l;
	}
	return 0;
}

static void ofd_death(int o);

static void chan_maybe_free(struct chan *c)
{
	if (c->ofd[0] == -1 && c->ofd[1] == -1)
		c->used = 0;
}

/* End e of c is closed for good. */
static void chan_end_closed(struct chan *c, int e)
{
	struct dirm *in = in_dir(c, e), *out = out_dir(c, e);
	c->ofd[e] = -1;
	switch (c->kind) {
	case K_USTREAM:
	case K_USEQ:
		out->fin = 1;
		/* The survivor gets SHUTDOWN_MASK (unix_release_sock). */
		c->shut_rd[1 - e] = c->shut_wr[1 - e] = 1;
		if (in->fuzzy && c->ofd[1 - e] >= 0)
			set_taint(c, 1 - e);
		dir_clear(in);
		in->broken = 1;
		break;
	case K_UDGRAM:
		dir_clear(in);
		in->broken = 1;
		break;
	case K_PIPE:
		if (e == 0) {
			dir_clear(&c->d[1]);
			c->d[1].broken = 1;
		} else {
			c->d[1].fin = 1;
		}
		break;
	case K_TCP:
		/* Unread bytes make the kernel send an RST; bytes the shim had
		 * stashed are not in the kernel's queue, so it may send a FIN
		 * (docs/semantics.md, "Unread data at close"). */
		if ((in->U > 0 || in->fuzzy || in->unsettled) && c->ofd[1 - e] != -1)
			set_taint(c, 1 - e);
		out->fin = 1;
		out->fin_unsettled = 1;
		dir_clear(in);
		in->broken = 1;
		break;
	}
	chan_maybe_free(c);
}

static void ofd_death(int o)
{
	struct ofd *f = &W->of[o];
	for (int i = 0; i < MAXEP; i++)
		for (int j = 0; j < MAXREG; j++)
			if (W->ep[i].r[j].used && W->ep[i].r[j].ofd == o)
				W->ep[i].r[j].used = 0;
	int e;
	struct chan *c = ofd_chan(o, &e);
	f->used = 0;
	if (c) {
		chan_end_closed(c, e);
	} else if (f->kind == K_EPOLL) {
		W->ep[f->obj].used = 0;
	} else if (f->kind == K_LISTEN) {
		struct lsn *l = &W->ls[f->obj];
		for (int i = 0; i < l->npend; i++) {
			struct chan *p = &W->ch[l->pend[i]];
			p->lst = -1;
			if (p->ofd[0] >= 0)
				set_taint(p, 0);
			p->ofd[1] = -1;
			dir_clear(&p->d[0]);
			p->d[0].broken = 1;
			chan_maybe_free(p);
		}
		l->npend = 0;
		l->used = 0;
	}
}

/* This process's fd is gone (close, or dup2 onto it). */
static void fd_gone(int fd)
{
	if (fd < 0 || fd >= MAXFD || fdtab[fd] < 0)
		return;
	int o = fdtab[fd];
	fdtab[fd] = -1;
	if (!ofd_refs(o))
		ofd_death(o);
}

/* A send on a unix datagram socket whose peer is gone fails with
 * ECONNREFUSED once, disconnects the socket and purges its receive queue
 * (unix_dgram_disconnected). */
static void send_failed(struct chan *c, int e, long r, int err)
{
	if (c->kind == K_UDGRAM && r < 0 && err == ECONNREFUSED)
		dir_clear(in_dir(c, e));
}

/* ---- candidate selection ----------------------------------------------- */

static int pick_fd(struct ctx *x, bool (*ok)(int fd))
{
	int cand[MAXFD], n = 0;
	for (int i = 0; i < MAXFD; i++)
		if (fdtab[i] >= 0 && (!ok || ok(i)) && !(in_child && cforbid[fdtab[i]]))
			cand[n++] = i;
	return n ? cand[rn(&x->r, (unsigned)n)] : -1;
}

/* An fd number this process does not use (EBADF). */
static int unused_fd(struct ctx *x)
{
	for (int t = 0; t < 20; t++) {
		int fd = 5 + (int)rn(&x->r, 50);
		if (fdtab[fd] < 0)
			return fd;
	}
	return 63;
}

static bool is_chan_fd(int fd)
{
	int e;
	return fd_chan(fd, &e) != NULL;
}

static bool is_sock_chan_fd(int fd)
{
	int k = fd_kind(fd);
	return k == K_USTREAM || k == K_UDGRAM || k == K_USEQ || k == K_TCP;
}

static bool is_epoll_fd(int fd)
{
	return fd_kind(fd) == K_EPOLL;
}

static bool is_listen_fd(int fd)
{
	return fd_kind(fd) == K_LISTEN;
}

static bool is_file_fd(int fd)
{
	return fd_kind(fd) == K_FILE;
}

/* ---- settling TCP directions ------------------------------------------- */

static void settle_end(struct ctx *x, struct chan *c, int e)
{
	if (c->kind != K_TCP || c->ofd[e] < 0 || c->taint[e])
		return;
	struct dirm *in = in_dir(c, e);
	if (in->fuzzy)
		return;
	int fd = ofd_fd(c->ofd[e]);
	if (fd < 0)
		return;
	int tries = 0;
	if (in->unsettled && in->U > 0) {
		for (;;) {
			ssize_t n = recv(fd, pbuf, (size_t)in->U, MSG_PEEK | MSG_DONTWAIT);
			if (n == in->U)
				break;
			if (++tries > 10000) {
				lbegin(x, "settle %d: timeout, peek sees %ld of %ld", fd, (long)n, in->U);
				lend(0);
				break;
			}
			t_sleep_ms(1);
		}
	}
	in->unsettled = 0;
	if (in->fin && in->fin_unsettled) {
		tries = 0;
		for (;;) {
			struct tcp_info ti;
			socklen_t tl = sizeof(ti);
			if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) != 0)
				break;
			int st = ti.tcpi_state;
			if (st != TCP_ESTABLISHED && st != TCP_FIN_WAIT1 && st != TCP_FIN_WAIT2 &&
			    st != TCP_SYN_SENT && st != TCP_SYN_RECV)
				break;
			if (++tries > 10000) {
				lbegin(x, "settle %d: timeout waiting for FIN", fd);
				lend(0);
				break;
			}
			t_sleep_ms(1);
		}
		in->fin_unsettled = 0;
	}
}

static void settle_ofd(struct ctx *x, int o, int depth)
{
	int e;
	struct chan *c = ofd_chan(o, &e);
	if (c) {
		settle_end(x, c, e);
	} else if (W->of[o].kind == K_EPOLL && depth < 4) {
		struct epm *m = &W->ep[W->of[o].obj];
		for (int j = 0; j < MAXREG; j++)
			if (m->r[j].used)
				settle_ofd(x, m->r[j].ofd, depth + 1);
	}
}

/* ---- blocking guarantees -------------------------------------------------- */

/* A blocking read on end e returns without waiting for anything that might
 * never come (after settle_end for TCP). */
static bool read_returns(struct chan *c, int e)
{
	struct dirm *in = in_dir(c, e);
	if (c->taint[e] || in->fuzzy)
		return false;
	if (c->kind == K_PIPE && e == 1)
		return true; /* EBADF */
	if (in->n > 0 || in->U > 0)
		return true;
	switch (c->kind) {
	case K_USTREAM:
	case K_USEQ:
		return c->shut_rd[e] || in->fin;
	case K_UDGRAM:
		return c->shut_rd[e];
	case K_PIPE:
		return in->fin;
	case K_TCP:
		return c->shut_rd[e] || in->fin;
	}
	return false;
}

/* A blocking write of n bytes at end e returns at once. */
static bool write_returns(struct chan *c, int e, long n)
{
	struct dirm *out = out_dir(c, e);
	if (c->taint[e] || out->fuzzy)
		return false;
	if (c->kind == K_PIPE)
		return e == 0 || out->broken || dir_slots(out) + (n + 4095) / 4096 + 1 <= 16;
	if (c->shut_wr[e])
		return true; /* EPIPE before anything else */
	if (c->kind == K_TCP)
		return out->broken || (out->U + n <= TCP_CAP && out->n < TCP_SEGCAP);
	if (c->kind == K_USTREAM && out->broken)
		return true;
	/* Unix datagram sockets allocate (and wait for send buffer) before
	 * they look at the peer. */
	return out->n < MAXSEG - 1 && dir_pressure(out) + press1(n) <= UNIX_SNDBUF - 8192;
}

/* A write of n bytes at end w succeeds at once with every byte. */
static bool write_succeeds(struct chan *c, int w, long n)
{
	struct dirm *out = out_dir(c, w);
	if (c->taint[w] || out->fuzzy || c->shut_wr[w] || out->broken || c->ofd[1 - w] == -1 ||
	    (c->kind == K_PIPE && w != 1))
		return false;
	return write_returns(c, w, n);
}

/* The result of a nonblocking write of n bytes is the same in every run. */
static bool write_exact(struct chan *c, int e, long n)
{
	struct dirm *out = out_dir(c, e);
	if (c->taint[e] || out->fuzzy)
		return false;
	if (c->kind == K_PIPE || c->kind == K_UDGRAM || c->kind == K_USEQ)
		return out->n < MAXSEG - 1; /* no write-behind: the kernel's answer */
	return write_returns(c, e, n);
}

/* ---- operations ------------------------------------------------------------ */

#define CALL(r, e, expr)                                                       \
	do {                                                                   \
		errno = 0;                                                     \
		r = (long)(expr);                                              \
		e = errno;                                                     \
	} while (0)

static void set_nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int op_socketpair(struct ctx *x)
{
	if (live_objects() >= MAXLIVE || free_fds() < 6)
		return 0;
	static const int types[] = { SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET };
	static const int kinds[] = { K_USTREAM, K_UDGRAM, K_USEQ };
	static const char *tn[] = { "STREAM", "DGRAM", "SEQPACKET" };
	int t = (int)rn(&x->r, 3);
	int nb = chance(&x->r, 30), ce = chance(&x->r, 30);
	int sv[2] = { -1, -1 };
	long r;
	int e;
	CALL(r, e, socketpair(AF_UNIX, types[t] | (nb ? SOCK_NONBLOCK : 0) | (ce ? SOCK_CLOEXEC : 0), 0, sv));
	lbegin(x, "socketpair %s%s%s", tn[t], nb ? "|NONBLOCK" : "", ce ? "|CLOEXEC" : "");
	lres(x, r, e);
	if (r == 0) {
		lput(" fds=%d,%d", sv[0], sv[1]);
		int ci = chan_new(kinds[t]);
		if (ci < 0 || sv[0] >= MAXFD || sv[1] >= MAXFD)
			t_die("model: socketpair");
		for (int i = 0; i < 2; i++) {
			int o = ofd_new(kinds[t], ci, i, nb);
			W->ch[ci].ofd[i] = o;
			fdtab[sv[i]] = o;
		}
	}
	lend(0);
	return 1;
}

static int op_pipe(struct ctx *x)
{
	if (live_objects() >= MAXLIVE || free_fds() < 6)
		return 0;
	int nb = chance(&x->r, 30), ce = chance(&x->r, 30);
	int p[2] = { -1, -1 };
	long r;
	int e;
	CALL(r, e, pipe2(p, (nb ? O_NONBLOCK : 0) | (ce ? O_CLOEXEC : 0)));
	lbegin(x, "pipe2%s%s", nb ? " NONBLOCK" : "", ce ? " CLOEXEC" : "");
	lres(x, r, e);
	if (r == 0) {
		lput(" fds=%d,%d", p[0], p[1]);
		int ci = chan_new(K_PIPE);
		if (ci < 0 || p[1] >= MAXFD)
			t_die("model: pipe");
		for (int i = 0; i < 2; i++) {
			int o = ofd_new(K_PIPE, ci, i, nb);
			W->ch[ci].ofd[i] = o;
			fdtab[p[i]] = o;
		}
	}
	lend(0);
	return 1;
}

static int tcp_listener(int flags, int backlog, struct sockaddr_in *a)
{
	int l = socket(AF_INET, SOCK_STREAM | flags, 0);
	*a = (struct sockaddr_in){ .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t al = sizeof(*a);
	if (l < 0 || bind(l, (struct sockaddr *)a, sizeof(*a)) || listen(l, backlog) ||
	    getsockname(l, (struct sockaddr *)a, &al))
		t_die("tcp listener");
	return l;
}

/* A connected TCP pair through a listener that is closed afterwards. */
static int op_tcp_pair(struct ctx *x)
{
	if (live_objects() >= MAXLIVE || free_fds() < 6)
		return 0;
	int cnb = chance(&x->r, 40), anb = chance(&x->r, 40), ce = chance(&x->r, 30);
	struct sockaddr_in a;
	int l = tcp_listener(SOCK_CLOEXEC, 1, &a);
	long r, rc, ra;
	int e, ec, ea;
	CALL(r, e, socket(AF_INET, SOCK_STREAM | (ce ? SOCK_CLOEXEC : 0), 0));
	int c = (int)r;
	if (c < 0 || e)
		t_die("socket");
	CALL(rc, ec, connect(c, (struct sockaddr *)&a, sizeof(a)));
	CALL(ra, ea, accept4(l, NULL, NULL, anb ? SOCK_NONBLOCK : 0));
	close(l);
	lbegin(x, "tcp-pair listen=%d client=%d connect", l, c);
	lres(x, rc, ec);
	lput(" accept4%s", anb ? " NONBLOCK" : "");
	lres(x, ra, ea);
	if (rc != 0 || ra < 0 || ra >= MAXFD)
		t_die("tcp pair");
	set_nodelay(c);
	set_nodelay((int)ra);
	if (cnb) {
		long rf;
		int ef;
		CALL(rf, ef, fcntl(c, F_SETFL, O_NONBLOCK));
		lput(" client O_NONBLOCK");
		lres(x, rf, ef);
	}
	int ci = chan_new(K_TCP);
	if (ci < 0)
		t_die("model: tcp");
	W->ch[ci].ofd[0] = ofd_new(K_TCP, ci, 0, cnb);
	W->ch[ci].ofd[1] = ofd_new(K_TCP, ci, 1, anb);
	fdtab[c] = W->ch[ci].ofd[0];
	fdtab[ra] = W->ch[ci].ofd[1];
	lend(0);
	return 1;
}

static int op_listen(struct ctx *x)
{
	if (live_objects() >= MAXLIVE || free_fds() < 6)
		return 0;
	int li = -1;
	for (int i = 0; i < MAXLS; i++)
		if (!W->ls[i].used)
			li = i;
	if (li < 0)
		return 0;
	int nb = chance(&x->r, 80);
	struct lsn *l = &W->ls[li];
	int fd = tcp_listener(nb ? SOCK_NONBLOCK : 0, 8, &l->addr);
	lbegin(x, "listen%s: fd=%d", nb ? " NONBLOCK" : "", fd);
	lend(0);
	if (fd >= MAXFD)
		t_die("listener fd");
	l->used = 1;
	l->npend = 0;
	l->ofd = ofd_new(K_LISTEN, li, 0, nb);
	fdtab[fd] = l->ofd;
	return 1;
}

static int op_connect(struct ctx *x)
{
	int lfd = pick_fd(x, is_listen_fd);
	if (lfd < 0 || live_objects() >= MAXLIVE + 2 || free_fds() < 6)
		return 0;
	struct lsn *l = &W->ls[W->of[fdtab[lfd]].obj];
	if (l->npend >= MAXPEND)
		return 0;
	int nb = chance(&x->r, 40);
	long r, rc;
	int e, ec;
	CALL(r, e, socket(AF_INET, SOCK_STREAM, 0));
	if (r < 0 || r >= MAXFD || e)
		t_die("socket");
	int c = (int)r;
	CALL(rc, ec, connect(c, (struct sockaddr *)&l->addr, sizeof(l->addr)));
	lbegin(x, "connect to listener %d: fd=%d", lfd, c);
	lres(x, rc, ec);
	if (rc != 0) {
		lend(0);
		close(c);
		return 1;
	}
	set_nodelay(c);
	if (nb) {
		long rf;
		int ef;
		CALL(rf, ef, fcntl(c, F_SETFL, O_NONBLOCK));
		lput(" O_NONBLOCK");
		lres(x, rf, ef);
	}
	lend(0);
	int ci = chan_new(K_TCP);
	if (ci < 0)
		t_die("model: connect");
	W->ch[ci].ofd[0] = ofd_new(K_TCP, ci, 0, nb);
	W->ch[ci].ofd[1] = -2;
	W->ch[ci].lst = W->of[fdtab[lfd]].obj;
	fdtab[c] = W->ch[ci].ofd[0];
	l->pend[l->npend++] = ci;
	return 1;
}

static int op_accept(struct ctx *x)
{
	int lfd = pick_fd(x, is_listen_fd);
	if (lfd < 0 || free_fds() < 4)
		return 0;
	int lo = fdtab[lfd];
	struct lsn *l = &W->ls[W->of[lo].obj];
	if (!l->npend && !W->of[lo].nonblock)
		return 0; /* would block forever */
	int v = (int)rn(&x->r, 3);
	int fl = chance(&x->r, 40) ? SOCK_NONBLOCK : 0;
	if (chance(&x->r, 30))
		fl |= SOCK_CLOEXEC;
	struct sockaddr_in a;
	socklen_t al = sizeof(a);
	long r;
	int e;
	for (int tries = 0;; tries++) {
		if (v == 0)
			CALL(r, e, accept(lfd, (struct sockaddr *)&a, &al));
		else if (v == 1)
			CALL(r, e, accept4(lfd, NULL, NULL, fl));
		else
			CALL(r, e, accept4(lfd, (struct sockaddr *)&a, &al, fl));
		/* The handshake completes in connect() on loopback in
		 * practice; a connection the model expects may still be on
		 * its way. */
		if (!(r < 0 && e == EAGAIN && l->npend && tries < 2000))
			break;
		t_sleep_ms(1);
	}
	if (v == 0)
		lbegin(x, "accept %d", lfd);
	else
		lbegin(x, "accept4 %d%s%s%s", lfd, v == 2 ? " addr" : "",
		       fl & SOCK_NONBLOCK ? " NONBLOCK" : "", fl & SOCK_CLOEXEC ? " CLOEXEC" : "");
	lres(x, r, e);
	if (r >= 0 && v != 1)
		lput(" addrlen=%d family=%d", (int)al, a.sin_family);
	lend(0);
	if (r >= 0) {
		if (r >= MAXFD)
			t_die("accepted fd");
		if (!l->npend) {
			model_warn("accept without a pending connection");
			close((int)r);
			return 1;
		}
		set_nodelay((int)r);
		int ci = l->pend[0];
		memmove(l->pend, l->pend + 1, sizeof(int) * (size_t)(--l->npend));
		struct chan *c = &W->ch[ci];
		c->lst = -1;
		c->ofd[1] = ofd_new(K_TCP, ci, 1, v != 0 && (fl & SOCK_NONBLOCK));
		fdtab[r] = c->ofd[1];
	}
	return 1;
}

static int op_open(struct ctx *x)
{
	if (live_objects() >= MAXLIVE || free_fds() < 6)
		return 0;
	int fi = (int)rn(&x->r, NFILES);
	static const int accs[] = { O_RDONLY, O_WRONLY, O_RDWR, O_RDWR };
	static const char *an[] = { "RDONLY", "WRONLY", "RDWR", "RDWR" };
	int ai = (int)rn(&x->r, 4);
	int fl = accs[ai] | O_CREAT;
	int app = chance(&x->r, 20), tr = chance(&x->r, 10) && ai != 0, ce = chance(&x->r, 30);
	fl |= (app ? O_APPEND : 0) | (tr ? O_TRUNC : 0) | (ce ? O_CLOEXEC : 0);
	char path[128];
	snprintf(path, sizeof(path), "%s/f%d", tmpdir, fi);
	long r;
	int e;
	CALL(r, e, open(path, fl, 0600));
	lbegin(x, "open f%d %s%s%s%s", fi, an[ai], app ? "|APPEND" : "", tr ? "|TRUNC" : "",
	       ce ? "|CLOEXEC" : "");
	lres(x, r, e);
	lend(0);
	if (r >= 0) {
		if (r >= MAXFD)
			t_die("file fd");
		int o = ofd_new(K_FILE, fi, 0, 0);
		W->of[o].acc = ai;
		fdtab[r] = o;
	}
	return 1;
}

static int op_epoll_create(struct ctx *x)
{
	int ei = -1;
	for (int i = 0; i < MAXEP - 1; i++)
		if (!W->ep[i].used)
			ei = i;
	if (ei < 0 || free_fds() < 6)
		return 0;
	int v = (int)rn(&x->r, 3);
	long r;
	int e;
	if (v == 0)
		CALL(r, e, epoll_create(1));
	else
		CALL(r, e, epoll_create1(v == 2 ? EPOLL_CLOEXEC : 0));
	lbegin(x, "%s", v == 0 ? "epoll_create" : v == 1 ? "epoll_create1" : "epoll_create1 CLOEXEC");
	lres(x, r, e);
	lend(0);
	if (r >= 0) {
		if (r >= MAXFD)
			t_die("epoll fd");
		memset(&W->ep[ei], 0, sizeof(W->ep[ei]));
		W->ep[ei].used = 1;
		fdtab[r] = ofd_new(K_EPOLL, ei, 0, 0);
	}
	return 1;
}

static int op_close(struct ctx *x)
{
	int fd = chance(&x->r, 5) ? unused_fd(x) : pick_fd(x, NULL);
	if (fd < 0)
		return 0;
	long r;
	int e;
	CALL(r, e, close(fd));
	lbegin(x, "close %d", fd);
	lres(x, r, e);
	lend(0);
	if (r == 0)
		fd_gone(fd);
	return 1;
}

static int op_dup(struct ctx *x)
{
	int fd = chance(&x->r, 4) ? unused_fd(x) : pick_fd(x, NULL);
	if (fd < 0 || free_fds() < 3)
		return 0;
	int v = (int)rn(&x->r, 5);
	int target = 5 + (int)rn(&x->r, 40);
	if (chance(&x->r, 10))
		target = fd;
	if ((avoid & AV_DUPFD) && v == 4)
		v = 0;
	if ((avoid & AV_EPOLLDUP) && (fd_kind(fd) == K_EPOLL || fd_kind(target) == K_EPOLL))
		return 0;
	long r;
	int e;
	switch (v) {
	case 0:
		CALL(r, e, dup(fd));
		lbegin(x, "dup %d", fd);
		break;
	case 1:
		CALL(r, e, dup2(fd, target));
		lbegin(x, "dup2 %d %d", fd, target);
		break;
	case 2:
	case 3: {
		int fl = v == 3 ? O_CLOEXEC : 0;
		CALL(r, e, dup3(fd, target, fl));
		lbegin(x, "dup3 %d %d%s", fd, target, fl ? " CLOEXEC" : "");
		break;
	}
	default: {
		int cmd = chance(&x->r, 50) ? F_DUPFD : F_DUPFD_CLOEXEC;
		CALL(r, e, fcntl(fd, cmd, target));
		lbegin(x, "fcntl %d %s %d", fd, cmd == F_DUPFD ? "F_DUPFD" : "F_DUPFD_CLOEXEC", target);
		break;
	}
	}
	lres(x, r, e);
	lend(0);
	if (r >= 0 && r != fd) {
		if (r >= MAXFD)
			t_die("dup fd");
		int o = fdtab[fd];
		if (fdtab[r] >= 0 && fdtab[r] != o) {
			fd_gone((int)r);
		}
		fdtab[r] = o;
	}
	return 1;
}

static int op_fcntl(struct ctx *x)
{
	int fd = chance(&x->r, 3) ? unused_fd(x) : pick_fd(x, NULL);
	if (fd < 0)
		return 0;
	int v = (int)rn(&x->r, 6), on = chance(&x->r, 50);
	long r;
	int e;
	if ((avoid & AV_DUPNONBLOCK) && v >= 1 && v <= 4 && fdtab[fd] >= 0 &&
	    (in_child || ofd_refs(fdtab[fd]) > 1))
		return 0;
	switch (v) {
	case 0:
		CALL(r, e, fcntl(fd, F_GETFL));
		lbegin(x, "fcntl %d F_GETFL", fd);
		lres(x, r, e);
		if (r >= 0)
			lput(" flags=0x%lx", r);
		break;
	case 1:
	case 2: {
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0)
			fl = 0;
		CALL(r, e, fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK));
		lbegin(x, "fcntl %d F_SETFL %sO_NONBLOCK", fd, on ? "+" : "-");
		lres(x, r, e);
		break;
	}
	case 3:
	case 4: {
		int val = on;
		CALL(r, e, ioctl(fd, FIONBIO, &val));
		lbegin(x, "ioctl %d FIONBIO %d", fd, on);
		lres(x, r, e);
		break;
	}
	default:
		if (chance(&x->r, 50)) {
			CALL(r, e, fcntl(fd, F_GETFD));
			lbegin(x, "fcntl %d F_GETFD", fd);
		} else {
			CALL(r, e, fcntl(fd, F_SETFD, on ? FD_CLOEXEC : 0));
			lbegin(x, "fcntl %d F_SETFD %d", fd, on);
		}
		lres(x, r, e);
		break;
	}
	lend(0);
	if ((v >= 1 && v <= 4) && r == 0 && fdtab[fd] >= 0)
		W->of[fdtab[fd]].nonblock = on;
	return 1;
}

/* Split n bytes at p into up to 4 iovecs (some empty). */
static int split_iov(struct ctx *x, unsigned char *p, size_t n, struct iovec *iov)
{
	int k = 1 + (int)rn(&x->r, 4);
	size_t off = 0;
	for (int i = 0; i < k; i++) {
		size_t len = i == k - 1 ? n - off : (n - off ? rn(&x->r, (unsigned)(n - off + 1)) : 0);
		iov[i].iov_base = p + off;
		iov[i].iov_len = len;
		off += len;
	}
	return k;
}

static void put_hash(const unsigned char *p, long n)
{
	if (n <= 0)
		return;
	if (n <= 12) {
		lput(" \"");
		for (long i = 0; i < n; i++)
			lput("%02x", p[i]);
		lput("\"");
	} else {
		lput(" fnv=%016llx", (unsigned long long)t_fnv(T_FNV_INIT, p, (size_t)n));
	}
}

static void drain(struct ctx *x, int fd, struct chan *c, int e);

enum { R_READ, R_READV, R_RECV, R_RECVFROM, R_RECVMSG };
static const char *rname[] = { "read", "readv", "recv", "recvfrom", "recvmsg" };

/* Perform one read-type call; returns the result, *err the errno. */
static long do_read(struct ctx *x, int call, int fd, size_t len, int flags, int *err,
		    int *mflags, int *alen)
{
	struct iovec iov[4];
	long r;
	int e;
	memset(rbuf, 0, len);
	*mflags = -1;
	*alen = -1;
	switch (call) {
	case R_READ:
		CALL(r, e, read(fd, rbuf, len));
		break;
	case R_READV: {
		int k = split_iov(x, rbuf, len, iov);
		CALL(r, e, readv(fd, iov, k));
		break;
	}
	case R_RECV:
		CALL(r, e, recv(fd, rbuf, len, flags));
		break;
	case R_RECVFROM: {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		CALL(r, e, recvfrom(fd, rbuf, len, flags, (struct sockaddr *)&ss, &sl));
		*alen = (int)sl;
		break;
	}
	default: {
		int k = split_iov(x, rbuf, len, iov);
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)k };
		CALL(r, e, recvmsg(fd, &m, flags));
		*mflags = m.msg_flags;
		break;
	}
	}
	*err = e;
	return r;
}

/* Model update after an exact read on end e. */
static void read_update(struct chan *c, int e, long r, int call, size_t len, int flags,
			const char *what)
{
	struct dirm *in = in_dir(c, e);
	if (r < 0 || (flags & MSG_PEEK))
		return;
	/* read()/readv() of nothing return 0 at once (sock_read_iter,
	 * vfs_readv); recv() of nothing takes a datagram. */
	if (call < R_RECV && !len)
		return;
	if (is_msg(c->kind)) {
		if (in->n > 0)
			dir_consume(in, c->kind, 0, what);
	} else if (r > 0) {
		dir_consume(in, c->kind, r, what);
	}
}

static int op_read(struct ctx *x)
{
	int fd;
	int p = (int)rn(&x->r, 100);
	if (p < 3)
		fd = unused_fd(x);
	else if (p < 8)
		fd = pick_fd(x, NULL);
	else if (p < 20)
		fd = pick_fd(x, is_file_fd);
	else
		fd = pick_fd(x, is_chan_fd);
	if (fd < 0)
		return 0;
	int kind = fd_kind(fd), e_end = 0;
	struct chan *c = fd_chan(fd, &e_end);
	bool sock = kind == K_USTREAM || kind == K_UDGRAM || kind == K_USEQ || kind == K_TCP ||
		    kind == K_LISTEN;
	int call = sock || chance(&x->r, 5) ? (int)rn(&x->r, 5) : (int)rn(&x->r, 2);
	size_t len = rsize(&x->r);
	int flags = 0;
	if (call >= R_RECV) {
		if (chance(&x->r, 30)) flags |= MSG_DONTWAIT;
		if (chance(&x->r, 15)) flags |= MSG_PEEK;
		if (chance(&x->r, 10)) flags |= MSG_TRUNC;
		if (chance(&x->r, 20)) flags |= MSG_WAITALL;
		if ((avoid & AV_PEEKWAITALL) && (flags & MSG_PEEK))
			flags &= ~MSG_WAITALL;
	}
	int fuzzy = 0;
	if (c) {
		struct dirm *in = in_dir(c, e_end);
		if ((avoid & AV_DGRAMRD) && c->kind == K_UDGRAM && c->shut_rd[e_end] && !in->n &&
		    !W->of[fdtab[fd]].nonblock && !(flags & MSG_DONTWAIT) && (call >= R_RECV || len))
			return 0;
		int o = fdtab[fd];
		bool nb = W->of[o].nonblock || (flags & MSG_DONTWAIT);
		if (in->fuzzy && !c->taint[e_end]) {
			drain(x, fd, c, e_end);
			return 1;
		}
		if (c->taint[e_end]) {
			if (!nb) {
				if (call < R_RECV)
					return 0;
				flags |= MSG_DONTWAIT;
			}
			fuzzy = lvl(c);
		} else {
			/* A blocking MSG_WAITALL receive of at most the bytes
			 * written needs no settling: its count is known. */
			bool wa_known = !nb && (flags & MSG_WAITALL) && !(flags & MSG_PEEK) &&
					call >= R_RECV && c->kind == K_TCP && len > 0 &&
					(long)len <= in->U && !c->shut_rd[e_end];
			if (!wa_known)
				settle_end(x, c, e_end);
			if (!nb && !wa_known) {
				if (!read_returns(c, e_end))
					return 0;
				if ((flags & MSG_WAITALL) && call >= R_RECV && !is_msg(c->kind) &&
				    (long)len > in->U && !(in->fin || c->shut_rd[e_end]))
					flags &= ~MSG_WAITALL;
			}
		}
	} else if (kind == K_LISTEN && call >= R_RECV && !W->of[fdtab[fd]].nonblock) {
		flags |= MSG_DONTWAIT; /* ENOTCONN at once anyway */
	}
	int err, mflags, alen;
	long r = do_read(x, call, fd, len, flags, &err, &mflags, &alen);
	lbegin(x, "%s %d len=%zu", rname[call], fd, len);
	if (call >= R_RECV)
		lput(" flags=%s", msgflags_str(flags));
	lres(x, r, err);
	if (r > 0)
		put_hash(rbuf, r < (long)len ? r : (long)len);
	if (mflags >= 0 && r >= 0)
		lput(" msg_flags=%s", msgflags_str(mflags));
	if (alen >= 0 && r >= 0)
		lput(" addrlen=%d", alen);
	lend(fuzzy);
	if (c && !fuzzy)
		read_update(c, e_end, r, call, len, flags, "read");
	return 1;
}

enum { W_WRITE, W_WRITEV, W_SEND, W_SENDTO, W_SENDMSG };
static const char *wname[] = { "write", "writev", "send", "sendto", "sendmsg" };

static long do_write(struct ctx *x, int call, int fd, size_t len, int flags, bool addr, int *err)
{
	struct iovec iov[4];
	long r;
	int e;
	switch (call) {
	case W_WRITE:
		CALL(r, e, write(fd, wbuf, len));
		break;
	case W_WRITEV: {
		int k = split_iov(x, wbuf, len, iov);
		CALL(r, e, writev(fd, iov, k));
		break;
	}
	case W_SEND:
		CALL(r, e, send(fd, wbuf, len, flags));
		break;
	case W_SENDTO:
		CALL(r, e, sendto(fd, wbuf, len, flags, addr ? (struct sockaddr *)&dummy_in : NULL,
				  addr ? sizeof(dummy_in) : 0));
		break;
	default: {
		int k = split_iov(x, wbuf, len, iov);
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)k };
		CALL(r, e, sendmsg(fd, &m, flags));
		break;
	}
	}
	*err = e;
	return r;
}

static int op_write(struct ctx *x)
{
	int fd;
	int p = (int)rn(&x->r, 100);
	if (p < 3)
		fd = unused_fd(x);
	else if (p < 8)
		fd = pick_fd(x, NULL);
	else if (p < 20)
		fd = pick_fd(x, is_file_fd);
	else
		fd = pick_fd(x, is_chan_fd);
	if (fd < 0)
		return 0;
	int kind = fd_kind(fd), e_end = 0;
	struct chan *c = fd_chan(fd, &e_end);
	bool sock = kind == K_USTREAM || kind == K_UDGRAM || kind == K_USEQ || kind == K_TCP ||
		    kind == K_LISTEN;
	int call = sock || chance(&x->r, 5) ? (int)rn(&x->r, 5) : (int)rn(&x->r, 2);
	size_t len = rsize(&x->r);
	int flags = 0;
	bool addr = false;
	if (call >= W_SEND) {
		if (chance(&x->r, 30)) flags |= MSG_DONTWAIT;
		if (chance(&x->r, 40)) flags |= MSG_NOSIGNAL;
		if (call == W_SENDTO && chance(&x->r, 8))
			addr = true;
	}
	int fuzzy = 0;
	bool wb_gone = false;
	if (c) {
		struct dirm *out = out_dir(c, e_end);
		int o = fdtab[fd];
		bool nb = W->of[o].nonblock || (flags & MSG_DONTWAIT);
		if (!out->fuzzy && !c->taint[e_end] && out->n >= MAXSEG - 2)
			return 0;
		/* Batch mode: a fork child's queued bytes that the socket does not
		 * take are dropped 2 s into _exit() (write-behind delivery gives
		 * up); the child leaves full sockets alone. */
		if (in_child && (out->fuzzy || c->taint[e_end]))
			return 0;
		bool wb = W->of[o].nonblock && (c->kind == K_USTREAM || c->kind == K_TCP);
		if ((avoid & AV_SHUTWR) && wb && c->own_shut_wr[e_end])
			return 0;
		if ((avoid & AV_FORKSHUTWR) && wb && c->child_shut_wr[e_end])
			return 0;
		/* TCP bytes for a peer that shut its reading side are still
		 * queued there, but may wait for a window update that a
		 * reader with RCV_SHUTDOWN does not send: timing. */
		bool to_shut_rd = c->kind == K_TCP && c->shut_rd[1 - e_end] && !out->broken &&
				  c->ofd[1 - e_end] != -1;
		if ((avoid & AV_TCPSHUTRD) && to_shut_rd)
			return 0;
		if (c->kind == K_TCP && !out->fuzzy && !c->taint[e_end] && !out->broken &&
		    out->n >= TCP_SEGCAP && !chance(&x->r, 20))
			return 0;
		if (c->kind == K_TCP && !addr && out->U + (long)len > TCP_CAP && !out->fuzzy &&
		    !c->taint[e_end])
			len = (size_t)(TCP_CAP - out->U > 0 ? rn(&x->r, (unsigned)(TCP_CAP - out->U + 1)) : 0);
		if (!nb && !write_returns(c, e_end, (long)len)) {
			if (call >= W_SEND)
				flags |= MSG_DONTWAIT;
			else
				return 0;
			nb = true;
		}
		fuzzy = write_exact(c, e_end, (long)len) ? 0
			: c->kind == K_TCP && (out->fuzzy || c->taint[e_end]) ? 2 : 1;
		if (addr && c->kind == K_USTREAM)
			fuzzy = c->taint[e_end] ? lvl(c) : 0; /* EISCONN whatever is queued */
		/* Write-behind (a nonblocking stream socket) queues bytes for a
		 * unix peer that shut its reading side: nothing on this end
		 * shows it (no poll bit), so the failure comes with a later
		 * write once the queue was sent (docs/semantics.md,
		 * "Write-behind"), where the kernel fails this one. Everything
		 * else must fail at once: an own shutdown(SHUT_WR), and a peer
		 * that closed or shut its writing side too (HUP/RDHUP here,
		 * which the shim watches for). */
		wb_gone = wb && !fuzzy && !c->own_shut_wr[e_end] && !addr &&
			  c->kind == K_USTREAM && c->ofd[1 - e_end] >= 0 && c->shut_wr[e_end] &&
			  !c->shut_rd[e_end];
		if (wb_gone || to_shut_rd)
			fuzzy = lvl(c);
		if (in_child && fuzzy)
			return 0;
	}
	if (c || kind == K_FILE)
		fill_content(wbuf, c ? dir_key(c, e_end) : (uint64_t)x->idx, c ? out_dir(c, e_end)->wpos : 0, len);
	int err;
	sp_mark();
	long r = do_write(x, call, fd, len, flags, addr, &err);
	lbegin(x, "%s %d len=%zu", wname[call], fd, len);
	if (call >= W_SEND)
		lput(" flags=%s%s", msgflags_str(flags), addr ? " addr=127.0.0.1:9" : "");
	lres(x, r, err);
	sp_put();
	lend(fuzzy);
	if (c) {
		struct dirm *out = out_dir(c, e_end);
		if (!fuzzy)
			send_failed(c, e_end, r, err);
		if (fuzzy) {
			if (!c->taint[e_end] && !wb_gone && r > 0) {
				set_fuzzy(c, e_end);
				out->U += r;
				out->wpos += r;
			}
		} else if (r >= 0 && !out->broken && c->ofd[1 - e_end] != -1 &&
			   !(call == W_WRITEV && !len)) {
			/* writev() of nothing sends nothing (vfs_writev); a
			 * zero-length write() or send() is a datagram. */
			dir_append(out, c->kind, r);
		}
		if (wb_gone)
			set_taint(c, e_end);
		/* TCP to a closed peer: the peer's RST (natively at once) or the
		 * failure of a queued send (batch: reported by a later write)
		 * decides what follows. */
		if (c->kind == K_TCP && out->broken && r > 0) {
			set_taint(c, e_end);
			if (c->ofd[1 - e_end] != -1)
				set_taint(c, 1 - e_end);
		}
	}
	return 1;
}

static int op_filepos(struct ctx *x)
{
	int fd = chance(&x->r, 15) ? pick_fd(x, NULL) : pick_fd(x, is_file_fd);
	if (fd < 0)
		return 0;
	int v = (int)rn(&x->r, 5);
	long off = chance(&x->r, 5) ? -1 - (long)rn(&x->r, 10) : (long)rn(&x->r, 90000);
	size_t len = rsize(&x->r);
	long r;
	int e;
	switch (v) {
	case 0:
		memset(rbuf, 0, len);
		CALL(r, e, pread(fd, rbuf, len, off));
		lbegin(x, "pread %d len=%zu off=%ld", fd, len, off);
		lres(x, r, e);
		if (r > 0)
			put_hash(rbuf, r);
		break;
	case 1:
		fill_content(wbuf, (uint64_t)x->idx * 7, 0, len);
		CALL(r, e, pwrite(fd, wbuf, len, off));
		lbegin(x, "pwrite %d len=%zu off=%ld", fd, len, off);
		lres(x, r, e);
		break;
	case 2: {
		static const int wh[] = { SEEK_SET, SEEK_CUR, SEEK_END };
		static const char *whn[] = { "SET", "CUR", "END" };
		int w = (int)rn(&x->r, 3);
		if (w)
			off = (long)rn(&x->r, 20000) - 10000;
		CALL(r, e, lseek(fd, off, wh[w]));
		lbegin(x, "lseek %d %ld %s", fd, off, whn[w]);
		lres(x, r, e);
		break;
	}
	case 3: {
		struct stat st;
		CALL(r, e, fstat(fd, &st));
		lbegin(x, "fstat %d", fd);
		lres(x, r, e);
		if (r == 0)
			lput(" type=%o size=%ld", (unsigned)(st.st_mode & S_IFMT),
			     S_ISREG(st.st_mode) ? (long)st.st_size : 0L);
		break;
	}
	default: {
		struct iovec iov[4];
		if (chance(&x->r, 50)) {
			memset(rbuf, 0, len);
			int k = split_iov(x, rbuf, len, iov);
			CALL(r, e, preadv(fd, iov, k, off));
			lbegin(x, "preadv %d len=%zu off=%ld", fd, len, off);
			lres(x, r, e);
			if (r > 0)
				put_hash(rbuf, r);
		} else {
			fill_content(wbuf, (uint64_t)x->idx * 13, 0, len);
			int k = split_iov(x, wbuf, len, iov);
			CALL(r, e, pwritev(fd, iov, k, off));
			lbegin(x, "pwritev %d len=%zu off=%ld", fd, len, off);
			lres(x, r, e);
		}
		break;
	}
	}
	lend(0);
	return 1;
}

static int op_shutdown(struct ctx *x)
{
	int fd = chance(&x->r, 10) ? pick_fd(x, NULL) : pick_fd(x, is_sock_chan_fd);
	if (fd < 0 || is_listen_fd(fd))
		return 0;
	static const int hows[] = { SHUT_RD, SHUT_WR, SHUT_RDWR };
	static const char *hn[] = { "RD", "WR", "RDWR" };
	int h = (int)rn(&x->r, 3);
	int e_end = 0;
	struct chan *c = fd_chan(fd, &e_end);
	int fuzzy = c && c->taint[e_end] ? lvl(c) : 0;
	long r;
	int e;
	CALL(r, e, shutdown(fd, hows[h]));
	lbegin(x, "shutdown %d %s", fd, hn[h]);
	lres(x, r, e);
	lend(fuzzy);
	if (!c || r != 0 || fuzzy)
		return 1;
	int peer = 1 - e_end;
	struct dirm *in = in_dir(c, e_end), *out = out_dir(c, e_end);
	bool rd = h != 1, wr = h != 0;
	if (wr && in_child)
		c->child_shut_wr[e_end] = 1;
	switch (c->kind) {
	case K_USTREAM:
	case K_USEQ:
		if (wr) {
			c->shut_wr[e_end] = 1;
			c->own_shut_wr[e_end] = 1;
			out->fin = 1;
			c->shut_rd[peer] = 1; /* the peer's RCV_SHUTDOWN */
		}
		if (rd) {
			c->shut_rd[e_end] = 1;
			in->broken = 1;
			c->shut_wr[peer] = 1; /* the peer's SEND_SHUTDOWN */
		}
		break;
	case K_UDGRAM:
		if (wr)
			c->shut_wr[e_end] = 1;
		if (rd) {
			c->shut_rd[e_end] = 1;
			in->broken = 1;
		}
		break;
	case K_TCP:
		if (wr)
			c->own_shut_wr[e_end] = 1;
		if (wr && !c->shut_wr[e_end]) {
			c->shut_wr[e_end] = 1;
			out->fin = 1;
			out->fin_unsettled = 1;
		}
		if (rd)
			c->shut_rd[e_end] = 1;
		/* FIN_WAIT with RCV_SHUTDOWN: arriving data is answered with
		 * an RST (tcp_rcv_state_process). */
		if (c->shut_rd[e_end] && c->shut_wr[e_end])
			in->broken = 1;
		break;
	}
	return 1;
}

static int op_fionread(struct ctx *x)
{
	int fd = chance(&x->r, 20) ? pick_fd(x, NULL) : pick_fd(x, is_chan_fd);
	if (fd < 0)
		return 0;
	int e_end = 0;
	struct chan *c = fd_chan(fd, &e_end);
	int fuzzy = 0;
	if (c) {
		settle_end(x, c, e_end);
		fuzzy = c->taint[e_end] || in_dir(c, e_end)->fuzzy ? lvl(c) : 0;
	}
	int n = -1;
	long r;
	int e;
	CALL(r, e, ioctl(fd, FIONREAD, &n));
	lbegin(x, "ioctl %d FIONREAD", fd);
	lres(x, r, e);
	if (r == 0)
		lput(" n=%d", n);
	lend(fuzzy);
	return 1;
}

static int op_sockopt(struct ctx *x)
{
	int fd = chance(&x->r, 15) ? pick_fd(x, NULL) : pick_fd(x, is_sock_chan_fd);
	if (fd < 0)
		return 0;
	int e_end = 0;
	struct chan *c = fd_chan(fd, &e_end);
	int fuzzy = c && (c->taint[e_end] || c->d[0].fuzzy || c->d[1].fuzzy) ? lvl(c) : 0;
	static const int opts[] = { SO_ERROR, SO_ERROR, SO_TYPE, SO_ACCEPTCONN };
	static const char *on[] = { "SO_ERROR", "SO_ERROR", "SO_TYPE", "SO_ACCEPTCONN" };
	int i = (int)rn(&x->r, 4);
	int v = -1;
	socklen_t vl = sizeof(v);
	long r;
	int e;
	CALL(r, e, getsockopt(fd, SOL_SOCKET, opts[i], &v, &vl));
	lbegin(x, "getsockopt %d %s", fd, on[i]);
	lres(x, r, e);
	if (r == 0)
		lput(" value=%s", opts[i] == SO_ERROR && v > 0 ? t_errname(v) : "");
	if (r == 0 && !(opts[i] == SO_ERROR && v > 0))
		lput("%d", v);
	lend(fuzzy);
	return 1;
}

static int pick_epoll(struct ctx *x)
{
	return pick_fd(x, is_epoll_fd);
}

static struct reg *find_reg(struct epm *m, int fd, int o)
{
	for (int j = 0; j < MAXREG; j++)
		if (m->r[j].used && m->r[j].fd == fd && m->r[j].ofd == o)
			return &m->r[j];
	return NULL;
}

static int op_epctl(struct ctx *x)
{
	int ep = pick_epoll(x);
	if (ep < 0)
		return 0;
	struct epm *m = &W->ep[W->of[fdtab[ep]].obj];
	int op = (int)rn(&x->r, 10);
	op = op < 5 ? EPOLL_CTL_ADD : op < 8 ? EPOLL_CTL_MOD : EPOLL_CTL_DEL;
	int fd;
	int p = (int)rn(&x->r, 100);
	if (p < 4)
		fd = unused_fd(x);
	else if (p < 12)
		fd = pick_fd(x, NULL);
	else if (p < 22)
		fd = pick_fd(x, is_listen_fd);
	else
		fd = pick_fd(x, is_chan_fd);
	if (fd < 0)
		fd = pick_fd(x, NULL);
	if (fd < 0)
		return 0;
	uint32_t ev = 0;
	if (chance(&x->r, 75)) ev |= EPOLLIN;
	if (chance(&x->r, 45)) ev |= EPOLLOUT;
	if (chance(&x->r, 30)) ev |= EPOLLRDHUP;
	if (chance(&x->r, 30)) ev |= EPOLLET;
	if (chance(&x->r, 15)) ev |= EPOLLONESHOT;
	if (chance(&x->r, 3)) ev |= EPOLLPRI;
	if (op == EPOLL_CTL_ADD && chance(&x->r, 3)) ev = (ev & ~EPOLLONESHOT) | EPOLLEXCLUSIVE;
	if (op != EPOLL_CTL_ADD && chance(&x->r, 2)) ev |= EPOLLEXCLUSIVE;
	uint64_t data = (uint64_t)fd * 100000 + (uint64_t)x->idx;
	struct epoll_event e_ = { .events = ev, .data.u64 = data };
	long r;
	int e;
	bool nullev = op == EPOLL_CTL_DEL && chance(&x->r, 50);
	CALL(r, e, epoll_ctl(ep, op, fd, nullev ? NULL : &e_));
	lbegin(x, "epoll_ctl %d %s %d", ep, op == EPOLL_CTL_ADD ? "ADD" : op == EPOLL_CTL_MOD ? "MOD" : "DEL", fd);
	if (op != EPOLL_CTL_DEL)
		lput(" %s data=%llu", evstr(ev), (unsigned long long)data);
	lres(x, r, e);
	lend(0);
	if (r != 0 || fdtab[fd] < 0)
		return 1;
	int o = fdtab[fd];
	struct reg *g = find_reg(m, fd, o);
	if (op == EPOLL_CTL_ADD) {
		if (g) {
			model_warn("ADD succeeded on a registered fd");
			return 1;
		}
		for (int j = 0; j < MAXREG; j++) {
			if (!m->r[j].used) {
				m->r[j] = (struct reg){ 1, fd, o, ev, data, 0 };
				return 1;
			}
		}
		model_warn("registrations full");
	} else if (!g) {
		model_warn("MOD/DEL succeeded on an unregistered fd");
	} else if (op == EPOLL_CTL_MOD) {
		g->ev = ev;
		g->data = data;
		g->fuzzy = 0;
	} else {
		g->used = 0;
	}
	return 1;
}

static int cmp_ev(const void *a, const void *b)
{
	uint64_t p = ((const struct epoll_event *)a)->data.u64;
	uint64_t q = ((const struct epoll_event *)b)->data.u64;
	return p < q ? -1 : p > q;
}

static bool ep_forbidden(int o, int depth)
{
	if (!in_child)
		return false;
	if (cforbid[o])
		return true;
	if (W->of[o].kind == K_EPOLL && depth < 4) {
		struct epm *m = &W->ep[W->of[o].obj];
		for (int j = 0; j < MAXREG; j++)
			if (m->r[j].used && ep_forbidden(m->r[j].ofd, depth + 1))
				return true;
	}
	return false;
}

static int op_epwait(struct ctx *x)
{
	int ep = chance(&x->r, 3) ? pick_fd(x, NULL) : pick_epoll(x);
	if (ep < 0)
		return 0;
	int o = fdtab[ep];
	if (ep_forbidden(o, 0))
		return 0;
	struct epm *m = W->of[o].kind == K_EPOLL ? &W->ep[W->of[o].obj] : NULL;
	int nregs = 0;
	if (m) {
		settle_ofd(x, o, 0);
		for (int j = 0; j < MAXREG; j++)
			nregs += m->r[j].used;
	}
	int maxev = 64;
	if (chance(&x->r, 20) && nregs <= 3)
		maxev = nregs + (int)rn(&x->r, 2);
	if (chance(&x->r, 2))
		maxev = 0;
	int rf[MAXREG] = { 0 };
	int any = 0;
	if (m) {
		for (int j = 0; j < MAXREG; j++) {
			if (!m->r[j].used)
				continue;
			rf[j] = imax(m->r[j].fuzzy, ofd_rfuzzy(m->r[j].ofd, 1));
			any = imax(any, rf[j]);
		}
	}
	struct epoll_event ev[64];
	long r;
	int e;
	if (maxev == 0) {
		CALL(r, e, epoll_wait(ep, ev, 0, 0));
	} else {
		CALL(r, e, epoll_wait(ep, ev, maxev, 0));
	}
	lbegin(x, "epoll_wait %d max=%d", ep, maxev);
	lres(x, r, e);
	lend(any);
	if (r > 0) {
		qsort(ev, (size_t)r, sizeof(ev[0]), cmp_ev);
		for (int i = 0; i < r; i++) {
			int f = any;
			if (m) {
				f = 0;
				bool found = false;
				for (int j = 0; j < MAXREG; j++)
					if (m->r[j].used && m->r[j].data == ev[i].data.u64) {
						f = imax(f, rf[j]);
						found = true;
					}
				if (!found)
					f = any;
			}
			linelen = 0;
			lput("  data=%llu events=%s", (unsigned long long)ev[i].data.u64, evstr(ev[i].events));
			lend(f);
		}
	}
	if (m)
		for (int j = 0; j < MAXREG; j++)
			if (m->r[j].used && rf[j] && (m->r[j].ev & (EPOLLET | EPOLLONESHOT)))
				m->r[j].fuzzy = imax(m->r[j].fuzzy, rf[j]);
	return 1;
}

static int op_poll(struct ctx *x)
{
	struct pollfd pf[4];
	int pfz[4];
	int n = 1 + (int)rn(&x->r, 4);
	int any = 0;
	for (int i = 0; i < n; i++) {
		int p = (int)rn(&x->r, 100);
		int fd = p < 5 ? -1 : p < 10 ? unused_fd(x) : pick_fd(x, NULL);
		if (fd >= 0 && fdtab[fd] >= 0 && ep_forbidden(fdtab[fd], 0))
			fd = -1;
		short evs = 0;
		if (chance(&x->r, 70)) evs |= POLLIN;
		if (chance(&x->r, 50)) evs |= POLLOUT;
		if (chance(&x->r, 25)) evs |= POLLRDHUP;
		if (chance(&x->r, 5)) evs |= POLLPRI;
		pf[i] = (struct pollfd){ fd, evs, 0 };
		pfz[i] = 0;
		if (fd >= 0 && fdtab[fd] >= 0) {
			settle_ofd(x, fdtab[fd], 0);
			pfz[i] = ofd_rfuzzy(fdtab[fd], 0);
		}
		any = imax(any, pfz[i]);
	}
	long r;
	int e;
	CALL(r, e, poll(pf, (nfds_t)n, 0));
	lbegin(x, "poll");
	for (int i = 0; i < n; i++)
		lput(" %d:%s", pf[i].fd, evstr((uint32_t)pf[i].events));
	lres(x, r, e);
	lend(any);
	if (r >= 0)
		for (int i = 0; i < n; i++) {
			linelen = 0;
			lput("  %d revents=%s", pf[i].fd, evstr((uint16_t)pf[i].revents));
			lend(pfz[i]);
		}
	return 1;
}

/* Read back everything this run wrote into a fuzzy direction. */
static void drain(struct ctx *x, int fd, struct chan *c, int e)
{
	struct dirm *in = in_dir(c, e);
	uint64_t key = dir_key(c, 1 - e);
	long want = in->U, got = 0;
	bool order = true, nb = W->of[fdtab[fd]].nonblock;
	int err = 0, idle = 0;
	const char *end = "complete";
	while (got < want) {
		size_t chunk = (size_t)(want - got < BUFSZ ? want - got : BUFSZ);
		ssize_t n = c->kind == K_PIPE ? read(fd, rbuf, chunk)
					      : recv(fd, rbuf, chunk, nb ? MSG_DONTWAIT : 0);
		if ((n < 0 && (errno == EAGAIN || errno == EINTR)) || (n == 0 && c->shut_rd[e])) {
			if (++idle > 20000) {
				end = "stalled";
				break;
			}
			t_sleep_ms(1);
			continue;
		}
		if (n <= 0) {
			err = n < 0 ? errno : 0;
			end = n < 0 ? t_errname(err) : "EOF";
			break;
		}
		idle = 0;
		fill_content(wbuf, key, in->rpos + got, (size_t)n);
		if (memcmp(rbuf, wbuf, (size_t)n))
			order = false;
		got += n;
	}
	lbegin(x, "drain %d: %ld bytes", fd, got);
	lend(lvl(c));
	lbegin(x, "drain %d: %s in-order=%s", fd, end, order ? "yes" : "no");
	lend(0);
	dir_clear(in);
	in->epoch++;
	in->wpos = in->rpos = 0;
	taint_regs_chan(c);
}

/* Nonblocking writes until the socket or pipe takes no more. */
static int op_fill(struct ctx *x)
{
	int fd = pick_fd(x, is_chan_fd);
	if (fd < 0)
		return 0;
	int e_end = 0;
	struct chan *c = fd_chan(fd, &e_end);
	struct dirm *out = out_dir(c, e_end);
	if (c->taint[e_end] || out->fuzzy || out->broken || c->shut_wr[e_end] || c->ofd[1 - e_end] == -1 ||
	    (c->kind == K_PIPE && e_end == 0))
		return 0;
	bool exact = c->kind == K_PIPE || is_msg(c->kind);
	bool use_send = c->kind != K_PIPE;
	int o = fdtab[fd];
	bool setnb = !use_send && !W->of[o].nonblock;
	size_t chunk = exact && chance(&x->r, 50) ? 1 + rn(&x->r, 5000) : 65536;
	if (setnb)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	long total = 0, writes = 0, r = 0;
	int err = 0;
	sp_mark();
	for (int i = 0; i < 400; i++) {
		if (exact && out->n >= MAXSEG - 2)
			break;
		fill_content(wbuf, dir_key(c, e_end), out->wpos, chunk);
		if (use_send)
			CALL(r, err, send(fd, wbuf, chunk, MSG_DONTWAIT | MSG_NOSIGNAL));
		else
			CALL(r, err, write(fd, wbuf, chunk));
		if (r < 0) {
			send_failed(c, e_end, r, err);
			break;
		}
		writes++;
		total += r;
		if (exact) {
			dir_append(out, c->kind, r);
		} else {
			out->wpos += r;
			out->U += r;
		}
		if (r == 0 && !is_msg(c->kind))
			break;
	}
	if (setnb)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	lbegin(x, "fill %d chunk=%zu: %ld bytes in %ld writes, then %s", fd, chunk, total, writes,
	       r < 0 ? t_errname(err) : "stop");
	sp_put();
	lend(exact ? 0 : lvl(c));
	if (!exact)
		set_fuzzy(c, e_end);
	return 1;
}

static int op_drain(struct ctx *x)
{
	int cand[MAXFD], n = 0;
	for (int i = 0; i < MAXFD; i++) {
		int e;
		struct chan *c = fd_chan(i, &e);
		if (c && !c->taint[e] && in_dir(c, e)->fuzzy && !(in_child && cforbid[fdtab[i]]))
			cand[n++] = i;
	}
	if (!n)
		return 0;
	int fd = cand[rn(&x->r, (unsigned)n)], e;
	struct chan *c = fd_chan(fd, &e);
	drain(x, fd, c, e);
	return 1;
}

static void sigpipe_handler(int sig)
{
	(void)sig;
	sigpipes++;
}

static void usr_handler(int sig)
{
	(void)sig;
	usr_hits++;
	int e = errno;
	send(note[0], "h", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	errno = e;
}

static void set_sigpipe(int how)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = how == 0 ? SIG_IGN : how == 3 ? SIG_DFL : sigpipe_handler;
	sa.sa_flags = how == 2 ? SA_RESTART : 0;
	sigaction(SIGPIPE, &sa, NULL);
}

static const char *sp_name[] = { "ignored", "handler", "handler SA_RESTART", "default" };

static int op_sigpipe(struct ctx *x)
{
	int how = (int)rn(&x->r, 3);
	set_sigpipe(how);
	lbegin(x, "SIGPIPE %s", sp_name[how]);
	lend(0);
	return 1;
}

/* ---- helpers in other processes --------------------------------------- */

/* Like t_wait_blocked, a little quicker: the parent is asleep in the call
 * under test three checks in a row. */
static void wait_blocked(pid_t pid)
{
	int in_a_row = 0;
	for (int i = 0; i < 4000 && in_a_row < 3; i++) {
		in_a_row = t_task_state(pid, 0) == 'S' ? in_a_row + 1 : 0;
		t_sleep_ms(3);
	}
	t_sleep_ms(5);
}

/* Raw system calls, so that a helper never goes through the shim. */
static long raw_write(int fd, const void *p, size_t n)
{
	return syscall(SYS_write, fd, p, n);
}

static pid_t helper(int sig, int wait_note, int wfd, const unsigned char *data, size_t n)
{
	pid_t parent = getpid();
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		t_die("fork helper");
	if (pid)
		return pid;
	wait_blocked(parent);
	if (sig)
		kill(parent, sig);
	if (wait_note) {
		char b;
		if (syscall(SYS_recvfrom, note[1], &b, 1, 0, NULL, NULL) != 1)
			syscall(SYS_exit_group, 2);
		wait_blocked(parent);
	}
	if (wfd >= 0 && n) {
		size_t done = 0;
		while (done < n) {
			long w = raw_write(wfd, data + done, n - done);
			if (w <= 0)
				syscall(SYS_exit_group, 3);
			done += (size_t)w;
		}
	}
	syscall(SYS_exit_group, 0);
	return 0;
}

static int reap(pid_t pid)
{
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	char b[16];
	while (syscall(SYS_recvfrom, note[1], b, sizeof(b), MSG_DONTWAIT, NULL, NULL) > 0)
		;
	return st;
}

/* A reader end whose next blocking read would wait forever. */
static bool blocks_forever(int fd)
{
	int e;
	struct chan *c = fd_chan(fd, &e);
	if (!c || c->taint[e] || W->of[fdtab[fd]].nonblock || c->ofd[1 - e] < 0)
		return false;
	if (c->kind == K_PIPE && e != 0)
		return false;
	struct dirm *in = in_dir(c, e);
	if (in->fuzzy || in->U || in->n || in->fin || c->shut_rd[e])
		return false;
	if (c->kind == K_TCP && (in->unsettled || c->d[0].fuzzy || c->d[1].fuzzy))
		return false;
	return true;
}

/* A blocking read that waits: interrupted by a signal (EINTR, or restarted
 * under SA_RESTART and then fed by the helper), or fed by a helper while
 * it waits for more (MSG_WAITALL, MSG_PEEK). */
static int op_blocked_read(struct ctx *x, int mode /* 0 EINTR, 1 restart, 2 late data */)
{
	if (in_child)
		return 0;
	int cand[MAXFD], n = 0;
	for (int i = 0; i < MAXFD; i++) {
		int e;
		struct chan *c = fd_chan(i, &e);
		if (!c)
			continue;
		if (mode == 2 && c->kind != K_PIPE && !c->taint[e] && !W->of[fdtab[i]].nonblock &&
		    c->ofd[1 - e] >= 0 && !in_dir(c, e)->fuzzy && !in_dir(c, e)->fin &&
		    !c->shut_rd[e] && !in_dir(c, e)->broken && ofd_fd(c->ofd[1 - e]) >= 0) {
			cand[n++] = i;
			continue;
		}
		if (blocks_forever(i) && (mode == 0 || ofd_fd(c->ofd[1 - e]) >= 0))
			cand[n++] = i;
	}
	if (!n)
		return 0;
	int fd = cand[rn(&x->r, (unsigned)n)], e;
	struct chan *c = fd_chan(fd, &e);
	settle_end(x, c, e);
	struct dirm *in = in_dir(c, e);
	bool sock = c->kind != K_PIPE;
	int call = sock ? (int)rn(&x->r, 5) : (int)rn(&x->r, 2);
	size_t len = 1 + rn(&x->r, 3000);
	int flags = 0;
	size_t k = 0; /* bytes the helper writes */
	if (mode == 2) {
		if (!sock || is_msg(c->kind) || in->n == 0) {
			if (in->n || in->U) /* data there: a plain read would not wait */
				return 0;
			k = 1 + rn(&x->r, 1000);
			if (call >= R_RECV && !is_msg(c->kind) && chance(&x->r, 50))
				flags |= MSG_WAITALL;
			if (call >= R_RECV && chance(&x->r, 25))
				flags |= MSG_PEEK;
			if ((avoid & AV_PEEKWAITALL) && (flags & MSG_PEEK))
				flags &= ~MSG_WAITALL;
			if (flags & MSG_WAITALL)
				k = len + rn(&x->r, 50);
		} else {
			/* stream with data: ask for more than there is */
			if (call < R_RECV)
				call = R_RECV + (int)rn(&x->r, 3);
			flags = MSG_WAITALL | (chance(&x->r, 40) ? MSG_PEEK : 0);
			if ((avoid & AV_PEEKWAITALL) && (flags & MSG_PEEK))
				return 0;
			len = (size_t)in->U + 1 + rn(&x->r, 2000);
			k = len - (size_t)in->U + rn(&x->r, 50);
		}
		if (!write_succeeds(c, 1 - e, (long)k))
			return 0;
	} else if (mode == 1) {
		k = 1 + rn(&x->r, 1000);
		if (!write_succeeds(c, 1 - e, (long)k))
			return 0;
	}
	int wfd = k ? ofd_fd(c->ofd[1 - e]) : -1;
	if (k)
		fill_content(wbuf, dir_key(c, 1 - e), in_dir(c, e)->wpos, k);
	usr_hits = 0;
	pid_t h = helper(mode == 0 ? SIGUSR1 : mode == 1 ? SIGUSR2 : 0, mode == 1, wfd, wbuf, k);
	int err, mflags, alen;
	long r = do_read(x, call, fd, len, flags, &err, &mflags, &alen);
	int st = reap(h);
	lbegin(x, "%s %s %d len=%zu", mode == 0 ? "interrupted" : mode == 1 ? "restarted" : "late-data",
	       rname[call], fd, len);
	if (call >= R_RECV)
		lput(" flags=%s", msgflags_str(flags));
	if (k)
		lput(" (helper writes %zu)", k);
	lres(x, r, err);
	if (r > 0)
		put_hash(rbuf, r < (long)len ? r : (long)len);
	if (mflags >= 0 && r >= 0)
		lput(" msg_flags=%s", msgflags_str(mflags));
	lput(" handler=%d helper=%s", (int)usr_hits, t_status(st));
	lend(0);
	if (k)
		dir_append(out_dir(c, 1 - e), c->kind, (long)k);
	read_update(c, e, r, call, len, flags, "blocked read");
	return 1;
}

/* ---- fork ------------------------------------------------------------------ */

static int do_op(struct ctx *x);

static int op_fork(struct ctx *x)
{
	if (in_child)
		return 0;
	int nops = 1 + (int)rn(&x->r, 6);
	bool die = chance(&x->r, 15);
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		t_die("fork");
	if (pid == 0) {
		in_child = 1;
		for (int i = 0; i < MAXOFD; i++) {
			prefs[i] = 0;
			cforbid[i] = 0;
		}
		for (int i = 0; i < MAXFD; i++)
			if (fdtab[i] >= 0)
				prefs[fdtab[i]]++;
		/* Batch mode: bytes the parent's shim stashed and connections
		 * it accepted ahead stay the parent's (docs/semantics.md,
		 * "fork"); the child leaves such sockets alone. */
		for (int i = 0; i < MAXOFD; i++) {
			int e;
			struct chan *c = ofd_chan(i, &e);
			if (c && c->kind == K_TCP) {
				struct dirm *in = in_dir(c, e);
				if (in->U || in->unsettled || in->fuzzy || c->taint[e])
					cforbid[i] = 1;
			}
			if (W->of[i].used && W->of[i].kind == K_LISTEN && W->ls[W->of[i].obj].npend)
				cforbid[i] = 1;
		}
		n_errors = 0;
		for (int i = 0; i < nops; i++) {
			struct ctx cx;
			rng_seed(&cx.r, seed, (uint64_t)x->idx + 1, 0xC41D0000ULL + (uint64_t)i);
			snprintf(cx.label, sizeof(cx.label), "%d.c%d", x->idx, i);
			cx.child = 1;
			cx.idx = x->idx;
			for (int t = 0; t < 12; t++)
				if (do_op(&cx))
					break;
		}
		if (die) {
			/* A write that raises SIGPIPE with the default action. */
			for (int i = 0; i < MAXFD; i++) {
				int e;
				struct chan *c = fd_chan(i, &e);
				if (!c || c->taint[e] || c->kind == K_TCP || c->kind == K_UDGRAM ||
				    (c->kind == K_USTREAM && W->of[fdtab[i]].nonblock))
					continue; /* (write-behind: the failure comes later) */
				if (!(out_dir(c, e)->broken || c->shut_wr[e]) || (c->kind == K_PIPE && e == 0))
					continue;
				set_sigpipe(3);
				printf("%d.c%d write %d with SIGPIPE default\n", x->idx, nops, i);
				fflush(stdout);
				if (c->kind == K_PIPE) {
					ssize_t w_ = write(i, "x", 1);
					(void)w_;
				} else {
					send(i, "x", 1, MSG_DONTWAIT);
				}
				printf("%d.c%d still alive\n", x->idx, nops);
				fflush(stdout);
				break;
			}
		}
		_exit(n_errors & 0x3f);
	}
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	lbegin(x, "fork: child %s", t_status(st));
	lend(0);
	return 1;
}

/* ---- dispatch ------------------------------------------------------------ */

static int op_ebadf(struct ctx *x)
{
	int fd = unused_fd(x);
	int v = (int)rn(&x->r, 4);
	long r;
	int e;
	char b[4];
	switch (v) {
	case 0: CALL(r, e, read(fd, b, sizeof(b))); break;
	case 1: CALL(r, e, send(fd, "ab", 2, MSG_NOSIGNAL)); break;
	case 2: CALL(r, e, shutdown(fd, SHUT_RDWR)); break;
	default: CALL(r, e, recv(fd, b, sizeof(b), MSG_DONTWAIT)); break;
	}
	static const char *vn[] = { "read", "send", "shutdown", "recv" };
	lbegin(x, "%s %d (unused)", vn[v], fd);
	lres(x, r, e);
	lend(0);
	return 1;
}

enum {
	O_SOCKETPAIR, O_PIPE, O_TCP, O_LISTEN, O_CONNECT, O_ACCEPT, O_OPEN, O_EPCREATE,
	O_CLOSE, O_DUP, O_FCNTL, O_READ, O_WRITE, O_FILEPOS, O_SHUTDOWN, O_FIONREAD,
	O_SOCKOPT, O_EPCTL, O_EPWAIT, O_POLL, O_FILL, O_DRAIN, O_SIGPIPE, O_EBADF,
	O_FORK, O_EINTR, O_RESTART, O_LATE, O_NOPS
};

static const int weight[O_NOPS] = {
	[O_SOCKETPAIR] = 4, [O_PIPE] = 3, [O_TCP] = 4, [O_LISTEN] = 1, [O_CONNECT] = 3,
	[O_ACCEPT] = 4, [O_OPEN] = 2, [O_EPCREATE] = 2, [O_CLOSE] = 5, [O_DUP] = 4,
	[O_FCNTL] = 5, [O_READ] = 22, [O_WRITE] = 22, [O_FILEPOS] = 4, [O_SHUTDOWN] = 3,
	[O_FIONREAD] = 3, [O_SOCKOPT] = 2, [O_EPCTL] = 9, [O_EPWAIT] = 9, [O_POLL] = 2,
	[O_FILL] = 2, [O_DRAIN] = 2, [O_SIGPIPE] = 1, [O_EBADF] = 1, [O_FORK] = 2,
	[O_EINTR] = 1, [O_RESTART] = 1, [O_LATE] = 2,
};

/* What a fork child may do: no new objects, no helpers, no nested fork. */
static bool child_ok(int op)
{
	switch (op) {
	case O_CLOSE: case O_DUP: case O_FCNTL: case O_READ: case O_WRITE: case O_FILEPOS:
	case O_SHUTDOWN: case O_FIONREAD: case O_SOCKOPT: case O_EPCTL: case O_EPWAIT:
	case O_POLL: case O_DRAIN: case O_EBADF:
		return true;
	}
	return false;
}

static int do_op(struct ctx *x)
{
	int total = 0, w[O_NOPS];
	int live = live_objects();
	for (int i = 0; i < O_NOPS; i++) {
		w[i] = weight[i];
		if (x->child && !child_ok(i))
			w[i] = 0;
		if (i <= O_EPCREATE && live < 3 && !x->child)
			w[i] *= 4;
		total += w[i];
	}
	int pick = (int)rn(&x->r, (unsigned)total), op = 0;
	for (; op < O_NOPS; op++) {
		if (pick < w[op])
			break;
		pick -= w[op];
	}
	switch (op) {
	case O_SOCKETPAIR: return op_socketpair(x);
	case O_PIPE: return op_pipe(x);
	case O_TCP: return op_tcp_pair(x);
	case O_LISTEN: return op_listen(x);
	case O_CONNECT: return op_connect(x);
	case O_ACCEPT: return op_accept(x);
	case O_OPEN: return op_open(x);
	case O_EPCREATE: return op_epoll_create(x);
	case O_CLOSE: return op_close(x);
	case O_DUP: return op_dup(x);
	case O_FCNTL: return op_fcntl(x);
	case O_READ: return op_read(x);
	case O_WRITE: return op_write(x);
	case O_FILEPOS: return op_filepos(x);
	case O_SHUTDOWN: return op_shutdown(x);
	case O_FIONREAD: return op_fionread(x);
	case O_SOCKOPT: return op_sockopt(x);
	case O_EPCTL: return op_epctl(x);
	case O_EPWAIT: return op_epwait(x);
	case O_POLL: return op_poll(x);
	case O_FILL: return op_fill(x);
	case O_DRAIN: return op_drain(x);
	case O_SIGPIPE: return op_sigpipe(x);
	case O_EBADF: return op_ebadf(x);
	case O_FORK: return op_fork(x);
	case O_EINTR: return op_blocked_read(x, 0);
	case O_RESTART: return op_blocked_read(x, 1);
	case O_LATE: return op_blocked_read(x, 2);
	}
	return 0;
}

/* ---- main ------------------------------------------------------------------ */

/* FUZZ_DEBUG=1: the model after every operation, on stderr. */
static int debug;
static void dump_model(int i)
{
	fprintf(stderr, "after %d:", i);
	for (int fd = 0; fd < MAXFD; fd++)
		if (fdtab[fd] >= 0)
			fprintf(stderr, " %d->%d", fd, fdtab[fd]);
	fputc('\n', stderr);
	for (int k = 0; k < MAXCH; k++) {
		struct chan *c = &W->ch[k];
		if (!c->used)
			continue;
		fprintf(stderr, "  ch%d %s ofd=%d,%d shut_rd=%d,%d shut_wr=%d,%d taint=%d,%d", k,
			kind_name[c->kind], c->ofd[0], c->ofd[1], c->shut_rd[0], c->shut_rd[1],
			c->shut_wr[0], c->shut_wr[1], c->taint[0], c->taint[1]);
		for (int d = 0; d < 2; d++)
			fprintf(stderr, " | d%d U=%ld n=%d fz=%d us=%d fin=%d/%d br=%d", d, c->d[d].U,
				c->d[d].n, c->d[d].fuzzy, c->d[d].unsettled, c->d[d].fin,
				c->d[d].fin_unsettled, c->d[d].broken);
		fputc('\n', stderr);
	}
}

static bool *parse_skip(const char *s, int nops)
{
	bool *skip = calloc((size_t)nops + 1, 1);
	if (!skip)
		t_die("calloc");
	while (s && *s) {
		char *end;
		long a = strtol(s, &end, 10), b = a;
		if (end == s) {
			fprintf(stderr, "fuzz: bad --skip list\n");
			exit(2);
		}
		if (*end == '-')
			b = strtol(end + 1, &end, 10);
		for (long i = a; i <= b; i++)
			if (i >= 0 && i < nops)
				skip[i] = true;
		s = *end == ',' ? end + 1 : end;
		if (*s && *s != ',' && (*s < '0' || *s > '9')) {
			fprintf(stderr, "fuzz: bad --skip list\n");
			exit(2);
		}
	}
	return skip;
}

static void cleanup_tmp(void)
{
	if (in_child || !tmpdir[0])
		return;
	char path[128];
	for (int i = 0; i < NFILES; i++) {
		snprintf(path, sizeof(path), "%s/f%d", tmpdir, i);
		unlink(path);
	}
	rmdir(tmpdir);
}

int main(int argc, char **argv)
{
	int nops = 300;
	const char *skiplist = NULL;
	if (argc < 2) {
		fprintf(stderr, "usage: fuzz SEED [--ops N] [--skip LIST] [--avoid LIST]\n");
		return 2;
	}
	seed = strtoull(argv[1], NULL, 0);
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--ops") && i + 1 < argc)
			nops = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--skip") && i + 1 < argc)
			skiplist = argv[++i];
		else if (!strcmp(argv[i], "--avoid") && i + 1 < argc) {
			char *list = strdup(argv[++i]), *save = NULL;
			for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
				size_t k = 0;
				for (; k < sizeof(avoid_names) / sizeof(avoid_names[0]); k++)
					if (!strcmp(t, avoid_names[k].name))
						break;
				if (k == sizeof(avoid_names) / sizeof(avoid_names[0])) {
					fprintf(stderr, "fuzz: unknown --avoid %s\n", t);
					return 2;
				}
				avoid |= avoid_names[k].bit;
			}
			free(list);
		}
		else {
			fprintf(stderr, "fuzz: unknown argument %s\n", argv[i]);
			return 2;
		}
	}
	bool *skip = parse_skip(skiplist, nops);
	debug = getenv("FUZZ_DEBUG") != NULL;

	W = mmap(NULL, sizeof(*W), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	rbuf = malloc(BUFSZ);
	wbuf = malloc(BUFSZ);
	pbuf = malloc(BUFSZ);
	if (W == MAP_FAILED || !rbuf || !wbuf || !pbuf)
		t_die("memory");
	memset(W, 0, sizeof(*W));
	for (int i = 0; i < MAXFD; i++)
		fdtab[i] = -1;
	dummy_in = (struct sockaddr_in){ .sin_family = AF_INET, .sin_port = htons(9),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/rsfuzz.XXXXXX");
	if (!mkdtemp(tmpdir))
		t_die("mkdtemp");
	atexit(cleanup_tmp);

	/* fds 0-2 as given, nothing else inherited; the note pair is 3,4
	 * (every program fd is above). */
	close_range(3, ~0U, 0);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, note))
		t_die("socketpair");
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = usr_handler;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_flags = SA_RESTART;
	sigaction(SIGUSR2, &sa, NULL);

	struct rng setup;
	rng_seed(&setup, seed, 0, 0x5E70);
	int spm = (int)rn(&setup, 3);
	set_sigpipe(spm);
	printf("fuzz seed=%llu ops=%d SIGPIPE %s\n", (unsigned long long)seed, nops, sp_name[spm]);
	fflush(stdout);

	for (int i = 0; i < nops; i++) {
		if (skip[i])
			continue;
		struct ctx x;
		rng_seed(&x.r, seed, (uint64_t)i + 1, 0);
		snprintf(x.label, sizeof(x.label), "%d", i);
		x.child = 0;
		x.idx = i;
		int done = 0;
		for (int t = 0; t < 12 && !done; t++)
			done = do_op(&x);
		if (!done) {
			printf("%d nop\n", i);
			fflush(stdout);
		}
		if (debug)
			dump_model(i);
	}
	printf("end\n");
	fflush(stdout);
	return 0;
}
