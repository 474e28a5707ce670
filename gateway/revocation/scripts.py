"""The Lua scripts the gateway writes with: each change is atomic with its version and message.

Every script touches only ``{PREFIX}:…`` keys, which share one Cluster hash slot. A tool that
cannot run Lua does the same with MULTI/EXEC and a PUBLISH (see the README).
"""

from __future__ import annotations

#: KEYS: entries, expiry, version. ARGV: field, entry JSON, expires_at, channel, now.
REVOKE = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
local v = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[4],
  '{"op":"revoke","v":' .. v .. ',"t":' .. ARGV[5] .. ',"entry":' .. ARGV[2] .. '}')
return v
"""

#: KEYS: entries, expiry, version. ARGV: field, channel, now, '"kind":…,"issuer":…,"value":…'.
UNREVOKE = """
local n = redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if n == 0 then return 0 end
local v = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[2],
  '{"op":"unrevoke","v":' .. v .. ',"t":' .. ARGV[3] .. ',' .. ARGV[4] .. '}')
return v
"""

#: KEYS: entries, expiry. ARGV: now, batch size. Drops expired entries; returns how many.
PRUNE = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
if #gone > 0 then
  redis.call('HDEL', KEYS[1], unpack(gone))
  redis.call('ZREM', KEYS[2], unpack(gone))
end
return #gone
"""

#: KEYS: entries, expiry. ARGV: (field, entry JSON, expires_at) repeated. Adds the entries
#: Redis does not have (HSETNX: a newer copy in Redis wins); returns how many were added.
RESEED = """
local added = 0
for i = 1, #ARGV, 3 do
  if redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) == 1 then
    redis.call('ZADD', KEYS[2], ARGV[i + 2], ARGV[i])
    added = added + 1
  end
end
return added
"""

PRUNE_BATCH = 500
RESEED_BATCH = 500
SCAN_BATCH = 5000
