/*
 * flow_redis_props.h - the Redis flow adapter's property rows (internal),
 * in the core table's column order plus a scope:
 *
 *   XX(ID, "name", TYPE, "default", min, max, SCOPE, "doc")
 *
 * SCOPE ADAPTER rows belong to this adapter; CORE rows are the core's
 * (the local bucket and the group), listed because the lease client reads
 * them too: in the layered table they live once, in the core's layer.
 * rg_flow_redis_opts_new() takes its defaults from here, and
 * rg_flow_redis_prop_at() hands the rows to tools and the docs generator.
 */
#ifndef RG_FLOW_REDIS_PROPS_H
#define RG_FLOW_REDIS_PROPS_H

#define RG_FLOW_REDIS_PROPS(XX)                                              \
    XX(GLOBAL_RATE, "flow.global.rate.events.per.s", INT, "0", 0,            \
       64000000000, ADAPTER,                                                 \
       "The consumer group's global rate, shared by every node through "    \
       "Redis (0: no global limit, no lease client). Once the group's "     \
       "rate key exists in Redis it wins (`railgun flow set --rate N` "     \
       "changes it); this value only seeds a group that has none.")         \
    XX(LOCAL_RATE, "flow.rate.events.per.s", INT, "0", 0, 64000000000,       \
       CORE,                                                                 \
       "This node's own limit, enforced by its token bucket on the ingest " \
       "path, checked per burst of events (0: unlimited). With a global "   \
       "rate the node enforces the lower of the two and never asks the "    \
       "group for more than this.")                                          \
    XX(BURST, "flow.burst.events", INT, "0", 0, 1000000000000, CORE,        \
       "Events the bucket may admit at once above the rate (its depth). "   \
       "0: automatic, 10 ms of the rate but at least min(rate, 32). At "    \
       "most a day of the rate.")                                            \
    XX(GROUP, "group.id", STR, "railgun", 0, 0, CORE,                        \
       "Consumer group: its nodes share one global rate (Redis keys "       \
       "under flow.redis.prefix + {group.id}).")                             \
    XX(HOST, "flow.redis.host", STR, "127.0.0.1", 0, 0, ADAPTER,             \
       "Redis server host (ignored when flow.redis.socket or "              \
       "flow.redis.sentinels is set).")                                      \
    XX(PORT, "flow.redis.port", INT, "6379", 1, 65535, ADAPTER,              \
       "Redis server TCP port.")                                             \
    XX(SOCKET, "flow.redis.socket", STR, "", 0, 0, ADAPTER,                  \
       "Unix socket of the Redis server; when set, used instead of host "   \
       "and port.")                                                          \
    XX(USER, "flow.redis.user", STR, "", 0, 0, ADAPTER,                      \
       "Redis ACL user to log in as (empty: the default user).")            \
    XX(PASSWORD, "flow.redis.password", STR, "", 0, 0, ADAPTER,              \
       "Redis password (empty: no AUTH).")                                   \
    XX(SENTINELS, "flow.redis.sentinels", STR, "", 0, 0, ADAPTER,            \
       "Redis Sentinel addresses, `host:port,host:port`: the primary's "    \
       "address is asked from them (SENTINEL get-master-addr-by-name), "    \
       "so a failover is followed without a restart. Overrides host, "      \
       "port and socket.")                                                   \
    XX(MASTER, "flow.redis.master", STR, "mymaster", 0, 0, ADAPTER,          \
       "The primary's name the sentinels monitor.")                         \
    XX(PREFIX, "flow.redis.prefix", STR, "railgun:flow:", 0, 0, ADAPTER,     \
       "Prefix of the group's Redis keys: <prefix>{<group.id>}:rate and "   \
       ":nodes.")                                                            \
    XX(TIMEOUT_MS, "flow.redis.timeout.ms", INT, "50", 1, 60000, ADAPTER,    \
       "Longest wait for a Redis connect or command (each sentinel, the "   \
       "primary); a slower answer counts as a failure.")                    \
    XX(BACKOFF_MAX_MS, "flow.redis.backoff.max.ms", INT, "2000", 1, 600000, \
       ADAPTER,                                                              \
       "Longest wait between reconnect attempts; the wait starts at "       \
       "flow.lease.ms and doubles, with jitter.")                           \
    XX(LEASE_MS, "flow.lease.ms", INT, "100", 10, 60000, ADAPTER,            \
       "How often a node leases its slice of the global rate (one Lua "     \
       "script per lease). A new global rate takes effect within one "      \
       "period.")                                                            \
    XX(LEASE_TTL_MS, "flow.lease.ttl.ms", INT, "1000", 20, 3600000, ADAPTER, \
       "How long a lease is valid, and how long Redis keeps counting a "    \
       "node that stopped leasing (a crashed node's share goes to the "     \
       "others after this, plus a period). At least 2 x flow.lease.ms.")    \
    XX(LEASE_LEAVE, "flow.lease.leave", BOOL, "true", 0, 1, ADAPTER,         \
       "Remove the node from the group's registry when it stops, so the "   \
       "others get its share at once; false leaves its entry to expire, "   \
       "as after a crash.")                                                  \
    XX(FALLBACK_RATE, "flow.fallback.rate.events.per.s", INT, "0", 0,        \
       64000000000, ADAPTER,                                                 \
       "The rate a node keeps once its lease expired with Redis "           \
       "unreachable. 0: its last fair share (the global rate over the "     \
       "live nodes it last saw); before any lease, the global rate.")       \
    XX(FALLBACK_DECAY_MS, "flow.fallback.decay.ms", INT, "1000", 0, 3600000, \
       ADAPTER,                                                              \
       "Once the lease expired, the node moves linearly from its last "     \
       "lease to the fallback rate over this long (0: at once).")           \
    XX(NODE_ID, "flow.node.id", STR, "", 0, 0, ADAPTER,                      \
       "This node's name in the group's registry (`railgun flow show`). "   \
       "Empty: host:pid:n, and `railgun run` appends @ and its metrics "    \
       "listener's address (how `railgun doctor` finds it). Characters "    \
       "other than letters, digits and `._:@-[]` become `_`.")

#endif /* RG_FLOW_REDIS_PROPS_H */
