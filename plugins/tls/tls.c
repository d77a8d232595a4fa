/*
 * The tls proxy type (0x04): TLS passthrough routed by SNI. One listener,
 * shared by every session's tls proxies, reads each visitor's ClientHello
 * (possibly over several segments), finds its server_name, and hands the
 * connection -- ClientHello included, byte for byte -- to the proxy that
 * holds that name. Nothing is decrypted: the local service terminates TLS
 * with its own certificate. The bytes are read, not peeked: a peek would
 * leave them readable and spin the loop while a segment is still missing.
 */
#include <stdio.h>
#include <string.h>

#include "client_hello.h"
#include "mgrok/plugin.h"
#include "vhost.h"

static bool on_bytes(struct vhost_conn *c)
{
	char name[256];
	int rc = tls_hello_sni(c->buf, c->len, name, sizeof(name));
	if (rc == TLS_HELLO_MORE)
		return true;
	const struct mgrok_host *h = vhost_host(c->vh);
	struct vhost_proxy *vp;
	struct mgrok_proxy *px = rc == TLS_HELLO_SNI ? vhost_lookup(c, name, &vp) : NULL;
	if (px && vhost_attach(c, px, c->buf, c->len, NULL) == 0)
		return false;
	if (rc == TLS_HELLO_BAD) {
		h->log(vhost_self(c->vh), MGROK_LOG_DEBUG, "%s: not a TLS ClientHello", c->src_ip);
		vhost_answer(c, NULL, 0);
		return false;
	}
	h->log(vhost_self(c->vh), MGROK_LOG_DEBUG, "%s: %s%s", c->src_ip,
	       rc == TLS_HELLO_NO_SNI ? "no SNI"
	       : px                   ? "tunnel at its stream limit: "
	                              : "no tunnel for ",
	       rc == TLS_HELLO_SNI ? name : "");
	vhost_answer(c, tls_alert_unrecognized_name, sizeof(tls_alert_unrecognized_name));
	return false;
}

static void on_stuck(struct vhost_conn *c, bool timeout)
{
	/* In time and too long is TLS_HELLO_BAD already; this is a slow one. */
	vhost_answer(c, NULL, 0);
}

static const struct vhost_proto proto = {
        .scheme = "tls",
        .timeout_key = "hello_timeout",
        .default_port = 0,
        .max_first_bytes = TLS_HELLO_MAX,
        .on_bytes = on_bytes,
        .on_stuck = on_stuck,
};

static int init(const struct mgrok_host *host, const struct mgrok_plugin *self, const json_t *conf,
                void **inst, char *err, size_t errlen)
{
	return vhost_init(&proto, host, self, conf, inst, err, errlen);
}

static const struct mgrok_proxy_ops ops = {
        VHOST_PROXY_OPS,
};

MGROK_PLUGIN_DEFINE(.kind = MGROK_PLUGIN_PROXY, .name = "tls", .wire_id = 0x04, .init = init,
                    .fini = vhost_fini, .proxy = &ops)
