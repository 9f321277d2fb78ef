"""The Lua every fleet-wide limit is decided by (contract §8), written once.

Each script is put together from the same pieces: the Redis server's clock (``TIME``, so
machines with skewed clocks agree), the sliding-window log of a rate limit and the leases of a
connection pool. The workers' gate and the API's governor run one and the same script to take a
permit (``PERMIT``), so a rate-limit log and a pool's slots mean the same thing to everyone who
touches them. Times are integer microseconds (about 1.7e15 today: exact in a double). (Redis >= 5
replicates scripts by effects, so writing after ``TIME`` is allowed.)

    RATE      one rate-limit permit                 (tasks/provider/limiter.py: RateLimiter)
    LEASE     one pool slot / lease, and its renewal (PoolSemaphore, api/stream_slots.py)
    PERMIT    a permit and a pool slot, both or neither; a provider's block first
    PERMIT_IF_CURRENT  the same, for a request decided on a kept record still stored as kept
    RELEASE   a pool slot freed, announced on the pool's channel (who waits for one wakes)
"""

from __future__ import annotations

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

# A sliding-window log: one sorted-set member per grant, scored by its server time (µs). A grant
# is allowed while fewer than `limit` grants lie in (now - window, now], so any `limit + 1`
# consecutive grants span at least one full window: no burst, at any alignment.
_RATE_PIECES = """
-- µs until the log may grant one more (0: now); grants at or before now - window stop counting
local function rate_wait(key, limit, window)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count < limit then
    return 0
  end
  -- a permit frees when all but limit-1 of the counted grants have aged out: the wait is until
  -- the (count - limit)th oldest (0-based) leaves the window
  local pivot = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
  return math.max(1, tonumber(pivot[2]) + window - now)
end
local function rate_take(key, window, suffix)
  redis.call('ZADD', key, now, t[1] .. '.' .. t[2] .. '-' .. suffix)
  -- the newest grant matters for one window more; then the whole log is dead
  redis.call('PEXPIRE', key, math.ceil(window / 1000))
end
"""

# Leases in a sorted set scored by expiry time (µs). Expired leases are dropped first, so a
# crashed holder's slot frees when its lease runs out.
_LEASE_PIECES = """
-- µs until a slot frees by a lease running out (0: one is free now)
local function lease_wait(key, limit)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZCARD', key) < limit then
    return 0
  end
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return math.max(1, tonumber(first[2]) - now)
end
-- held until now + lease; the key kept while its longest lease lives, never shortening another's
local function lease_hold(key, lease, id)
  redis.call('ZADD', key, now + lease, id)
  local ttl = math.ceil(lease / 1000)
  if redis.call('PTTL', key) < ttl then
    redis.call('PEXPIRE', key, ttl)
  end
end
"""

# KEYS[1] log key; ARGV[1] limit, ARGV[2] window (µs), ARGV[3] unique member suffix.
# Returns {wait µs (0 = granted), server seconds, server microseconds}.
RATE = _NOW + _RATE_PIECES + """
local window = tonumber(ARGV[2])
local wait = rate_wait(KEYS[1], tonumber(ARGV[1]), window)
if wait == 0 then
  rate_take(KEYS[1], window, ARGV[3])
end
return {wait, t[1], t[2]}
"""

# KEYS[1] pool key; ARGV[1] limit, ARGV[2] lease (µs), ARGV[3] lease id. Returns 1 or 0.
LEASE_ACQUIRE = _NOW + _LEASE_PIECES + """
if lease_wait(KEYS[1], tonumber(ARGV[1])) > 0 then
  return 0
end
lease_hold(KEYS[1], tonumber(ARGV[2]), ARGV[3])
return 1
"""

# A holder keeping its lease (a long-lived one: the API's event streams): its expiry moved to
# now + lease, re-added if it had lapsed meanwhile (the holder is alive, so it counts).
# KEYS[1] lease key; ARGV[1] lease (µs), ARGV[2] lease id. Returns 1.
LEASE_RENEW = _NOW + _LEASE_PIECES + """
lease_hold(KEYS[1], tonumber(ARGV[1]), ARGV[2])
return 1
"""

# Microseconds until the earliest live lease expires (0 when none is held); changes nothing.
LEASE_WAIT_HINT = _NOW + """
local first = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
if #first == 0 then
  return 0
end
return tonumber(first[2]) - now
"""

# A permit for one request: the rate limit's and, when there is a pool, one of its slots, both
# taken or neither (nobody holds a slot while waiting for a permit, nor the other way round).
# KEYS[1] rate log, KEYS[2] the provider's block, then the pool's slots (when ARGV[5] > 0), then
# the permit's record (when ARGV[7] is not empty).
# ARGV[1] rate limit, ARGV[2] window µs, ARGV[3] host the request goes to ('' = any: a block of
# any host counts), ARGV[4] permit id (the log member's suffix, the lease's id), ARGV[5] pool
# limit (0 = no pool), ARGV[6] lease µs, ARGV[7] the permit's record (kept as long as the lease).
# Returns {status, rate wait µs, slot wait µs, server seconds, server µs}: status 0 granted,
# 1 blocked (the block's remaining time as the rate wait), 2 the rate limit, 3 the pool (the rate
# wait then says when the rate limit would allow one too).
# (A function of its keys and arguments, so that PERMIT_IF_CURRENT can run it after a check.)
_PERMIT_FUNCTION = _NOW + _RATE_PIECES + _LEASE_PIECES + """
local function permit(KEYS, ARGV)
local blocked = redis.call('GET', KEYS[2])
if blocked and (ARGV[3] == '' or blocked == ARGV[3] or blocked == '1' or blocked == '*') then
  local ms = redis.call('PTTL', KEYS[2])
  if ms > 0 then
    return {1, ms * 1000, 0, t[1], t[2]}
  end
end
local window, pool_limit, lease = tonumber(ARGV[2]), tonumber(ARGV[5]), tonumber(ARGV[6])
local next_key = 3
local pool_key = nil
if pool_limit > 0 then
  pool_key = KEYS[3]
  next_key = 4
end
local rate = rate_wait(KEYS[1], tonumber(ARGV[1]), window)
local slot = 0
if pool_key then
  slot = lease_wait(pool_key, pool_limit)
end
if slot > 0 then
  return {3, rate, slot, t[1], t[2]}
end
if rate > 0 then
  return {2, rate, 0, t[1], t[2]}
end
rate_take(KEYS[1], window, ARGV[4])
if pool_key then
  lease_hold(pool_key, lease, ARGV[4])
end
if ARGV[7] ~= '' then
  redis.call('SET', KEYS[next_key], ARGV[7], 'PX', math.ceil(lease / 1000))
end
return {0, 0, 0, t[1], t[2]}
end
"""
PERMIT = _PERMIT_FUNCTION + "return permit(KEYS, ARGV)\n"

# PERMIT for a request decided on a record the caller kept (the API's proxy, which keeps the
# connector it last read): the record is checked to be still the one stored, in the same round
# trip. KEYS[1] the record, then PERMIT's keys; ARGV[1] the SHA-1 of the record as kept, then
# PERMIT's arguments. Returns PERMIT's answer, or, taking nothing, {4, 0, 0, s, µs} when the
# record is gone and {5, 0, 0, s, µs, stored record} when it is not the one kept.
PERMIT_IF_CURRENT = _PERMIT_FUNCTION + """
local stored = redis.call('GET', KEYS[1])
if not stored then
  return {4, 0, 0, t[1], t[2]}
end
if redis.sha1hex(stored) ~= ARGV[1] then
  return {5, 0, 0, t[1], t[2], stored}
end
return permit({unpack(KEYS, 2)}, {unpack(ARGV, 2)})
"""

# KEYS[1] the pool's slots, KEYS[2] (optional) the permit's record; ARGV[1] the lease id, ARGV[2]
# the pool's channel. The slot is freed and, when it was held, the pool's channel told so.
# Returns 1, or 0 when a record was named and was gone (released already, or lapsed).
RELEASE = """
local held = 1
if KEYS[2] then
  held = redis.call('DEL', KEYS[2])
end
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  redis.call('PUBLISH', ARGV[2], ARGV[1])
end
return held
"""
