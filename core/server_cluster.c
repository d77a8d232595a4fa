/*
 * A node of a cluster (doc/cluster.md): what a REGISTER binds -- its
 * public port, or each of its names -- is claimed in Redis before the
 * REGISTER is answered, so that no two nodes serve the same one. The
 * claims are the proxy's: given back with it, and a claim lost to another
 * node ends the session (its client comes back and registers again).
 *
 * A claim's value is "OWNER|NODE SESSION PROXY" (claims.h): OWNER is the
 * session's identity and clientId, hashed, so that a client that comes
 * back through another node takes its claims over at once instead of
 * waiting for the old node's lease. The members of a group, on every
 * node, share one value, "OWNER|group NAME" (OWNER: a hash of the group's
 * name and key), and each holds it; nobody gives it back, it ends a lease
 * after the last member anywhere has gone.
 */
#include "server_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "claims.h"
#include "group.h"
#include "log.h"
#include "plugin_loader.h"
#include "proxy.h"
#include "session.h"

#define KEY_PREFIX "mgrok:claim:"
#define PORT_TRIES 64 /* port 0: ports tried, one after another, on lost races */

/* A proxy's claims, and the REGISTER they answer. */
struct srv_claims {
	struct srv_session *ss;
	struct mgrok_proxy *px;
	unsigned waiting; /* answers still to come */
	unsigned tries;   /* port 0: ports claimed so far */
	bool pick_port;   /* port 0 was asked for: a lost race tries another */
	bool relayed;     /* held, and so served by the other nodes too */
	uint8_t status;   /* the first refusal, or OK */
	char msg[MGROK_MESSAGE_MAX];
	size_t n;
	struct mgrok_claim *c[];
};

int mgrok_server_cluster_start(struct mgrok_server *srv, char *err, size_t errlen)
{
	const struct mgrok_cluster_conf *c = &srv->conf->cluster;
	if (!c->given)
		return 0;
	if (c->node)
		snprintf(srv->node, sizeof(srv->node), "%s", c->node);
	else if (gethostname(srv->node, sizeof(srv->node) - 1) < 0 || !srv->node[0])
		snprintf(srv->node, sizeof(srv->node), "mgrokd");
	srv->claims = mgrok_claims_new(srv->ctx->loop, c->redis, c->lease, err, errlen);
	if (!srv->claims)
		return -1;
	srv->relays = mgrok_relays_new(srv, err, errlen);
	if (!srv->relays)
		return -1;
	MGROK_INFO("cluster node %s: registry %s, lease %g s", srv->node, c->redis, c->lease);
	return 0;
}

json_t *mgrok_cluster_auth_options(const struct mgrok_cluster_conf *c)
{
	return c->secret ? json_pack("{ss}", "token", c->secret)
	                 : json_pack("{ss}", "token_file", c->secret_file);
}

void mgrok_server_cluster_free(struct mgrok_server *srv)
{
	mgrok_relays_free(srv->relays);
	srv->relays = NULL;
	mgrok_claims_free(srv->claims);
	srv->claims = NULL;
}

/* The OWNER part: hex of a hash of what says "the same client". */
static void owner_of(const struct srv_session *ss, const struct mgrok_proxy *px, char *out,
                     size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	EVP_MD_CTX *h = EVP_MD_CTX_new();
	const char *what = px->group ? "group" : "client";
	const char *a = px->group ? px->group->name : ss->identity;
	const char *b = px->group ? px->group->key : ss->client_id;
	if (!h || !EVP_DigestInit_ex(h, EVP_sha256(), NULL) ||
	    !EVP_DigestUpdate(h, what, strlen(what) + 1) ||
	    !EVP_DigestUpdate(h, a, strlen(a) + 1) || !EVP_DigestUpdate(h, b, strlen(b)) ||
	    !EVP_DigestFinal_ex(h, md, &mdlen))
		mdlen = 0;
	EVP_MD_CTX_free(h);
	size_t n = 0;
	for (unsigned i = 0; i < mdlen && i < 16 && n + 3 <= len; i++)
		n += (size_t)snprintf(out + n, len - n, "%02x", md[i]);
	out[n] = '\0';
}

/* Without a clientId nothing says a later session is the same client:
 * such a session's claims are never taken over (no OWNER). */
static void value_of(const struct srv_session *ss, const struct mgrok_proxy *px, char *out,
                     size_t len)
{
	char owner[MGROK_CLAIM_OWNER_MAX + 1] = "";
	if (px->group || ss->client_id[0])
		owner_of(ss, px, owner, sizeof(owner));
	if (px->group) /* the same on every node: they all hold it */
		snprintf(out, len, "%s|group %s", owner, px->group->name);
	else
		snprintf(out, len, "%s%s%s %u %s", owner, owner[0] ? "|" : "", ss->srv->node,
		         ss->sess->id, px->name);
}

/* What px binds -- its group's anchor's port or names, or its own -- as
 * claim keys: keys[i], with hostnames[i] for a name (NULL for a port). */
static size_t keys_of(const struct mgrok_proxy *px, char ***keys, const char ***hostnames)
{
	const struct mgrok_proxy *b = px->group ? px->group->anchor : px;
	const char *type = px->plugin->desc->name;
	size_t n = 0;
	for (const struct mgrok_name *nm = b->names; nm; nm = nm->px_next)
		n++;
	*keys = mgrok_xcalloc(n ? n : 1, sizeof(**keys));
	*hostnames = mgrok_xcalloc(n ? n : 1, sizeof(**hostnames));
	char buf[sizeof(KEY_PREFIX) + 16 + MGROK_HOSTNAME_MAX];
	if (!n) {
		snprintf(buf, sizeof(buf), KEY_PREFIX "%s/%u", type, b->spec.remote_port);
		(*keys)[0] = mgrok_xstrdup(buf);
		return 1;
	}
	size_t i = 0;
	for (const struct mgrok_name *nm = b->names; nm; nm = nm->px_next, i++) {
		snprintf(buf, sizeof(buf), KEY_PREFIX "%s/%s", type, nm->name);
		(*keys)[i] = mgrok_xstrdup(buf);
		(*hostnames)[i] = nm->name;
	}
	return n;
}

static void keys_free(char **keys, const char **hostnames, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(keys[i]);
	free(keys);
	free(hostnames);
}

/* Held: served on the other nodes too (or no more). */
static void relay(struct srv_claims *sc, bool on)
{
	char **keys;
	const char **hostnames;
	size_t n = keys_of(sc->px, &keys, &hostnames);
	for (size_t i = 0; i < n; i++) {
		if (on)
			mgrok_relays_bind(sc->ss->srv->relays, sc->px, keys[i], hostnames[i]);
		else
			mgrok_relays_unbind(sc->ss->srv->relays, keys[i]);
	}
	keys_free(keys, hostnames, n);
	sc->relayed = on;
}

/* Gives every claim back, or (a group's) leaves it to the other members
 * and to its lease. */
static void claims_end(struct srv_claims *sc, bool give_back)
{
	for (size_t i = 0; i < sc->n; i++) {
		if (give_back)
			mgrok_claim_release(sc->c[i]);
		else
			mgrok_claim_forget(sc->c[i]);
		sc->c[i] = NULL;
	}
}

static void take_all(struct srv_claims *sc);

/* Every claim answered: the REGISTER's answer, or another port. */
static void settle(struct srv_claims *sc)
{
	struct srv_session *ss = sc->ss;
	struct mgrok_proxy *px = sc->px;
	if (sc->status == MGROK_ACK_OK) {
		relay(sc, true);
		mgrok_server_register_ok(ss, px);
		return;
	}
	if (sc->status == MGROK_ACK_PORT_IN_USE && sc->pick_port && sc->tries < PORT_TRIES) {
		claims_end(sc, true);
		uint8_t st = mgrok_server_rebind_port(ss, px, sc->msg, sizeof(sc->msg));
		if (st == MGROK_ACK_OK) {
			sc->status = MGROK_ACK_OK;
			take_all(sc);
			return;
		}
		sc->status = st;
	}
	mgrok_server_register_refused(ss, px, sc->status, sc->msg); /* frees sc, after the answer */
}

static void on_claim(void *arg, struct mgrok_claim *c, enum mgrok_claim_status st)
{
	struct srv_claims *sc = arg;
	struct srv_session *ss = sc->ss;
	if (st == MGROK_CLAIM_LOST) {
		MGROK_SESSION_LOG(ss->sess, MGROK_LOGK_PROXIES, MGROK_LOG_WARN,
		                  "session %u proxy %s: another node holds its claim now",
		                  ss->sess->id, sc->px->name);
		mgrok_session_close(ss->sess, MGROK_GOAWAY_NORMAL, MGROK_CLOSE_LOCAL,
		                    "proxy %s is served by another node now", sc->px->name);
		return;
	}
	if (st != MGROK_CLAIM_OK && sc->status == MGROK_ACK_OK) {
		bool named = sc->px->names || (sc->px->group && sc->px->group->anchor->names);
		sc->status = st == MGROK_CLAIM_UNAVAILABLE ? MGROK_ACK_LIMIT
		             : named                       ? MGROK_ACK_NAME_IN_USE
		                                           : MGROK_ACK_PORT_IN_USE;
		snprintf(sc->msg, sizeof(sc->msg), "%s",
		         st == MGROK_CLAIM_UNAVAILABLE ? "the cluster registry cannot be reached"
		         : named                       ? "the name is in use on another node"
		                                       : "the port is in use on another node");
	}
	if (st != MGROK_CLAIM_OK) {
		for (size_t i = 0; i < sc->n; i++)
			if (sc->c[i] == c) {
				mgrok_claim_release(c);
				sc->c[i] = NULL;
			}
	}
	if (--sc->waiting == 0)
		settle(sc);
}

static void take_all(struct srv_claims *sc)
{
	char **keys;
	const char **hostnames;
	char value[MGROK_CLAIM_OWNER_MAX + 2 * MGROK_NAME_MAX + 32];
	size_t n = keys_of(sc->px, &keys, &hostnames);
	value_of(sc->ss, sc->px, value, sizeof(value));
	sc->tries++;
	sc->waiting = 0;
	for (size_t i = 0; i < n && i < sc->n; i++) {
		sc->c[i] = mgrok_claim_take(sc->ss->srv->claims, keys[i], value, on_claim, sc);
		if (sc->c[i])
			sc->waiting++;
		else if (sc->status == MGROK_ACK_OK) {
			sc->status = MGROK_ACK_LIMIT;
			snprintf(sc->msg, sizeof(sc->msg),
			         "the cluster registry cannot be reached");
		}
	}
	keys_free(keys, hostnames, n);
	if (!sc->waiting)
		settle(sc);
}

void mgrok_server_claim(struct srv_session *ss, struct mgrok_proxy *px, bool pick_port)
{
	if (!ss->srv->claims || ss->node) { /* a node's relay: that node claimed it */
		mgrok_server_register_ok(ss, px);
		return;
	}
	size_t n = 0; /* a claim per name, or one for the port */
	for (const struct mgrok_name *nm = (px->group ? px->group->anchor : px)->names; nm;
	     nm = nm->px_next)
		n++;
	n = n ? n : 1;
	struct srv_claims *sc = mgrok_xcalloc(1, sizeof(*sc) + n * sizeof(sc->c[0]));
	sc->ss = ss;
	sc->px = px;
	sc->n = n;
	sc->pick_port = pick_port && !px->group && !px->names;
	px->claims = sc;
	take_all(sc);
}

size_t mgrok_server_claims_held(const struct mgrok_server *srv)
{
	size_t n = 0;
	for (const struct srv_session *ss = srv->sessions; ss; ss = ss->next)
		for (const struct mgrok_proxy *px = ss->proxies; px; px = px->next)
			if (px->claims && px->claims->relayed)
				n += px->claims->n;
	return n;
}

bool mgrok_server_claim_pending(const struct mgrok_proxy *px)
{
	return px->claims && px->claims->waiting;
}

void mgrok_server_unclaim(struct mgrok_proxy *px)
{
	struct srv_claims *sc = px->claims;
	if (!sc)
		return;
	if (sc->relayed)
		relay(sc, false);
	claims_end(sc, !px->group);
	px->claims = NULL;
	free(sc);
}
