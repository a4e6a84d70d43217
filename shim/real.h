/* The real libc functions behind every interposed name, resolved with
 * dlsym(RTLD_NEXT) so that other preloaded interposers still chain.
 *
 * One X-macro list generates the table, its resolver and nothing else: the
 * entry points call rs_real.NAME and never the interposed names themselves. */
#ifndef RS_REAL_H
#define RS_REAL_H

#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <ucontext.h>

#define RS_REAL_FUNCS(X)                                                       \
	X(ssize_t, read, (int, void *, size_t))                                \
	X(ssize_t, write, (int, const void *, size_t))                         \
	X(ssize_t, readv, (int, const struct iovec *, int))                    \
	X(ssize_t, writev, (int, const struct iovec *, int))                   \
	X(ssize_t, pread64, (int, void *, size_t, off_t))                      \
	X(ssize_t, pwrite64, (int, const void *, size_t, off_t))               \
	X(ssize_t, preadv64, (int, const struct iovec *, int, off_t))          \
	X(ssize_t, pwritev64, (int, const struct iovec *, int, off_t))         \
	X(ssize_t, preadv64v2, (int, const struct iovec *, int, off_t, int))   \
	X(ssize_t, pwritev64v2, (int, const struct iovec *, int, off_t, int))  \
	X(ssize_t, recv, (int, void *, size_t, int))                           \
	X(ssize_t, recvfrom, (int, void *, size_t, int, struct sockaddr *,     \
			      socklen_t *))                                    \
	X(ssize_t, recvmsg, (int, struct msghdr *, int))                       \
	X(int, recvmmsg, (int, struct mmsghdr *, unsigned int, int,            \
			  struct timespec *))                                  \
	X(ssize_t, send, (int, const void *, size_t, int))                     \
	X(ssize_t, sendto, (int, const void *, size_t, int,                    \
			    const struct sockaddr *, socklen_t))               \
	X(ssize_t, sendmsg, (int, const struct msghdr *, int))                 \
	X(int, sendmmsg, (int, struct mmsghdr *, unsigned int, int))           \
	X(ssize_t, sendfile64, (int, int, off_t *, size_t))                    \
	X(int, accept, (int, struct sockaddr *, socklen_t *))                  \
	X(int, accept4, (int, struct sockaddr *, socklen_t *, int))            \
	X(int, connect, (int, const struct sockaddr *, socklen_t))             \
	X(int, shutdown, (int, int))                                           \
	X(int, listen, (int, int))                                             \
	X(int, close, (int))                                                   \
	X(int, close_range, (unsigned int, unsigned int, int))                 \
	X(int, socket, (int, int, int))                                        \
	X(int, socketpair, (int, int, int, int *))                             \
	X(int, pipe, (int *))                                                  \
	X(int, pipe2, (int *, int))                                            \
	X(int, open64, (const char *, int, ...))                               \
	X(int, openat64, (int, const char *, int, ...))                        \
	X(int, __open64_2, (const char *, int))                                \
	X(int, __openat64_2, (int, const char *, int))                         \
	X(int, fclose, (FILE *))                                               \
	X(int, dup, (int))                                                     \
	X(int, dup2, (int, int))                                               \
	X(int, dup3, (int, int, int))                                          \
	X(int, fcntl64, (int, int, ...))                                       \
	X(int, ioctl, (int, unsigned long, ...))                               \
	X(int, setsockopt, (int, int, int, const void *, socklen_t))           \
	X(int, fstat64, (int, struct stat *))                                  \
	X(int, epoll_create, (int))                                            \
	X(int, epoll_create1, (int))                                           \
	X(int, epoll_ctl, (int, int, int, struct epoll_event *))               \
	X(int, epoll_wait, (int, struct epoll_event *, int, int))              \
	X(int, epoll_pwait, (int, struct epoll_event *, int, int,              \
			     const sigset_t *))                                \
	X(int, epoll_pwait2, (int, struct epoll_event *, int,                  \
			      const struct timespec *, const sigset_t *))      \
	X(int, poll, (struct pollfd *, nfds_t, int))                           \
	X(int, ppoll, (struct pollfd *, nfds_t, const struct timespec *,       \
		       const sigset_t *))                                      \
	X(int, select, (int, fd_set *, fd_set *, fd_set *, struct timeval *))  \
	X(int, pselect, (int, fd_set *, fd_set *, fd_set *,                    \
			 const struct timespec *, const sigset_t *))           \
	X(int, sigaction, (int, const struct sigaction *, struct sigaction *)) \
	X(int, sigprocmask, (int, const sigset_t *, sigset_t *))               \
	X(int, pthread_sigmask, (int, const sigset_t *, sigset_t *))           \
	X(int, sigblock, (int))                                                \
	X(int, sigsetmask, (int))                                              \
	X(int, sighold, (int))                                                 \
	X(int, sigrelse, (int))                                                \
	X(void, siglongjmp, (struct __jmp_buf_tag *, int))                     \
	X(void, longjmp, (struct __jmp_buf_tag *, int))                        \
	X(void, __longjmp_chk, (struct __jmp_buf_tag *, int))                  \
	X(int, setcontext, (const ucontext_t *))                               \
	X(int, swapcontext, (ucontext_t *, const ucontext_t *))                \
	X(pid_t, fork, (void))                                                 \
	X(int, execve, (const char *, char *const[], char *const[]))           \
	X(int, execveat, (int, const char *, char *const[], char *const[], int)) \
	X(int, fexecve, (int, char *const[], char *const[]))                   \
	X(int, execv, (const char *, char *const[]))                           \
	X(int, execvp, (const char *, char *const[]))                          \
	X(int, execvpe, (const char *, char *const[], char *const[]))          \
	X(int, getsockopt, (int, int, int, void *, socklen_t *))              \
	X(void, _exit, (int))                                                  \
	X(int, setrlimit, (__rlimit_resource_t, const struct rlimit *))        \
	X(int, prlimit, (pid_t, __rlimit_resource_t, const struct rlimit *,    \
			 struct rlimit *))

#define RS_REAL_MEMBER(ret, name, params) ret(*name) params;
struct rs_real_table {
	RS_REAL_FUNCS(RS_REAL_MEMBER)
};
#undef RS_REAL_MEMBER

extern struct rs_real_table rs_real;

/* Resolve every entry. Safe to call more than once and from a call that
 * re-enters an interposer while dlsym runs: such a call resolves only the
 * one symbol it needs (see RS_REAL). */
void rs_real_resolve_all(void);
void *rs_real_resolve_one(void **slot, const char *name);

/* Before the table is resolved, for calls a sanitizer makes at start-up. */
int (*rs_real_early_setrlimit(void))(__rlimit_resource_t, const struct rlimit *);
int (*rs_real_early_prlimit(void))(pid_t, __rlimit_resource_t, const struct rlimit *,
				   struct rlimit *);

/* The load is atomic (a plain load on x86) because a slot can be filled by
 * another thread's first call while this one reads it. */
#define RS_REAL(name)                                                          \
	({                                                                     \
		__typeof__(rs_real.name) rs_fn_ =                              \
			__atomic_load_n(&rs_real.name, __ATOMIC_ACQUIRE);      \
		likely(rs_fn_ != NULL)                                         \
			? rs_fn_                                               \
			: (__typeof__(rs_real.name))rs_real_resolve_one(       \
				  (void **)&rs_real.name, #name);              \
	})

#endif
