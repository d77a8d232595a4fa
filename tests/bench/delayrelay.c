/*
 * delayrelay: a TCP relay that adds latency without limiting the rate.
 *
 * It listens on 127.0.0.1:LISTEN, and for every connection it accepts it
 * connects to TARGET and forwards, in each direction, every chunk it reads
 * after holding it DELAY milliseconds (default 20). A chunk is timestamped
 * when it is read and written once its time has come; reading never waits
 * for writing, so the relay adds delay and no rate limit (a queue is only
 * capped, at 256 MiB per direction, so that a bug cannot eat the machine).
 * Two relays' worth of delay (one each way) gives a round trip of 2 x DELAY.
 *
 * Used by `make bench` (tests/bench/bench.py) to put 40 ms of RTT between
 * mgrok and mgrokd, where the kernel's netem is not available. libc only:
 *
 *   cc -O2 -Wall -o delayrelay tests/bench/delayrelay.c
 *   ./delayrelay LISTEN_PORT TARGET_HOST:PORT [DELAY_MS]
 *
 * It prints "ready" on stdout once it listens, and runs until killed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)
#define QUEUE_CAP (256u * 1024 * 1024)

struct chunk {
	struct chunk *next;
	int64_t due_ns; /* when it may be written */
	size_t len, off;
	char data[];
};

/* One direction: bytes read from `from`, queued, written to `to`. */
struct dir {
	int from, to;
	struct chunk *head, *tail;
	size_t queued;
	bool eof;      /* `from` reached EOF: shut down `to` once the queue is empty */
	bool shut;     /* ... and that was done */
	bool want_out; /* waiting for EPOLLOUT on `to` */
};

struct pair {
	struct dir d[2]; /* d[0]: client -> target, d[1]: target -> client */
	int fds[2];      /* client, target */
	bool connected;  /* the connect to the target completed */
	struct pair *next, *prev;
	bool dead;
};

/* epoll data: a pair and which fd of it (0 client, 1 target), or the listener. */
struct tag {
	struct pair *p;
	int which;
};

static int ep;
static int64_t delay_ns;
static struct sockaddr_in target;
static struct pair *pairs;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void nodelay(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static struct tag *tags_of(struct pair *p)
{
	/* Two tags live right after the pair in the same allocation. */
	return (struct tag *)(p + 1);
}

static void update_events(struct pair *p, int which)
{
	int fd = p->fds[which];
	uint32_t ev = 0;
	/* Reading from fd feeds direction `which`; writing to fd drains the other. */
	struct dir *in = &p->d[which], *out = &p->d[1 - which];
	if (!p->connected && which == 1) {
		ev = EPOLLOUT; /* connect in progress */
	} else {
		if (!in->eof && in->queued < QUEUE_CAP && p->connected)
			ev |= EPOLLIN;
		if (out->want_out)
			ev |= EPOLLOUT;
	}
	struct epoll_event e = {.events = ev, .data.ptr = &tags_of(p)[which]};
	if (epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e) < 0)
		die("epoll_ctl mod");
}

static void pair_free(struct pair *p)
{
	for (int i = 0; i < 2; i++) {
		close(p->fds[i]);
		struct chunk *c = p->d[i].head;
		while (c) {
			struct chunk *n = c->next;
			free(c);
			c = n;
		}
	}
	if (p->prev)
		p->prev->next = p->next;
	else
		pairs = p->next;
	if (p->next)
		p->next->prev = p->prev;
	free(p);
}

/* Writes every due chunk of d; returns -1 on a write error. */
static int flush_dir(struct pair *p, struct dir *d, int64_t now)
{
	d->want_out = false;
	while (d->head && d->head->due_ns <= now) {
		struct chunk *c = d->head;
		ssize_t n = send(d->to, c->data + c->off, c->len - c->off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				d->want_out = true;
				return 0;
			}
			if (errno == EINTR)
				continue;
			return -1;
		}
		c->off += (size_t)n;
		if (c->off < c->len) {
			d->want_out = true;
			return 0;
		}
		d->head = c->next;
		if (!d->head)
			d->tail = NULL;
		d->queued -= c->len;
		free(c);
	}
	if (!d->head && d->eof && !d->shut) {
		shutdown(d->to, SHUT_WR);
		d->shut = true;
	}
	(void)p;
	return 0;
}

static int read_dir(struct dir *d, int64_t now)
{
	for (int rounds = 0; rounds < 16 && d->queued < QUEUE_CAP; rounds++) {
		struct chunk *c = malloc(sizeof(*c) + CHUNK);
		if (!c)
			die("malloc");
		ssize_t n = recv(d->from, c->data, CHUNK, 0);
		if (n <= 0) {
			free(c);
			if (n == 0) {
				d->eof = true;
				return 0;
			}
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			if (errno == EINTR)
				continue;
			return -1;
		}
		if ((size_t)n < CHUNK / 2) {
			struct chunk *s = realloc(c, sizeof(*c) + (size_t)n);
			if (s)
				c = s;
		}
		c->next = NULL;
		c->due_ns = now + delay_ns;
		c->len = (size_t)n;
		c->off = 0;
		if (d->tail)
			d->tail->next = c;
		else
			d->head = c;
		d->tail = c;
		d->queued += (size_t)n;
		if ((size_t)n < CHUNK)
			return 0;
	}
	return 0;
}

static void accept_one(int lfd)
{
	int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd < 0)
		return;
	int tfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (tfd < 0) {
		close(cfd);
		return;
	}
	nodelay(cfd);
	nodelay(tfd);
	if (connect(tfd, (struct sockaddr *)&target, sizeof(target)) < 0 && errno != EINPROGRESS) {
		close(cfd);
		close(tfd);
		return;
	}
	struct pair *p = calloc(1, sizeof(*p) + 2 * sizeof(struct tag));
	if (!p)
		die("calloc");
	p->fds[0] = cfd;
	p->fds[1] = tfd;
	p->d[0].from = cfd;
	p->d[0].to = tfd;
	p->d[1].from = tfd;
	p->d[1].to = cfd;
	struct tag *t = tags_of(p);
	t[0].p = p;
	t[0].which = 0;
	t[1].p = p;
	t[1].which = 1;
	p->next = pairs;
	if (pairs)
		pairs->prev = p;
	pairs = p;
	struct epoll_event e0 = {.events = 0, .data.ptr = &t[0]};
	struct epoll_event e1 = {.events = EPOLLOUT, .data.ptr = &t[1]};
	if (epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &e0) < 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &e1) < 0)
		die("epoll_ctl add");
}

/* Flushes every pair's due chunks; returns ms until the next chunk is due (-1: none). */
static int flush_all(void)
{
	int64_t now = now_ns(), next = -1;
	struct pair *p = pairs;
	while (p) {
		struct pair *n = p->next;
		if (p->connected) {
			bool err = false;
			for (int i = 0; i < 2; i++)
				if (!p->d[i].want_out && flush_dir(p, &p->d[i], now) < 0)
					err = true;
			bool done = p->d[0].shut && p->d[1].shut;
			if (err || done) {
				pair_free(p);
				p = n;
				continue;
			}
			for (int i = 0; i < 2; i++) {
				update_events(p, i);
				struct chunk *h = p->d[i].head;
				if (h && !p->d[i].want_out && (next < 0 || h->due_ns < next))
					next = h->due_ns;
			}
		}
		p = n;
	}
	if (next < 0)
		return -1;
	int64_t wait = next - now_ns();
	if (wait <= 0)
		return 0;
	return (int)((wait + 999999) / 1000000); /* round up: never release early */
}

int main(int argc, char **argv)
{
	if (argc < 3) {
		fprintf(stderr, "usage: delayrelay LISTEN_PORT TARGET_HOST:PORT [DELAY_MS]\n");
		return 2;
	}
	int lport = atoi(argv[1]);
	char host[64];
	const char *colon = strrchr(argv[2], ':');
	if (!colon || (size_t)(colon - argv[2]) >= sizeof(host)) {
		fprintf(stderr, "delayrelay: bad target %s\n", argv[2]);
		return 2;
	}
	memcpy(host, argv[2], (size_t)(colon - argv[2]));
	host[colon - argv[2]] = 0;
	target.sin_family = AF_INET;
	target.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &target.sin_addr) != 1) {
		fprintf(stderr, "delayrelay: bad target host %s (IPv4 address)\n", host);
		return 2;
	}
	delay_ns = (int64_t)(argc > 3 ? atof(argv[3]) : 20.0) * 1000000;
	signal(SIGPIPE, SIG_IGN);

	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in la = {.sin_family = AF_INET, .sin_port = htons((uint16_t)lport)};
	la.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(lfd, (struct sockaddr *)&la, sizeof(la)) < 0 || listen(lfd, 128) < 0)
		die("delayrelay: listen");
	ep = epoll_create1(EPOLL_CLOEXEC);
	static struct tag listener_tag = {NULL, -1};
	struct epoll_event le = {.events = EPOLLIN, .data.ptr = &listener_tag};
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &le) < 0)
		die("epoll");
	printf("ready\n");
	fflush(stdout);

	struct epoll_event evs[64];
	int timeout = -1;
	for (;;) {
		int n = epoll_wait(ep, evs, 64, timeout);
		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		int64_t now = now_ns();
		for (int i = 0; i < n; i++) {
			struct tag *t = evs[i].data.ptr;
			if (!t->p) {
				accept_one(lfd);
				continue;
			}
			struct pair *p = t->p;
			if (p->dead)
				continue;
			uint32_t e = evs[i].events;
			if (!p->connected) {
				if (t->which == 1 && (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
					int err = 0;
					socklen_t el = sizeof(err);
					getsockopt(p->fds[1], SOL_SOCKET, SO_ERROR, &err, &el);
					if (err) {
						p->dead = true;
						continue;
					}
					p->connected = true;
				}
				continue;
			}
			if (e & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
				if (read_dir(&p->d[t->which], now) < 0)
					p->dead = true;
			}
			if (e & EPOLLOUT) {
				struct dir *out = &p->d[1 - t->which];
				if (flush_dir(p, out, now) < 0)
					p->dead = true;
			}
		}
		/* Free dead pairs (after the batch: events may still name them). */
		for (struct pair *p = pairs, *nx; p; p = nx) {
			nx = p->next;
			if (p->dead)
				pair_free(p);
		}
		timeout = flush_all();
	}
}
