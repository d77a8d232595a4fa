/*
 * barerelay: the least a TCP relay can do, as a reference for make bench.
 *
 *   barerelay LISTEN_PORT TARGET_PORT
 *
 * Accepts on 127.0.0.1:LISTEN_PORT and connects each connection to
 * 127.0.0.1:TARGET_PORT; one thread per direction moves bytes with blocking
 * read(2)/write(2) through a 256 KiB buffer, TCP_NODELAY on both sockets.
 * No framing, no multiplexing, no flow control, no event loop: two of them
 * chained show what any tunnel with two relays (visitor -> server -> client
 * -> service) can reach on this machine. Not part of mgrok.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE (256 * 1024)

struct pair;

struct direction {
	int from, to;
	struct pair *pair;
};

/* One connection: two directions; the one that ends last frees it all. */
struct pair {
	struct direction dir[2];
	pthread_mutex_t lock;
	int running;
};

static void *pump(void *arg)
{
	struct direction *d = arg;
	struct pair *p = d->pair;
	char *buf = malloc(BUF_SIZE);
	ssize_t n = buf ? 1 : -1;
	while (n > 0) {
		n = read(d->from, buf, BUF_SIZE);
		if (n < 0 && errno == EINTR)
			n = 1;
		for (ssize_t off = 0; n > 0 && off < n;) {
			ssize_t w = write(d->to, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				n = -1;
				break;
			}
			off += w;
		}
	}
	free(buf);
	/* Pass the end of this direction on; the other may still be busy. */
	shutdown(d->to, SHUT_WR);
	pthread_mutex_lock(&p->lock);
	int last = --p->running == 0;
	pthread_mutex_unlock(&p->lock);
	if (last) {
		close(p->dir[0].from);
		close(p->dir[0].to);
		pthread_mutex_destroy(&p->lock);
		free(p);
	}
	return NULL;
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: barerelay LISTEN_PORT TARGET_PORT\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	struct sockaddr_in listen_addr = loopback(atoi(argv[1]));
	struct sockaddr_in target = loopback(atoi(argv[2]));
	int one = 1;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&listen_addr, sizeof(listen_addr)) < 0 ||
	    listen(l, 4096) < 0) {
		perror("barerelay: listen");
		return 1;
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64 * 1024);
	for (;;) {
		int c = accept(l, NULL, NULL);
		if (c < 0) {
			usleep(1000); /* out of fds, say: let the others finish */
			continue;
		}
		int t = socket(AF_INET, SOCK_STREAM, 0);
		if (t < 0 || connect(t, (struct sockaddr *)&target, sizeof(target)) < 0) {
			close(c);
			if (t >= 0)
				close(t);
			continue;
		}
		setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		setsockopt(t, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct pair *p = calloc(1, sizeof(*p));
		pthread_mutex_init(&p->lock, NULL);
		p->running = 2;
		p->dir[0] = (struct direction){c, t, p};
		p->dir[1] = (struct direction){t, c, p};
		pthread_t th;
		pthread_create(&th, &attr, pump, &p->dir[0]);
		pthread_create(&th, &attr, pump, &p->dir[1]);
	}
}
