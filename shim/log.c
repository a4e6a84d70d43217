#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "common.h"
#include "internal_fds.h"
#include "log.h"
#include "real.h"

int rs_log_level = RS_LOG_WARN;
static int log_fd = STDERR_FILENO;
static const char *log_path;
static uint64_t once_mask;

extern char *program_invocation_short_name;

static char *put_str(char *p, char *end, const char *s)
{
	while (*s && p < end)
		*p++ = *s++;
	return p;
}

static char *put_uint(char *p, char *end, unsigned long long v, unsigned base)
{
	char tmp[24];
	int n = 0;
	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	while (n && p < end)
		*p++ = tmp[--n];
	return p;
}

static char *put_int(char *p, char *end, long long v)
{
	if (v < 0) {
		if (p < end)
			*p++ = '-';
		return put_uint(p, end, (unsigned long long)(-(v + 1)) + 1, 10);
	}
	return put_uint(p, end, (unsigned long long)v, 10);
}

size_t rs_fmt(char *buf, size_t size, const char *fmt, va_list ap)
{
	if (!size)
		return 0;
	char *p = buf, *end = buf + size - 1;
	for (const char *f = fmt; *f && p < end; f++) {
		if (*f != '%') {
			*p++ = *f;
			continue;
		}
		f++;
		int longs = 0;
		bool size_t_arg = false;
		while (*f == 'l') {
			longs++;
			f++;
		}
		if (*f == 'z') {
			size_t_arg = true;
			f++;
		}
		switch (*f) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			p = put_str(p, end, s ? s : "(null)");
			break;
		}
		case 'c':
			*p++ = (char)va_arg(ap, int);
			break;
		case 'd':
		case 'i':
			if (size_t_arg)
				p = put_int(p, end, va_arg(ap, ssize_t));
			else if (longs >= 2)
				p = put_int(p, end, va_arg(ap, long long));
			else if (longs == 1)
				p = put_int(p, end, va_arg(ap, long));
			else
				p = put_int(p, end, va_arg(ap, int));
			break;
		case 'u':
		case 'x': {
			unsigned base = *f == 'x' ? 16 : 10;
			unsigned long long v;
			if (size_t_arg)
				v = va_arg(ap, size_t);
			else if (longs >= 2)
				v = va_arg(ap, unsigned long long);
			else if (longs == 1)
				v = va_arg(ap, unsigned long);
			else
				v = va_arg(ap, unsigned int);
			p = put_uint(p, end, v, base);
			break;
		}
		case 'p':
			p = put_str(p, end, "0x");
			p = put_uint(p, end, (uintptr_t)va_arg(ap, void *), 16);
			break;
		case '%':
			*p++ = '%';
			break;
		default:
			/* An unknown conversion is a bug in the shim; show it
			 * rather than guess the argument's size. */
			p = put_str(p, end, "%?");
			break;
		}
		if (!*f)
			break;
	}
	*p = '\0';
	return (size_t)(p - buf);
}

size_t rs_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	size_t n = rs_fmt(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

static void write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = RS_REAL(write)(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void vlog(const char *fmt, va_list ap)
{
	int saved = errno;
	char line[512];
	size_t n = rs_snprintf(line, sizeof(line) - 1, "ringshim[%s %d]: ",
			       program_invocation_short_name, (int)getpid());
	n += rs_fmt(line + n, sizeof(line) - 1 - n, fmt, ap);
	line[n++] = '\n';
	write_all(log_fd, line, n);
	errno = saved;
}

void rs_logf(int level, const char *fmt, ...)
{
	if (level > rs_log_level)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

void rs_log_once(unsigned key, int level, const char *fmt, ...)
{
	if (level > rs_log_level)
		return;
	uint64_t bit = 1ULL << (key & 63);
	if (__atomic_fetch_or(&once_mask, bit, __ATOMIC_RELAXED) & bit)
		return;
	va_list ap;
	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

static void log_fd_moved(void *owner, int oldfd, int newfd)
{
	(void)owner;
	(void)oldfd;
	log_fd = newfd;
}

/* The log file is opened before any privilege drop (servers started as root
 * switch to nobody later) and kept open, above the fds a program normally
 * uses, so the program never finds its own fd numbers taken. */
void rs_log_init(int level, const char *path)
{
	rs_log_level = level;
	log_path = path;
	if (!path || !*path)
		return;
	int fd = RS_REAL(open64)(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		rs_warn("RINGSHIM_LOG_FILE=%s cannot be opened (errno %d); logging to stderr",
			path, errno);
		return;
	}
	log_fd = rs_internal_fd_move_high(fd, log_fd_moved, NULL);
}

void rs_log_after_fork(void)
{
	/* The child shares the parent's log file description (O_APPEND keeps
	 * lines whole), so nothing to reopen; only the once-mask restarts so
	 * the child reports its own first passthroughs. */
	once_mask = 0;
}
