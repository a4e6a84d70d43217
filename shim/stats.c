#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "real.h"
#include "stats.h"

#define RS_STATS_SLOTS 1024
#define RS_NAMES_SIZE 4096

/* The counters live in a shared-memory segment, /dev/shm/ringshim.PID
 * (mode 0600), which `ringshim stat` reads while the process runs. It is
 * self-describing — the counter names are in it — so the tool needs no
 * copy of this layout beyond the header. docs/observability.md has it. */
struct rs_stats_segment {
	char magic[8]; /* "RINGSHM1" */
	uint32_t header_size;
	uint32_t nslots;
	int32_t pid;
	uint32_t ncounters;
	uint32_t ngauges;
	uint32_t block_size;	 /* bytes per counter block */
	uint64_t start_time;	 /* field 22 of /proc/PID/stat: tells a reused pid */
	uint32_t names_offset;	 /* counter names then gauge names, NUL-separated */
	uint32_t gauges_offset;	 /* int64_t[ngauges] */
	uint32_t used_offset;	 /* uint64_t[nslots / 64]: live slots */
	uint32_t retired_offset; /* one block: exited threads, overflow */
	uint32_t slots_offset;	 /* nslots blocks, one per live thread */
	char prog[64];
	char mode[16];
	char names[RS_NAMES_SIZE];
	int64_t gauges[RS_G_COUNT];
	uint64_t slot_used[RS_STATS_SLOTS / 64];
	struct rs_counter_block retired;
	struct rs_counter_block slots[RS_STATS_SLOTS];
};

RS_TLS struct rs_counter_block *rs_tls_counters;
RS_TLS bool rs_tls_counters_shared;
static RS_TLS int tls_slot = -1;
static struct rs_stats_segment *seg;
static char seg_name[64];
static bool seg_shared;
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

extern char *program_invocation_short_name;

static uint64_t own_start_time(void)
{
	char buf[1024];
	int fd = RS_REAL(open64)("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t n = RS_REAL(read)(fd, buf, sizeof(buf) - 1);
	RS_REAL(close)(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* The command name may hold spaces: count fields after its ')'. */
	char *p = strrchr(buf, ')');
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	return p ? strtoull(p + 1, NULL, 10) : 0;
}

static void describe_segment(struct rs_stats_segment *s)
{
	memcpy(s->magic, "RINGSHM1", 8);
	s->header_size = (uint32_t)offsetof(struct rs_stats_segment, names);
	s->nslots = RS_STATS_SLOTS;
	s->pid = getpid();
	s->ncounters = RS_C_COUNT;
	s->ngauges = RS_G_COUNT;
	s->block_size = sizeof(struct rs_counter_block);
	s->start_time = own_start_time();
	s->names_offset = (uint32_t)offsetof(struct rs_stats_segment, names);
	s->gauges_offset = (uint32_t)offsetof(struct rs_stats_segment, gauges);
	s->used_offset = (uint32_t)offsetof(struct rs_stats_segment, slot_used);
	s->retired_offset = (uint32_t)offsetof(struct rs_stats_segment, retired);
	s->slots_offset = (uint32_t)offsetof(struct rs_stats_segment, slots);
	rs_snprintf(s->prog, sizeof(s->prog), "%s", program_invocation_short_name);
	rs_snprintf(s->mode, sizeof(s->mode), "%s",
		    rs_cfg.mode == RS_MODE_BATCH ? "batch" : "strict");
	static const char *const gauge_names[RS_G_COUNT] = {
		"wb_pending", "wb_peak", "stash_bytes", "acceptq_depth", "fds_managed", "rings_live",
	};
	size_t off = 0;
	for (int i = 0; i < RS_C_COUNT; i++)
		off += rs_snprintf(s->names + off, RS_NAMES_SIZE - off, "%s", counter_names[i]) + 1;
	for (int i = 0; i < RS_G_COUNT; i++)
		off += rs_snprintf(s->names + off, RS_NAMES_SIZE - off, "%s", gauge_names[i]) + 1;
}

/* A segment of our own in /dev/shm, or private memory if that fails (the
 * counters still work, `ringshim stat` just cannot see them). */
static struct rs_stats_segment *map_segment(void)
{
	rs_snprintf(seg_name, sizeof(seg_name), "/ringshim.%d", (int)getpid());
	int fd = -1;
	for (int tries = 0; tries < 2 && fd < 0; tries++) {
		fd = shm_open(seg_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0 && errno == EEXIST)
			shm_unlink(seg_name); /* left by a killed process with this pid */
	}
	void *p = MAP_FAILED;
	if (fd >= 0) {
		if (ftruncate(fd, sizeof(struct rs_stats_segment)) == 0)
			p = mmap(NULL, sizeof(struct rs_stats_segment), PROT_READ | PROT_WRITE,
				 MAP_SHARED, fd, 0);
		RS_REAL(close)(fd);
		if (p == MAP_FAILED)
			shm_unlink(seg_name);
	}
	seg_shared = p != MAP_FAILED;
	if (p == MAP_FAILED)
		p = mmap(NULL, sizeof(struct rs_stats_segment), PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	describe_segment(p);
	return p;
}

void rs_stats_init(void)
{
	if (seg)
		return;
	seg = map_segment();
	if (!seg)
		rs_warn("cannot map the counters (errno %d); counting into one shared block",
			errno);
}

void rs_stats_unpublish(void)
{
	if (seg_shared) {
		shm_unlink(seg_name);
		seg_shared = false;
	}
}

/* exec() failed after the segment was unlinked: publish the counters again
 * under a new file placed exactly where the old mapping was, so every
 * thread's pointer into it stays good. */
void rs_stats_republish(void)
{
	if (seg_shared || !seg)
		return;
	struct rs_stats_segment *old = seg;
	seg = NULL;
	struct rs_stats_segment *fresh = map_segment();
	if (!fresh) {
		seg = old;
		return;
	}
	if (!seg_shared) {
		munmap(fresh, sizeof(*fresh));
		seg = old;
		return;
	}
	memcpy(fresh, old, sizeof(*fresh));
	if (mremap(fresh, sizeof(*fresh), sizeof(*fresh), MREMAP_MAYMOVE | MREMAP_FIXED, old) ==
	    MAP_FAILED) {
		munmap(fresh, sizeof(*fresh));
		shm_unlink(seg_name);
		seg_shared = false;
	}
	seg = old;
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
		rs_tls_counters_shared = true;
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
				rs_tls_counters_shared = false;
				rs_tls_counters = &seg->slots[tls_slot];
				return rs_tls_counters;
			}
		}
	}
	/* More live threads than slots: they share the retired block. */
	rs_tls_counters_shared = true;
	rs_tls_counters = &seg->retired;
	return rs_tls_counters;
}

void rs_stats_thread_exit(void)
{
	if (!seg || tls_slot < 0)
		return;
	struct rs_counter_block *b = &seg->slots[tls_slot];
	add_block(&seg->retired, b);
	/* Not memset: rs_stats_sum may be reading it. */
	for (int i = 0; i < RS_C_COUNT; i++)
		__atomic_store_n(&b->v[i], 0, __ATOMIC_RELAXED);
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
	/* The parent's segment is shared memory: the child must not count
	 * into it. It gets a segment of its own, starting from zero. */
	struct rs_stats_segment *parent = seg;
	seg = map_segment();
	munmap(parent, sizeof(*parent));
	if (!seg) {
		tls_slot = -1;
		rs_tls_counters = NULL;
		return;
	}
	if (tls_slot >= 0) {
		seg->slot_used[tls_slot / 64] |= 1ULL << (tls_slot % 64);
		rs_tls_counters = &seg->slots[tls_slot];
	} else {
		/* It pointed at the parent's overflow block, just unmapped. */
		rs_tls_counters = NULL;
	}
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

/* A JSON string body: program names may hold quotes or backslashes. */
static size_t json_escape(char *out, size_t size, const char *s)
{
	size_t n = 0;
	for (; *s && n + 7 < size; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\') {
			out[n++] = '\\';
			out[n++] = (char)ch;
		} else if (ch < 0x20) {
			n += rs_snprintf(out + n, size - n, "\\u%c%c%c%c", '0', '0',
					 "0123456789abcdef"[ch >> 4], "0123456789abcdef"[ch & 15]);
		} else {
			out[n++] = (char)ch;
		}
	}
	out[n] = '\0';
	return n;
}

size_t rs_stats_format_json(char *buf, size_t size)
{
	char prog[160];
	json_escape(prog, sizeof(prog), program_invocation_short_name);
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
			       (int)getpid(), (int)getppid(), prog,
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
