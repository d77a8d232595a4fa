/*
 * udpload: a UDP request/response load generator for mgrok's UDP proxies.
 *
 * K connected UDP sockets (K distinct source ports, so K flows through a
 * tunnel) each keep up to N requests outstanding for a fixed duration; every
 * reply is matched to its request (DNS ID, or a sequence header in payload
 * mode), and the tool reports queries/s, lost requests (no reply within the
 * timeout), loss %, and p50/p99/max latency.
 *
 *   DNS mode (default): A queries for a name (default mgrok.test), e.g. to
 *   dnsmasq; a reply must have QR set and the query's ID.
 *   Payload mode (-p SIZE): SIZE-byte datagrams (SIZE >= 8) to an echo
 *   service; a reply must be the request byte for byte.
 *
 * Build (libc only, not part of make check):
 *   cc -O2 -Wall -o /tmp/udpload tests/bench/udpload.c
 * Run:
 *   /tmp/udpload -s 127.0.0.1:5353 -c 10 -o 10 -l 10
 *   /tmp/udpload -s 127.0.0.1:20053 -c 10 -o 10 -l 10 -r 20000   (fixed rate)
 *   /tmp/udpload -s [::1]:7777 -p 512 -l 5
 * Exit code 0, or 2 for bad arguments / 1 for a setup error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_OUTSTANDING 1024
#define MAX_DGRAM 65536

struct slot {
	bool busy;
	uint16_t tag;   /* DNS ID, or the tag in the payload header */
	double sent_at; /* seconds */
};

struct sock {
	int fd;
	uint16_t next_tag;
	int busy;
	struct slot *slots;
};

static struct {
	const char *target;
	int nsocks, outstanding, payload;
	double duration, timeout, rate;
	const char *qname;
	int qtype;
	bool verbose;
} opt = {NULL, 10, 10, 0, 10.0, 1.0, 0.0, "mgrok.test", 1, false};

static struct {
	unsigned long sent, received, lost, late, bad, send_errors, rcode_errors;
	double *lat; /* microseconds of each reply */
	size_t nlat, caplat;
} st;

static uint8_t req[MAX_DGRAM], buf[MAX_DGRAM];
static size_t req_len;
static int slot_bits;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void usage(FILE *f)
{
	fputs("usage: udpload -s HOST:PORT [options]\n"
	      "  -s HOST:PORT  target (IPv6: [addr]:port)\n"
	      "  -c K          sockets, each its own source port (default 10)\n"
	      "  -o N          requests outstanding per socket (default 10, max 1024)\n"
	      "  -l SECONDS    how long to send (default 10)\n"
	      "  -t SECONDS    a request unanswered this long is lost (default 1)\n"
	      "  -r QPS        total send rate limit (default: none, closed loop)\n"
	      "  -n NAME       DNS name to ask for (default mgrok.test)\n"
	      "  -q TYPE       DNS query type number (default 1 = A)\n"
	      "  -p SIZE       payload mode: SIZE-byte datagrams to an echo service\n"
	      "  -v            print a line per second\n",
	      f);
}

static int parse_target(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[256];
	const char *port;
	if (s[0] == '[') {
		const char *end = strchr(s, ']');
		if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof(host))
			return -1;
		memcpy(host, s + 1, end - s - 1);
		host[end - s - 1] = 0;
		port = end + 2;
	} else {
		const char *colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= sizeof(host))
			return -1;
		memcpy(host, s, colon - s);
		host[colon - s] = 0;
		port = colon + 1;
	}
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *ai;
	if (getaddrinfo(host, port, &hints, &ai) != 0)
		return -1;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

/* A DNS query with ID 0 (set per send), RD, one question. */
static size_t build_dns_query(uint8_t *p, const char *name, int qtype)
{
	size_t n = 0;
	uint8_t hdr[12] = {0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
	memcpy(p, hdr, 12);
	n = 12;
	const char *label = name;
	while (*label) {
		const char *dot = strchr(label, '.');
		size_t l = dot ? (size_t)(dot - label) : strlen(label);
		if (l == 0 || l > 63)
			break;
		p[n++] = (uint8_t)l;
		memcpy(p + n, label, l);
		n += l;
		label += l + (dot ? 1 : 0);
		if (!dot)
			break;
	}
	p[n++] = 0;
	p[n++] = (uint8_t)(qtype >> 8);
	p[n++] = (uint8_t)qtype;
	p[n++] = 0;
	p[n++] = 1; /* class IN */
	return n;
}

static void record_latency(double us)
{
	if (st.nlat == st.caplat) {
		st.caplat = st.caplat ? st.caplat * 2 : 65536;
		st.lat = realloc(st.lat, st.caplat * sizeof(*st.lat));
		if (!st.lat) {
			perror("realloc");
			exit(1);
		}
	}
	st.lat[st.nlat++] = us;
}

/* Tags: the low slot_bits bits name the slot, the rest count sends, so a
 * reply to an earlier request of the same slot (late) does not match. */
static bool send_one(struct sock *s, int slot, double t)
{
	struct slot *sl = &s->slots[slot];
	uint16_t tag = (uint16_t)((s->next_tag++ << slot_bits) | (unsigned)slot);
	if (opt.payload) {
		memcpy(req, &tag, 2);
		memcpy(req + 2, &slot, 4);
		/* bytes 6.. vary with the tag too, so a reply is checked whole */
		req[6] = (uint8_t)(tag >> 3);
		req[7] = (uint8_t)(tag * 7);
	} else {
		req[0] = (uint8_t)(tag >> 8);
		req[1] = (uint8_t)tag;
	}
	if (send(s->fd, req, req_len, 0) < 0) {
		st.send_errors++;
		return false;
	}
	sl->busy = true;
	sl->tag = tag;
	sl->sent_at = t;
	s->busy++;
	st.sent++;
	return true;
}

static void on_reply(struct sock *s, const uint8_t *p, size_t n, double t)
{
	uint16_t tag;
	if (opt.payload) {
		if (n != req_len) {
			st.bad++;
			return;
		}
		memcpy(&tag, p, 2);
	} else {
		if (n < 12 || !(p[2] & 0x80)) {
			st.bad++;
			return;
		}
		tag = (uint16_t)(p[0] << 8 | p[1]);
	}
	int slot = tag & ((1 << slot_bits) - 1);
	if (slot >= opt.outstanding) {
		st.bad++;
		return;
	}
	struct slot *sl = &s->slots[slot];
	if (!sl->busy || sl->tag != tag) {
		st.late++; /* answered after its timeout, or a duplicate */
		return;
	}
	if (opt.payload) {
		/* Rebuild what was sent with this tag and compare. */
		uint8_t hdr[8];
		memcpy(hdr, &tag, 2);
		memcpy(hdr + 2, &slot, 4);
		hdr[6] = (uint8_t)(tag >> 3);
		hdr[7] = (uint8_t)(tag * 7);
		if (memcmp(p, hdr, 8) != 0 || memcmp(p + 8, req + 8, n - 8) != 0) {
			st.bad++;
			return;
		}
	} else if (p[3] & 0x0f) {
		st.rcode_errors++;
	}
	sl->busy = false;
	s->busy--;
	st.received++;
	record_latency((t - sl->sent_at) * 1e6);
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double q)
{
	if (!st.nlat)
		return 0;
	size_t i = (size_t)(q * (st.nlat - 1) + 0.5);
	return st.lat[i];
}

int main(int argc, char **argv)
{
	int c;
	while ((c = getopt(argc, argv, "s:c:o:l:t:r:n:q:p:vh")) != -1) {
		switch (c) {
		case 's': opt.target = optarg; break;
		case 'c': opt.nsocks = atoi(optarg); break;
		case 'o': opt.outstanding = atoi(optarg); break;
		case 'l': opt.duration = atof(optarg); break;
		case 't': opt.timeout = atof(optarg); break;
		case 'r': opt.rate = atof(optarg); break;
		case 'n': opt.qname = optarg; break;
		case 'q': opt.qtype = atoi(optarg); break;
		case 'p': opt.payload = atoi(optarg); break;
		case 'v': opt.verbose = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (!opt.target || opt.nsocks < 1 || opt.outstanding < 1 ||
	    opt.outstanding > MAX_OUTSTANDING || opt.duration <= 0 || opt.timeout <= 0 ||
	    (opt.payload && (opt.payload < 8 || opt.payload > 65507))) {
		usage(stderr);
		return 2;
	}
	struct sockaddr_storage ss;
	socklen_t sslen;
	if (parse_target(opt.target, &ss, &sslen) < 0) {
		fprintf(stderr, "udpload: bad target %s\n", opt.target);
		return 2;
	}
	while ((1 << slot_bits) < opt.outstanding)
		slot_bits++;
	if (opt.payload) {
		req_len = (size_t)opt.payload;
		for (size_t i = 8; i < req_len; i++)
			req[i] = (uint8_t)(i * 131 + 7);
	} else {
		req_len = build_dns_query(req, opt.qname, opt.qtype);
	}

	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct sock *socks = calloc((size_t)opt.nsocks, sizeof(*socks));
	for (int i = 0; i < opt.nsocks; i++) {
		struct sock *s = &socks[i];
		s->fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (s->fd < 0 || connect(s->fd, (struct sockaddr *)&ss, sslen) < 0) {
			perror("udpload: socket/connect");
			return 1;
		}
		int sz = 4 << 20;
		setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		setsockopt(s->fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
		s->slots = calloc((size_t)opt.outstanding, sizeof(*s->slots));
		s->next_tag = (uint16_t)(i * 7919);
		struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
		epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
	}

	double start = now(), stop_at = start + opt.duration, last_scan = start;
	double credit = 0, last_credit = start, next_report = start + 1;
	unsigned long last_received = 0;
	bool sending = true;
	struct epoll_event evs[256];
	for (;;) {
		double t = now();
		if (sending && t >= stop_at)
			sending = false;
		/* Lost: unanswered past the timeout; the slot is free again. */
		if (t - last_scan >= 0.005 || !sending) {
			last_scan = t;
			bool any = false;
			for (int i = 0; i < opt.nsocks; i++)
				for (int k = 0; k < opt.outstanding; k++) {
					struct slot *sl = &socks[i].slots[k];
					if (!sl->busy)
						continue;
					if (t - sl->sent_at >= opt.timeout) {
						sl->busy = false;
						socks[i].busy--;
						st.lost++;
					} else {
						any = true;
					}
				}
			if (!sending && !any)
				break;
		}
		if (sending) {
			if (opt.rate > 0) {
				credit += (t - last_credit) * opt.rate;
				last_credit = t;
				double cap = opt.rate * 0.002 + 1; /* at most 2 ms worth at once */
				if (credit > cap)
					credit = cap;
			}
			for (int i = 0; i < opt.nsocks; i++) {
				struct sock *s = &socks[i];
				for (int k = 0; k < opt.outstanding && s->busy < opt.outstanding;
				     k++) {
					if (s->slots[k].busy)
						continue;
					if (opt.rate > 0) {
						if (credit < 1)
							break;
						credit -= 1;
					}
					if (!send_one(s, k, t))
						break;
				}
			}
		}
		int timeout_ms = opt.rate > 0 ? 1 : 5;
		int n = epoll_wait(ep, evs, 256, timeout_ms);
		t = now();
		for (int e = 0; e < n; e++) {
			struct sock *s = evs[e].data.ptr;
			for (;;) {
				ssize_t r = recv(s->fd, buf, sizeof(buf), 0);
				if (r < 0) {
					if (errno == ECONNREFUSED)
						continue; /* ICMP: nothing listens (yet) */
					break;
				}
				on_reply(s, buf, (size_t)r, t);
			}
		}
		if (opt.verbose && t >= next_report) {
			fprintf(stderr, "udpload: %.0f s: %lu replies/s, %lu lost so far\n",
			        t - start, st.received - last_received, st.lost);
			last_received = st.received;
			next_report += 1;
		}
	}
	double elapsed = opt.duration;
	qsort(st.lat, st.nlat, sizeof(*st.lat), cmp_double);
	unsigned long settled = st.received + st.lost;
	printf("target %s, %s, %d sockets x %d outstanding, %.1f s%s\n", opt.target,
	       opt.payload ? "payload mode" : "DNS mode", opt.nsocks, opt.outstanding, elapsed,
	       opt.rate > 0 ? ", rate-limited" : "");
	if (opt.rate > 0)
		printf("rate limit        %.0f q/s\n", opt.rate);
	printf("sent              %lu\n", st.sent);
	printf("answered          %lu\n", st.received);
	printf("lost              %lu (%.3f%%)\n", st.lost,
	       settled ? 100.0 * st.lost / settled : 0.0);
	printf("late/duplicate    %lu\n", st.late);
	printf("bad replies       %lu\n", st.bad);
	if (!opt.payload)
		printf("rcode != NOERROR  %lu\n", st.rcode_errors);
	printf("send errors       %lu\n", st.send_errors);
	printf("queries/s         %.0f\n", st.received / elapsed);
	printf("latency us        p50 %.0f  p99 %.0f  max %.0f\n", pct(0.50), pct(0.99),
	       st.nlat ? st.lat[st.nlat - 1] : 0.0);
	return 0;
}
