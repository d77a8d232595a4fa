/*
 * The sections of config files with a struct of their own and checks of
 * their own: "admin" (both programs) and "cluster" (mgrokd).
 */
#include "config.h"
#include "config_walk.h"

#include <stddef.h>
#include <string.h>

#include "admin.h"  /* mgrok_admin_available */
#include "claims.h" /* mgrok_claims_available */
#include "defaults.h"

/* The admin section: the same keys in both files, at the offsets of
 * struct mgrok_admin_conf (conf_take_admin walks the section itself). */
#define A(f) offsetof(struct mgrok_admin_conf, f), NULL
static const struct field admin_fields[] = {
        {"listen", conf_take_hostport, A(listen)},
        {"token", conf_take_string, A(token)},
        {"token_file", conf_take_string, A(token_file)},
        {"token_env", conf_take_string, A(token_env)},
        FIELDS_END,
};
#undef A

int conf_take_admin(const struct ctx *x, const char *key, json_t *v, void *dst)
{
	struct mgrok_admin_conf *a = dst;
	if (!json_is_object(v))
		return conf_wrong_type(x, key, "an object", v);
	a->given = true;
	return conf_walk(x, key, v, admin_fields, a);
}

#define K(f) offsetof(struct mgrok_cluster_conf, f), NULL
static const struct field cluster_fields[] = {
        {"redis", conf_take_string, K(redis)},
        {"node", conf_take_string, K(node)},
        {"lease", conf_take_seconds, K(lease)},
        {"secret", conf_take_string, K(secret)},
        {"secret_file", conf_take_string, K(secret_file)},
        {"address", conf_take_hostport, K(address)},
        FIELDS_END,
};
#undef K

int conf_take_cluster(const struct ctx *x, const char *key, json_t *v, void *dst)
{
	struct mgrok_cluster_conf *c = dst;
	if (!json_is_object(v))
		return conf_wrong_type(x, key, "an object", v);
	c->given = true;
	return conf_walk(x, key, v, cluster_fields, c);
}

int conf_admin_check(const struct ctx *x, const struct mgrok_admin_conf *a)
{
	if (!a->given)
		return 0;
	if (!mgrok_admin_available)
		return conf_bad(x, "admin",
		                "this build has no admin endpoint (configure found no "
		                "http-parser)");
	if (!a->listen)
		return conf_bad(x, "admin.listen",
		                "required: the address to serve the endpoint on");
	if (!!a->token + !!a->token_file + !!a->token_env > 1)
		return conf_bad(x, a->token_env ? "admin.token_env" : "admin.token_file",
		                "give one of token, token_file and token_env");
	return 0;
}

/* A node's name goes into claim values ("OWNER|NODE ..."): a name, then. */
int conf_cluster_check(const struct ctx *x, const struct mgrok_cluster_conf *c, const char *listen)
{
	if (!c->given)
		return 0;
	if (!mgrok_claims_available)
		return conf_bad(x, "cluster",
		                "this build has no cluster support (configure found no hiredis)");
	if (!c->redis)
		return conf_bad(x, "cluster.redis",
		                "required: Redis's \"host:port\" or \"unix:/path\"");
	if (strncmp(c->redis, "unix:/", 6) != 0 && mgrok_hostport_problem(c->redis))
		return conf_bad(x, "cluster.redis", "expected \"host:port\" or \"unix:/path\"");
	if (c->node && !mgrok_name_valid(c->node, strlen(c->node)))
		return conf_bad(x, "cluster.node", "expected a name: " MGROK_NAME_RULE);
	if (c->lease < MGROK_CLUSTER_LEASE_MIN)
		return conf_bad(x, "cluster.lease", "must be at least %g s",
		                MGROK_CLUSTER_LEASE_MIN);
	if (!c->secret == !c->secret_file)
		return conf_bad(x, c->secret ? "cluster.secret_file" : "cluster.secret",
		                "give one of secret and secret_file: the nodes' shared secret");
	if (!c->address && (!strncmp(listen, "0.0.0.0:", 8) || !strncmp(listen, "[::]:", 5)))
		return conf_bad(x, "cluster.address",
		                "required when listen is a wildcard address: where the other "
		                "nodes reach this one");
	return 0;
}
