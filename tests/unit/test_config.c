#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "config.h"
#include "suites.h"

START_TEST(parse_size_suffixes)
{
	unsigned long long v;
	ck_assert_int_eq(rs_parse_size("4096", 0, ~0ULL, &v), 0);
	ck_assert_uint_eq(v, 4096);
	ck_assert_int_eq(rs_parse_size("64k", 0, ~0ULL, &v), 0);
	ck_assert_uint_eq(v, 65536);
	ck_assert_int_eq(rs_parse_size("2M", 0, ~0ULL, &v), 0);
	ck_assert_uint_eq(v, 2u << 20);
	ck_assert_int_eq(rs_parse_size("1GB", 0, ~0ULL, &v), 0);
	ck_assert_uint_eq(v, 1u << 30);
	ck_assert_int_eq(rs_parse_size(" 7 ", 0, ~0ULL, &v), 0);
	ck_assert_uint_eq(v, 7);
}
END_TEST

START_TEST(parse_size_rejects)
{
	unsigned long long v = 99;
	ck_assert_int_eq(rs_parse_size("", 0, ~0ULL, &v), -EINVAL);
	ck_assert_int_eq(rs_parse_size("-1", 0, ~0ULL, &v), -EINVAL);
	ck_assert_int_eq(rs_parse_size("12x", 0, ~0ULL, &v), -EINVAL);
	ck_assert_int_eq(rs_parse_size("1T", 0, ~0ULL, &v), -EINVAL);
	/* Absurd sizes are refused, not allocated. */
	ck_assert_int_eq(rs_parse_size("99999999999999999999", 0, ~0ULL, &v), -EINVAL);
	ck_assert_int_eq(rs_parse_size("17179869184G", 0, ~0ULL, &v), -EINVAL);
	ck_assert_int_eq(rs_parse_size("8", 16, 32, &v), -EINVAL);
	ck_assert_int_eq(rs_parse_size("33", 16, 32, &v), -EINVAL);
	ck_assert_uint_eq(v, 99); /* untouched on failure */
}
END_TEST

START_TEST(parse_uint_no_suffix)
{
	unsigned long long v;
	ck_assert_int_eq(rs_parse_uint("12", 0, 100, &v), 0);
	ck_assert_uint_eq(v, 12);
	ck_assert_int_eq(rs_parse_uint("1k", 0, 100000, &v), -EINVAL);
	ck_assert_int_eq(rs_parse_uint("abc", 0, 100, &v), -EINVAL);
}
END_TEST

START_TEST(parse_bool_values)
{
	bool b;
	ck_assert_int_eq(rs_parse_bool("1", &b), 0);
	ck_assert(b);
	ck_assert_int_eq(rs_parse_bool("On", &b), 0);
	ck_assert(b);
	ck_assert_int_eq(rs_parse_bool("no", &b), 0);
	ck_assert(!b);
	ck_assert_int_eq(rs_parse_bool("maybe", &b), -EINVAL);
}
END_TEST

START_TEST(parse_fds_lists)
{
	unsigned f;
	ck_assert_int_eq(rs_parse_fds("sockets", &f), 0);
	ck_assert_uint_eq(f, RS_FDS_SOCKETS);
	ck_assert_int_eq(rs_parse_fds("tcp,pipes", &f), 0);
	ck_assert_uint_eq(f, RS_FDS_TCP | RS_FDS_PIPES);
	ck_assert_int_eq(rs_parse_fds("none", &f), 0);
	ck_assert_uint_eq(f, 0);
	ck_assert_int_eq(rs_parse_fds("tcp,bogus", &f), -EINVAL);
	ck_assert_int_eq(rs_parse_fds("", &f), -EINVAL);
}
END_TEST

START_TEST(load_bad_values_keep_defaults)
{
	setenv("RINGSHIM_RING_ENTRIES", "huge", 1);
	setenv("RINGSHIM_WB_MAX", "100T", 1);
	setenv("RINGSHIM_MODE", "fast", 1);
	setenv("RINGSHIM_FDS", "tcp,unix", 1);
	rs_config_load();
	ck_assert_uint_eq(rs_cfg.ring_entries, 256);
	ck_assert_uint_eq(rs_cfg.wb_max, 64u << 20);
	ck_assert_int_eq(rs_cfg.mode, RS_MODE_BATCH);
	ck_assert_uint_eq(rs_cfg.fds, RS_FDS_TCP | RS_FDS_UNIX);
	unsetenv("RINGSHIM_RING_ENTRIES");
	unsetenv("RINGSHIM_WB_MAX");
	unsetenv("RINGSHIM_MODE");
	unsetenv("RINGSHIM_FDS");
}
END_TEST

START_TEST(load_fds_default_per_mode)
{
	unsetenv("RINGSHIM_FDS");
	setenv("RINGSHIM_MODE", "strict", 1);
	rs_config_load();
	ck_assert_uint_eq(rs_cfg.fds, RS_FDS_ALL);
	unsetenv("RINGSHIM_MODE"); /* batch, the default */
	rs_config_load();
	ck_assert_uint_eq(rs_cfg.fds, RS_FDS_SOCKETS | RS_FDS_PIPES);
	setenv("RINGSHIM_FDS", "all", 1);
	rs_config_load();
	ck_assert_uint_eq(rs_cfg.fds, RS_FDS_ALL);
	setenv("RINGSHIM_FDS", "files,bogus", 1);
	rs_config_load();
	ck_assert_uint_eq(rs_cfg.fds, RS_FDS_SOCKETS | RS_FDS_PIPES);
	unsetenv("RINGSHIM_FDS");
}
END_TEST

START_TEST(load_stats_file_and_levels)
{
	setenv("RINGSHIM_STATS", "/tmp/x.jsonl", 1);
	setenv("RINGSHIM_LOG", "debug", 1);
	setenv("RINGSHIM_SQPOLL_CPU", "1", 1);
	rs_config_load();
	ck_assert_int_eq(rs_cfg.stats, RS_STATS_FILE);
	ck_assert_str_eq(rs_cfg.stats_file, "/tmp/x.jsonl");
	ck_assert_int_eq(rs_cfg.log_level, 3);
	ck_assert_int_eq(rs_cfg.sqpoll_cpu, 1);
	setenv("RINGSHIM_STATS", "1", 1);
	unsetenv("RINGSHIM_SQPOLL_CPU");
	rs_config_load();
	ck_assert_int_eq(rs_cfg.stats, RS_STATS_STDERR);
	ck_assert_int_eq(rs_cfg.sqpoll_cpu, -1);
	unsetenv("RINGSHIM_STATS");
	unsetenv("RINGSHIM_LOG");
}
END_TEST

Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("parse");
	tcase_add_test(tc, parse_size_suffixes);
	tcase_add_test(tc, parse_size_rejects);
	tcase_add_test(tc, parse_uint_no_suffix);
	tcase_add_test(tc, parse_bool_values);
	tcase_add_test(tc, parse_fds_lists);
	tcase_add_test(tc, load_bad_values_keep_defaults);
	tcase_add_test(tc, load_fds_default_per_mode);
	tcase_add_test(tc, load_stats_file_and_levels);
	suite_add_tcase(s, tc);
	return s;
}
