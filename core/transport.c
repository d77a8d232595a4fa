#include "transport.h"

#include <errno.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tls.h"

static ssize_t tls_result(struct mgrok_transport *t, int n, bool reading)
{
	int e = SSL_get_error(t->ssl, n);
	switch (e) {
	case SSL_ERROR_WANT_READ: t->write_wants_read = !reading; return MGROK_IO_AGAIN;
	case SSL_ERROR_WANT_WRITE: t->read_wants_write = reading; return MGROK_IO_AGAIN;
	case SSL_ERROR_ZERO_RETURN: return 0;
	default: break;
	}
	unsigned long code = ERR_peek_last_error();
	if (!SSL_is_init_finished(t->ssl)) {
		bool cert = mgrok_tls_explain(t->ssl, code, t->err, sizeof(t->err));
		t->cause = cert ? MGROK_IO_TLS_CERT : MGROK_IO_TLS;
	} else if (e == SSL_ERROR_SYSCALL && !code) {
		t->cause = MGROK_IO_SOCKET;
		snprintf(t->err, sizeof(t->err), "%s",
		         errno ? strerror(errno) : "connection closed");
	} else {
		t->cause = MGROK_IO_TLS;
		char buf[200];
		ERR_error_string_n(code, buf, sizeof(buf));
		snprintf(t->err, sizeof(t->err), "TLS: %s", buf);
	}
	ERR_clear_error();
	return MGROK_IO_ERROR;
}

ssize_t mgrok_transport_read(struct mgrok_transport *t, void *buf, size_t len)
{
	if (t->ssl) {
		t->read_wants_write = false;
		ERR_clear_error();
		int n = SSL_read(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
		return n > 0 ? n : tls_result(t, n, true);
	}
	for (;;) {
		ssize_t n = read(t->fd, buf, len);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return MGROK_IO_AGAIN;
		t->cause = MGROK_IO_SOCKET;
		snprintf(t->err, sizeof(t->err), "%s", strerror(errno));
		return MGROK_IO_ERROR;
	}
}

ssize_t mgrok_transport_write(struct mgrok_transport *t, const void *buf, size_t len)
{
	if (t->ssl) {
		t->write_wants_read = false;
		ERR_clear_error();
		int n = SSL_write(t->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
		if (n > 0)
			return n;
		ssize_t r = tls_result(t, n, false);
		/* A write never reports the end of the stream: the peer is gone. */
		if (r == 0) {
			t->cause = MGROK_IO_SOCKET;
			snprintf(t->err, sizeof(t->err), "connection closed");
			return MGROK_IO_ERROR;
		}
		return r;
	}
	for (;;) {
		ssize_t n = write(t->fd, buf, len);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return MGROK_IO_AGAIN;
		t->cause = MGROK_IO_SOCKET;
		snprintf(t->err, sizeof(t->err), "%s", strerror(errno));
		return MGROK_IO_ERROR;
	}
}

bool mgrok_transport_pending(const struct mgrok_transport *t)
{
	/* SSL_has_pending also counts read-ahead records not yet decrypted. */
	return t->ssl && SSL_has_pending(t->ssl);
}

void mgrok_transport_close(struct mgrok_transport *t)
{
	if (t->ssl) {
		/* Best effort close_notify: the socket is non-blocking. */
		if (SSL_is_init_finished(t->ssl))
			SSL_shutdown(t->ssl);
		SSL_free(t->ssl);
		t->ssl = NULL;
	}
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
}
