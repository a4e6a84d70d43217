/* fd numbers while other threads start their rings: a thread's first call
 * makes its ring, whose fd exists at a low number until it is moved high
 * (shim/internal_fds.h, the fd-number gate). The main thread creates and
 * closes sockets meanwhile, and must get the lowest free number every
 * time, as natively. The threads stay alive together, more of them than
 * the ring pool holds, so each round makes new rings. */
#include <pthread.h>
#include <sys/socket.h>

#include "check.h"

#define THREADS 24
#define ROUNDS 40
#define SOCKETS 200
static int sv[2];
static pthread_barrier_t bar;

static void *starter(void *arg)
{
	(void)arg;
	char c;
	if (write(sv[0], "x", 1) != 1 || read(sv[1], &c, 1) != 1)
		return (void *)1L;
	pthread_barrier_wait(&bar);
	return NULL;
}

int main(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
		t_die("socketpair");
	int lowest = socket(AF_INET, SOCK_STREAM, 0);
	close(lowest);
	long shifted = 0, failed = 0;
	for (int round = 0; round < ROUNDS; round++) {
		pthread_t t[THREADS];
		pthread_barrier_init(&bar, NULL, THREADS + 1);
		for (int i = 0; i < THREADS; i++)
			pthread_create(&t[i], NULL, starter, NULL);
		for (int k = 0; k < SOCKETS; k++) {
			int s = socket(AF_INET, SOCK_STREAM, 0);
			shifted += s != lowest;
			close(s);
		}
		pthread_barrier_wait(&bar);
		for (int i = 0; i < THREADS; i++) {
			void *v;
			pthread_join(t[i], &v);
			failed += v != NULL;
		}
		pthread_barrier_destroy(&bar);
	}
	printf("sockets that did not get the lowest free number: %ld\n", shifted);
	printf("threads whose I/O failed: %ld\n", failed);
	return 0;
}
