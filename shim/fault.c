#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"

bool rs_faults_on;
static unsigned every[RS_FAULT_COUNT];	/* 0: off */
static unsigned long seen[RS_FAULT_COUNT];

static const char *const names[RS_FAULT_COUNT] = {
#define RS_F_NAME(n) #n,
	RS_FAULTS(RS_F_NAME)
#undef RS_F_NAME
};

bool rs_fault_hit(enum rs_fault f)
{
	if (!every[f])
		return false;
	unsigned long n = __atomic_add_fetch(&seen[f], 1, __ATOMIC_RELAXED);
	return n % every[f] == 0;
}

int rs_fault_parse(const char *spec)
{
	unsigned parsed[RS_FAULT_COUNT] = { 0 };
	while (spec && *spec) {
		const char *end = strchr(spec, ',');
		size_t len = end ? (size_t)(end - spec) : strlen(spec);
		const char *colon = memchr(spec, ':', len);
		size_t nlen = colon ? (size_t)(colon - spec) : len;
		unsigned n = 1;
		if (colon) {
			char *stop;
			unsigned long v = strtoul(colon + 1, &stop, 10);
			if (stop != spec + len || v == 0 || v > 1000000)
				return -EINVAL;
			n = (unsigned)v;
		}
		int found = -1;
		for (int i = 0; i < RS_FAULT_COUNT; i++)
			if (strlen(names[i]) == nlen && !strncmp(spec, names[i], nlen))
				found = i;
		if (found < 0)
			return -EINVAL;
		parsed[found] = n;
		spec += len;
		if (*spec == ',')
			spec++;
	}
	memcpy(every, parsed, sizeof(every));
	memset(seen, 0, sizeof(seen));
	rs_faults_on = false;
	for (int i = 0; i < RS_FAULT_COUNT; i++)
		rs_faults_on |= every[i] != 0;
	return 0;
}
