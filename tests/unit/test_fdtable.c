#include <check.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fdtable.h"
#include "suites.h"

START_TEST(socket_kinds)
{
	ck_assert_int_eq(rs_kind_from_socket(AF_INET, SOCK_STREAM), RS_KIND_TCP);
	ck_assert_int_eq(rs_kind_from_socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK), RS_KIND_TCP);
	ck_assert_int_eq(rs_kind_from_socket(AF_INET, SOCK_DGRAM), RS_KIND_UDP);
	ck_assert_int_eq(rs_kind_from_socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC),
			 RS_KIND_UNIX_SEQPACKET);
	ck_assert_int_eq(rs_kind_from_socket(AF_INET, SOCK_RAW), RS_KIND_SOCK_OTHER);
	ck_assert_int_eq(rs_kind_from_socket(AF_NETLINK, SOCK_DGRAM), RS_KIND_SOCK_OTHER);
}
END_TEST

START_TEST(created_then_closed_resets)
{
	rs_fd_created(40, RS_KIND_TCP, RS_FD_NONBLOCK);
	struct rs_fd *e = rs_fd_peek(40);
	ck_assert_ptr_nonnull(e);
	uint32_t gen = e->gen;
	ck_assert_int_eq(RS_FD_KIND(e->state), RS_KIND_TCP);
	ck_assert(RS_FD_FLAGS(e->state) & RS_FD_NONBLOCK);
	ck_assert(RS_FD_FLAGS(e->state) & RS_FD_TRACKED);
	rs_fd_closed(40);
	ck_assert_int_eq(RS_FD_KIND(e->state), RS_KIND_UNKNOWN);
	ck_assert_uint_ne(e->gen, gen);
	/* A reused number starts from nothing. */
	rs_fd_created(40, RS_KIND_PIPE, 0);
	ck_assert_int_eq(RS_FD_KIND(e->state), RS_KIND_PIPE);
	ck_assert(!(RS_FD_FLAGS(e->state) & RS_FD_NONBLOCK));
}
END_TEST

START_TEST(dup_shares_and_marks_shared)
{
	rs_fd_created(50, RS_KIND_UNIX_STREAM, RS_FD_NONBLOCK | RS_FD_CLOEXEC);
	rs_fd_duped(50, 51, false);
	uint32_t a = rs_fd_peek(50)->state, b = rs_fd_peek(51)->state;
	ck_assert_int_eq(RS_FD_KIND(b), RS_KIND_UNIX_STREAM);
	ck_assert(RS_FD_FLAGS(b) & RS_FD_NONBLOCK);
	ck_assert(!(RS_FD_FLAGS(b) & RS_FD_CLOEXEC));
	ck_assert(RS_FD_FLAGS(a) & RS_FD_SHARED);
	ck_assert(RS_FD_FLAGS(b) & RS_FD_SHARED);
}
END_TEST

START_TEST(classify_real_fds)
{
	int p[2];
	ck_assert_int_eq(pipe2(p, O_NONBLOCK), 0);
	rs_fd_closed(p[0]); /* as if inherited */
	uint32_t st = rs_fd_state(p[0]);
	ck_assert_int_eq(RS_FD_KIND(st), RS_KIND_PIPE);
	ck_assert(RS_FD_FLAGS(st) & RS_FD_NONBLOCK);
	ck_assert(RS_FD_FLAGS(st) & RS_FD_SHARED);
	int s = socket(AF_INET, SOCK_DGRAM, 0);
	rs_fd_closed(s);
	ck_assert_int_eq(RS_FD_KIND(rs_fd_state(s)), RS_KIND_UDP);
	int proc = open("/proc/self/stat", O_RDONLY);
	rs_fd_created(proc, RS_KIND_UNKNOWN, 0);
	ck_assert_int_eq(RS_FD_KIND(rs_fd_state(proc)), RS_KIND_OTHER);
	int dev = open("/dev/null", O_RDONLY);
	rs_fd_closed(dev);
	ck_assert_int_eq(RS_FD_KIND(rs_fd_state(dev)), RS_KIND_OTHER);
	ck_assert_uint_eq(rs_fd_state(9999), 0); /* not open */
	close(p[0]);
	close(p[1]);
	close(s);
	close(proc);
	close(dev);
}
END_TEST

START_TEST(stat_classifies_tracked_open)
{
	int fd = open("/etc/hostname", O_RDONLY);
	ck_assert_int_ge(fd, 0);
	rs_fd_created(fd, RS_KIND_UNKNOWN, 0);
	struct stat sb;
	fstat(fd, &sb);
	rs_fd_note_stat(fd, &sb); /* device not cached yet: stays unknown */
	(void)rs_fd_state(fd);	  /* classification caches the device */
	rs_fd_created(fd, RS_KIND_UNKNOWN, 0);
	rs_fd_note_stat(fd, &sb);
	ck_assert_int_eq(RS_FD_KIND(rs_fd_peek(fd)->state), RS_KIND_FILE);
	close(fd);
}
END_TEST

START_TEST(close_range_forgets)
{
	for (int fd = 100; fd < 110; fd++)
		rs_fd_created(fd, RS_KIND_TCP, 0);
	rs_fd_closed_range(103, 106);
	ck_assert_int_eq(RS_FD_KIND(rs_fd_peek(102)->state), RS_KIND_TCP);
	ck_assert_int_eq(RS_FD_KIND(rs_fd_peek(103)->state), RS_KIND_UNKNOWN);
	ck_assert_int_eq(RS_FD_KIND(rs_fd_peek(106)->state), RS_KIND_UNKNOWN);
	ck_assert_int_eq(RS_FD_KIND(rs_fd_peek(107)->state), RS_KIND_TCP);
	rs_fd_cloexec_range(100, 101);
	ck_assert(RS_FD_FLAGS(rs_fd_peek(100)->state) & RS_FD_CLOEXEC);
	ck_assert(!(RS_FD_FLAGS(rs_fd_peek(102)->state) & RS_FD_CLOEXEC));
}
END_TEST

START_TEST(out_of_range_fds)
{
	ck_assert_ptr_null(rs_fd_entry(-1));
	ck_assert_ptr_null(rs_fd_entry(1 << 30));
	ck_assert_ptr_nonnull(rs_fd_entry(500000));
}
END_TEST

Suite *fdtable_suite(void)
{
	Suite *s = suite_create("fdtable");
	TCase *tc = tcase_create("table");
	tcase_add_test(tc, socket_kinds);
	tcase_add_test(tc, created_then_closed_resets);
	tcase_add_test(tc, dup_shares_and_marks_shared);
	tcase_add_test(tc, classify_real_fds);
	tcase_add_test(tc, stat_classifies_tracked_open);
	tcase_add_test(tc, close_range_forgets);
	tcase_add_test(tc, out_of_range_fds);
	suite_add_tcase(s, tc);
	return s;
}
