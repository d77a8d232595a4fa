/*
 * The session's byte transport: a plain TCP socket or TLS over it. Reads
 * and writes never block; with TLS a read may need the socket writable
 * (and a write readable), which the flags tell the session.
 */
#ifndef MGROK_TRANSPORT_H
#define MGROK_TRANSPORT_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <sys/types.h>

#define MGROK_IO_AGAIN (-1) /* would block: wait for readiness and retry */
#define MGROK_IO_ERROR (-2) /* failed: the reason is in t->err, its cause in t->cause */

/* What a failed read or write failed at. The text in err is for people;
 * decisions go by this. */
enum mgrok_io_cause {
	MGROK_IO_SOCKET = 0, /* the socket: an errno, or the peer closed it */
	MGROK_IO_TLS,        /* TLS, other than the certificate */
	MGROK_IO_TLS_CERT,   /* the peer's certificate did not verify */
};

struct mgrok_transport {
	int fd;
	SSL *ssl;                  /* NULL: plain TCP */
	bool read_wants_write;     /* the last read is waiting for writability */
	bool write_wants_read;     /* the last write is waiting for readability */
	enum mgrok_io_cause cause; /* of the last MGROK_IO_ERROR */
	char err[256];
};

/* > 0 bytes, 0 at the end of the stream, MGROK_IO_AGAIN or MGROK_IO_ERROR. */
ssize_t mgrok_transport_read(struct mgrok_transport *t, void *buf, size_t len);
ssize_t mgrok_transport_write(struct mgrok_transport *t, const void *buf, size_t len);
/* Decrypted bytes already inside the TLS layer: no readiness event will come for them. */
bool mgrok_transport_pending(const struct mgrok_transport *t);
/* Frees the TLS state and closes the fd. */
void mgrok_transport_close(struct mgrok_transport *t);

#endif
