#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "real.h"
#include "stats.h"

#define RS_STATS_SLOTS 1024

/* Laid out so that it can be published as a shared-memory segment for
 * `ringshim stat` without changing the hot path. */
struct rs_stats_segment {
	uint32_t magic;
	uint32_t version;
	int32_t pid;
	uint32_t nslots;
	int64_t gauges[RS_G_COUNT];
	uint64_t slot_used[RS_STATS_SLOTS / 64];
	struct rs_counter_block retired; /* exited threads and overflow */
	struct rs_counter_block slots[RS_STATS_SLOTS];
};

RS_TLS struct rs_counter_block *rs_tls_counters;
static RS_TLS int tls_slot = -1;
static struct rs_stats_segment *seg;
/* Used until the segment exists, and if it cannot be mapped. */
static struct rs_counter_block early_block;

static const char *const counter_names[RS_C_COUNT] = {
#define RS_N_CALL(n) "call_" #n,
#define RS_N_PT(n) "pt_" #n,
#define RS_N_OTHER(n) #n,
	RS_CALL_COUNTERS(RS_N_CALL)
	RS_PT_REASONS(RS_N_PT)
	RS_OTHER_COUNTERS(RS_N_OTHER)
#undef RS_N_CALL
#undef RS_N_PT
#undef RS_N_OTHER
};

const char *rs_counter_name(enum rs_counter c)
{
	return c < RS_C_COUNT ? counter_names[c] : "?";
}

void rs_stats_init(void)
{
	if (seg)
		return;
	void *p = mmap(NULL, sizeof(*seg), PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		rs_warn("cannot map the counters (errno %d); counting into one shared block",
			errno);
		return;
	}
	seg = p;
	seg->magic = 0x52534853; /* "RSHS" */
	seg->version = 1;
	seg->pid = getpid();
	seg->nslots = RS_STATS_SLOTS;
}

static void add_block(struct rs_counter_block *dst, const struct rs_counter_block *src)
{
	for (int i = 0; i < RS_C_COUNT; i++)
		if (src->v[i])
			__atomic_fetch_add(&dst->v[i], src->v[i], __ATOMIC_RELAXED);
}

struct rs_counter_block *rs_stats_thread_block(void)
{
	if (!seg) {
		rs_tls_counters = &early_block;
		return &early_block;
	}
	for (unsigned w = 0; w < RS_STATS_SLOTS / 64; w++) {
		uint64_t used = __atomic_load_n(&seg->slot_used[w], __ATOMIC_RELAXED);
		while (~used) {
			unsigned bit = (unsigned)__builtin_ctzll(~used);
			if (__atomic_compare_exchange_n(&seg->slot_used[w], &used,
							used | (1ULL << bit), false,
							__ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
				tls_slot = (int)(w * 64 + bit);
				rs_tls_counters = &seg->slots[tls_slot];
				return rs_tls_counters;
			}
		}
	}
	/* More live threads than slots: they share the retired block, whose
	 * increments then race. Counts may be a little low; never wrong in
	 * kind. */
	rs_tls_counters = &seg->retired;
	return rs_tls_counters;
}

void rs_stats_thread_exit(void)
{
	if (!seg || tls_slot < 0)
		return;
	struct rs_counter_block *b = &seg->slots[tls_slot];
	add_block(&seg->retired, b);
	memset(b, 0, sizeof(*b));
	__atomic_fetch_and(&seg->slot_used[tls_slot / 64], ~(1ULL << (tls_slot % 64)),
			   __ATOMIC_RELEASE);
	tls_slot = -1;
	rs_tls_counters = NULL;
}

void rs_stats_after_fork_child(void)
{
	memset(&early_block, 0, sizeof(early_block));
	if (!seg)
		return;
	/* Only the forking thread survives; its slot stays, zeroed. */
	memset(&seg->retired, 0, sizeof(seg->retired));
	for (unsigned i = 0; i < RS_STATS_SLOTS; i++)
		if ((int)i != tls_slot)
			memset(&seg->slots[i], 0, sizeof(seg->slots[i]));
	memset(seg->slot_used, 0, sizeof(seg->slot_used));
	if (tls_slot >= 0) {
		memset(&seg->slots[tls_slot], 0, sizeof(seg->slots[tls_slot]));
		seg->slot_used[tls_slot / 64] |= 1ULL << (tls_slot % 64);
	}
	memset(seg->gauges, 0, sizeof(seg->gauges));
	seg->pid = getpid();
}

void rs_gauge_add(enum rs_gauge g, int64_t delta)
{
	if (!seg)
		return;
	int64_t now = __atomic_add_fetch(&seg->gauges[g], delta, __ATOMIC_RELAXED);
	if (g == RS_G_WB_PENDING) {
		int64_t peak = __atomic_load_n(&seg->gauges[RS_G_WB_PEAK], __ATOMIC_RELAXED);
		while (now > peak &&
		       !__atomic_compare_exchange_n(&seg->gauges[RS_G_WB_PEAK], &peak, now,
						    false, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			;
	}
}

int64_t rs_gauge_get(enum rs_gauge g)
{
	return seg ? __atomic_load_n(&seg->gauges[g], __ATOMIC_RELAXED) : 0;
}

void rs_count_sqes_per_enter(unsigned n)
{
	if (!n)
		return;
	enum rs_counter c = n < 2    ? RS_C_sqe_per_enter_1
			    : n < 4  ? RS_C_sqe_per_enter_2_3
			    : n < 8  ? RS_C_sqe_per_enter_4_7
			    : n < 16 ? RS_C_sqe_per_enter_8_15
			    : n < 32 ? RS_C_sqe_per_enter_16_31
				     : RS_C_sqe_per_enter_32_up;
	rs_count(c);
	rs_count_n(RS_C_sqes, n);
}

void rs_stats_sum(uint64_t out[RS_C_COUNT])
{
	memset(out, 0, sizeof(uint64_t) * RS_C_COUNT);
	for (int i = 0; i < RS_C_COUNT; i++)
		out[i] = early_block.v[i];
	if (!seg)
		return;
	for (int i = 0; i < RS_C_COUNT; i++)
		out[i] += __atomic_load_n(&seg->retired.v[i], __ATOMIC_RELAXED);
	for (unsigned s = 0; s < RS_STATS_SLOTS; s++) {
		if (!(__atomic_load_n(&seg->slot_used[s / 64], __ATOMIC_RELAXED) &
		      (1ULL << (s % 64))))
			continue;
		for (int i = 0; i < RS_C_COUNT; i++)
			out[i] += __atomic_load_n(&seg->slots[s].v[i], __ATOMIC_RELAXED);
	}
}

extern char *program_invocation_short_name;

size_t rs_stats_format_json(char *buf, size_t size)
{
	uint64_t v[RS_C_COUNT];
	rs_stats_sum(v);
	uint64_t calls = 0, pt = 0;
	for (int i = RS_C_CALL_FIRST; i < RS_C_PT_FIRST; i++)
		calls += v[i];
	for (int i = RS_C_PT_FIRST; i < RS_C_served_ring; i++)
		pt += v[i];
	size_t n = rs_snprintf(buf, size,
			       "{\"ringshim\":1,\"pid\":%d,\"ppid\":%d,\"prog\":\"%s\","
			       "\"mode\":\"%s\",\"sqpoll\":%s,\"counters\":{\"calls\":%llu,"
			       "\"passthrough\":%llu",
			       (int)getpid(), (int)getppid(), program_invocation_short_name,
			       rs_cfg.mode == RS_MODE_BATCH ? "batch" : "strict",
			       rs_cfg.sqpoll ? "true" : "false", (unsigned long long)calls,
			       (unsigned long long)pt);
	for (int i = 0; i < RS_C_COUNT && n < size; i++)
		n += rs_snprintf(buf + n, size - n, ",\"%s\":%llu", counter_names[i],
				 (unsigned long long)v[i]);
	n += rs_snprintf(buf + n, size - n,
			 "},\"gauges\":{\"wb_pending\":%lld,\"wb_peak\":%lld,"
			 "\"stash_bytes\":%lld,\"acceptq_depth\":%lld,\"fds_managed\":%lld,"
			 "\"rings_live\":%lld}}",
			 (long long)rs_gauge_get(RS_G_WB_PENDING),
			 (long long)rs_gauge_get(RS_G_WB_PEAK),
			 (long long)rs_gauge_get(RS_G_STASH_BYTES),
			 (long long)rs_gauge_get(RS_G_ACCEPTQ_DEPTH),
			 (long long)rs_gauge_get(RS_G_FDS_MANAGED),
			 (long long)rs_gauge_get(RS_G_RINGS_LIVE));
	return n;
}

static void write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = RS_REAL(write)(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

void rs_stats_report_exit(void)
{
	if (rs_cfg.stats == RS_STATS_OFF)
		return;
	int saved = errno;
	char line[8192];
	size_t n = rs_stats_format_json(line, sizeof(line) - 1);
	line[n++] = '\n';
	if (rs_cfg.stats == RS_STATS_FILE) {
		/* One write of the whole line to an O_APPEND file keeps lines
		 * from forked workers whole. */
		int fd = RS_REAL(open64)(rs_cfg.stats_file,
					 O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0) {
			rs_warn("RINGSHIM_STATS=%s cannot be opened (errno %d)",
				rs_cfg.stats_file, errno);
		} else {
			write_all(fd, line, n);
			RS_REAL(close)(fd);
		}
	} else {
		char prefix[96];
		size_t pn = rs_snprintf(prefix, sizeof(prefix), "ringshim[%s %d]: stats ",
					program_invocation_short_name, (int)getpid());
		write_all(STDERR_FILENO, prefix, pn);
		write_all(STDERR_FILENO, line, n);
	}
	errno = saved;
}
