/* read/write and their vector and positional forms, with the fortified and
 * 64-bit names real binaries import. */
#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include "entry.h"
#include "real.h"

extern void __chk_fail(void) __attribute__((noreturn));

RS_EXPORT ssize_t read(int fd, void *buf, size_t n)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_read, fd, RS_OPK_RW);
	if (!c.ring)
		return RS_REAL(read)(fd, buf, n);
	return rs_end(&c, c.io->read(&c, buf, n));
}

RS_EXPORT ssize_t __read(int fd, void *buf, size_t n) RS_ALIAS(read);

RS_EXPORT ssize_t __read_chk(int fd, void *buf, size_t n, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return read(fd, buf, n);
}

RS_EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_write, fd, RS_OPK_RW);
	if (!c.ring)
		return RS_REAL(write)(fd, buf, n);
	return rs_end(&c, c.io->write(&c, buf, n));
}

RS_EXPORT ssize_t __write(int fd, const void *buf, size_t n) RS_ALIAS(write);

RS_EXPORT ssize_t readv(int fd, const struct iovec *iov, int cnt)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_readv, fd, RS_OPK_RW);
	if (!c.ring)
		return RS_REAL(readv)(fd, iov, cnt);
	return rs_end(&c, c.io->readv(&c, iov, cnt));
}

RS_EXPORT ssize_t writev(int fd, const struct iovec *iov, int cnt)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_writev, fd, RS_OPK_RW);
	if (!c.ring)
		return RS_REAL(writev)(fd, iov, cnt);
	return rs_end(&c, c.io->writev(&c, iov, cnt));
}

/* pread/pwrite/preadv/pwritev refuse a negative offset before looking at
 * the fd; the v2 forms take -1 to mean the file position. */
RS_EXPORT ssize_t pread(int fd, void *buf, size_t n, off_t off)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_pread, fd, RS_OPK_POS);
	if (!c.ring)
		return RS_REAL(pread64)(fd, buf, n, off);
	if (off < 0)
		return rs_end(&c, -EINVAL);
	struct iovec iov = { buf, n };
	return rs_end(&c, c.io->preadv2(&c, &iov, 1, off, 0));
}

RS_EXPORT ssize_t pread64(int fd, void *buf, size_t n, off_t off) RS_ALIAS(pread);

RS_EXPORT ssize_t __pread_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
{
	if (n > buflen)
		__chk_fail();
	return pread(fd, buf, n, off);
}

RS_EXPORT ssize_t __pread64_chk(int fd, void *buf, size_t n, off_t off, size_t buflen)
	RS_ALIAS(__pread_chk);

RS_EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_pwrite, fd, RS_OPK_POS);
	if (!c.ring)
		return RS_REAL(pwrite64)(fd, buf, n, off);
	if (off < 0)
		return rs_end(&c, -EINVAL);
	struct iovec iov = { (void *)buf, n };
	return rs_end(&c, c.io->pwritev2(&c, &iov, 1, off, 0));
}

RS_EXPORT ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off)
	RS_ALIAS(pwrite);

RS_EXPORT ssize_t preadv(int fd, const struct iovec *iov, int cnt, off_t off)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_preadv, fd, RS_OPK_POS);
	if (!c.ring)
		return RS_REAL(preadv64)(fd, iov, cnt, off);
	if (off < 0)
		return rs_end(&c, -EINVAL);
	return rs_end(&c, c.io->preadv2(&c, iov, cnt, off, 0));
}

RS_EXPORT ssize_t preadv64(int fd, const struct iovec *iov, int cnt, off_t off)
	RS_ALIAS(preadv);

RS_EXPORT ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_pwritev, fd, RS_OPK_POS);
	if (!c.ring)
		return RS_REAL(pwritev64)(fd, iov, cnt, off);
	if (off < 0)
		return rs_end(&c, -EINVAL);
	return rs_end(&c, c.io->pwritev2(&c, iov, cnt, off, 0));
}

RS_EXPORT ssize_t pwritev64(int fd, const struct iovec *iov, int cnt, off_t off)
	RS_ALIAS(pwritev);

RS_EXPORT ssize_t preadv2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_preadv, fd, RS_OPK_POS);
	if (!c.ring)
		return RS_REAL(preadv64v2)(fd, iov, cnt, off, flags);
	if (off < -1)
		return rs_end(&c, -EINVAL);
	return rs_end(&c, c.io->preadv2(&c, iov, cnt, off, flags));
}

RS_EXPORT ssize_t preadv64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
	RS_ALIAS(preadv2);

RS_EXPORT ssize_t pwritev2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
{
	struct rs_call c;
	rs_begin(&c, RS_C_call_pwritev, fd, RS_OPK_POS);
	if (!c.ring)
		return RS_REAL(pwritev64v2)(fd, iov, cnt, off, flags);
	if (off < -1)
		return rs_end(&c, -EINVAL);
	return rs_end(&c, c.io->pwritev2(&c, iov, cnt, off, flags));
}

RS_EXPORT ssize_t pwritev64v2(int fd, const struct iovec *iov, int cnt, off_t off, int flags)
	RS_ALIAS(pwritev2);
