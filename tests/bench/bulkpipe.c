/*
 * bulkpipe: bulk throughput through a tunnel whose first bytes must be a TLS
 * ClientHello (mgrok's tls proxies route by its SNI), for make bench.
 *
 *   bulkpipe serve PORT OMIT_MS          the local service
 *   bulkpipe up PORT SECONDS HELLO       a visitor sending SECONDS, then closing
 *   bulkpipe down PORT SECONDS OMIT_MS HELLO
 *                                        a visitor receiving for OMIT + SECONDS
 *
 * A visitor connects to 127.0.0.1:PORT and sends the bytes of the file HELLO
 * (one TLS record: a ClientHello made by the bench) and one byte, 'U' or 'D';
 * then it streams 128 KiB writes until SECONDS are up ('U'), or reads ('D').
 * No TLS is spoken after the hello: a tls proxy relays raw bytes both ways
 * once it has routed the connection, and a tcp proxy never looks. The same
 * bytes go through either, so the two are compared on equal terms.
 *
 * The service reads the record and the byte, then counts what it receives
 * ('U') or writes 128 KiB blocks until the visitor goes away ('D'). The
 * receiving side measures, leaving out the first OMIT_MS after the first
 * byte (like iperf3 -O), and prints one line, "BYTES NANOSECONDS TOTAL"
 * (TOTAL: every byte received, the omitted ones too): the service on stdout
 * at the visitor's end of stream, the 'D' visitor on stdout when done. One
 * thread per connection. Not part of mgrok.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (128 * 1024)

static long omit_ms;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct sockaddr_in loopback(int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return a;
}

static int read_full(int fd, uint8_t *buf, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t n = read(fd, buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const uint8_t *buf, size_t len)
{
	for (size_t off = 0; off < len;) {
		ssize_t n = write(fd, buf + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	return 0;
}

/* Reads until end of stream or until limit_ns after the first byte (0: no
 * limit); counts what arrives after the first omit_ms, and all of it. */
static void receive(int fd, uint8_t *buf, int64_t limit_ns, int64_t *bytes, int64_t *ns,
                    int64_t *total)
{
	int64_t first = 0, start = 0, last = 0, counted = 0, all = 0;
	for (;;) {
		ssize_t n = read(fd, buf, BLOCK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		int64_t t = now_ns();
		all += n;
		if (!first) {
			first = t;
			start = first + omit_ms * 1000000;
		}
		if (t >= start) {
			counted += n;
			last = t;
		}
		if (limit_ns && t - first >= limit_ns)
			break;
	}
	*bytes = counted;
	*ns = last > start ? last - start : 0;
	*total = all;
}

static void *serve_one(void *arg)
{
	int fd = (int)(intptr_t)arg;
	uint8_t *buf = malloc(BLOCK);
	uint8_t head[5];
	if (!buf || read_full(fd, head, sizeof(head)) < 0)
		goto out;
	/* The TLS record holding the ClientHello, then the mode byte. */
	size_t len = (size_t)head[3] << 8 | head[4];
	if (len > BLOCK - 1 || read_full(fd, buf, len + 1) < 0)
		goto out;
	if (buf[len] == 'U') {
		int64_t bytes, ns, total;
		receive(fd, buf, 0, &bytes, &ns, &total);
		pthread_mutex_lock(&out_lock);
		printf("%lld %lld %lld\n", (long long)bytes, (long long)ns, (long long)total);
		fflush(stdout);
		pthread_mutex_unlock(&out_lock);
	} else if (buf[len] == 'D') {
		memset(buf, 'x', BLOCK);
		while (write_full(fd, buf, BLOCK) == 0)
			;
	}
out:
	free(buf);
	close(fd);
	return NULL;
}

static int serve(int port)
{
	struct sockaddr_in a = loopback(port);
	int one = 1;
	int l = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 128) < 0) {
		perror("bulkpipe: listen");
		return 1;
	}
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	for (;;) {
		int c = accept(l, NULL, NULL);
		if (c < 0) {
			usleep(1000);
			continue;
		}
		pthread_t th;
		if (pthread_create(&th, &attr, serve_one, (void *)(intptr_t)c) != 0)
			close(c);
	}
}

/* Connects and sends the hello and the mode byte. */
static int visit(int port, const char *hello_file, char mode)
{
	uint8_t hello[16384 + 6];
	FILE *f = fopen(hello_file, "rb");
	if (!f) {
		perror(hello_file);
		return -1;
	}
	size_t len = fread(hello, 1, sizeof(hello) - 1, f);
	fclose(f);
	hello[len++] = (uint8_t)mode;
	struct sockaddr_in a = loopback(port);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    write_full(fd, hello, len) < 0) {
		perror("bulkpipe: connect");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* The visitors' one buffer (the service's are per connection). */
static uint8_t visitor_buf[BLOCK];

static int send_up(int port, double seconds, const char *hello_file)
{
	int fd = visit(port, hello_file, 'U');
	if (fd < 0)
		return 1;
	memset(visitor_buf, 'x', sizeof(visitor_buf));
	int64_t end = now_ns() + (int64_t)(seconds * 1e9);
	int rc = 0;
	while (rc == 0 && now_ns() < end)
		if (write_full(fd, visitor_buf, sizeof(visitor_buf)) < 0) {
			perror("bulkpipe: write");
			rc = 1;
		}
	close(fd);
	return rc;
}

static int receive_down(int port, double seconds, const char *hello_file)
{
	int fd = visit(port, hello_file, 'D');
	if (fd < 0)
		return 1;
	int64_t bytes, ns, total;
	receive(fd, visitor_buf, omit_ms * 1000000 + (int64_t)(seconds * 1e9), &bytes, &ns, &total);
	close(fd);
	printf("%lld %lld %lld\n", (long long)bytes, (long long)ns, (long long)total);
	return bytes > 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 4 && !strcmp(argv[1], "serve")) {
		omit_ms = atol(argv[3]);
		return serve(atoi(argv[2]));
	}
	if (argc == 5 && !strcmp(argv[1], "up"))
		return send_up(atoi(argv[2]), atof(argv[3]), argv[4]);
	if (argc == 6 && !strcmp(argv[1], "down")) {
		omit_ms = atol(argv[4]);
		return receive_down(atoi(argv[2]), atof(argv[3]), argv[5]);
	}
	fprintf(stderr, "usage: bulkpipe serve PORT OMIT_MS\n"
	                "       bulkpipe up PORT SECONDS HELLO_FILE\n"
	                "       bulkpipe down PORT SECONDS OMIT_MS HELLO_FILE\n");
	return 2;
}
