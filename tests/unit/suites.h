#ifndef RS_TEST_SUITES_H
#define RS_TEST_SUITES_H
#include <check.h>
Suite *config_suite(void);
Suite *fdtable_suite(void);
#endif
