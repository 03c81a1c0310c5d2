-- The operations of `RedisQueue` on one pool, each run atomically by Redis (one script, so one
-- EVALSHA cached per connection). `redis_queue.rs` documents the key layout and the semantics.
--
-- KEYS (all of one pool, sharing the `{pool}` hash tag):
--   1 stream    the pool's stream; consumer group `workers`; an entry is {task = <id>}, added
--               when the task is leased (so the group's PEL counts its deliveries)
--   2 tasks     hash id -> JSON meta {e = entry id or false, p = deliveries of earlier entries,
--               k = dedup key or "", a = attempt of the current or last lease, c = its consumer,
--               r = priority rank: 0 high, 1 normal, 2 low; absent (older tasks) is normal}
--   3 payloads  hash id -> payload (JSON text, opaque here)
--   4 dedup     hash dedup key -> id of the pending task holding it
--   5 leases    zset id -> lease expiry (ms, Redis server time): tasks leased now
--   6 expired   zset id -> rank * SPAN + expiry: leases that ran out; the entries stay in the
--               group's PEL and are claimed again (XCLAIM, which counts the delivery)
--   7 delayed   zset id -> due time (ms): tasks not yet in the stream
--   8 dead      the dead-letter stream
--   9 conf      hash: `limit`
--  10 counts    hash: `acked`, `redelivered`, `ready_at` (the time of the last task made ready)
--  11 wake      list of at most one token: BLPOP here is how idle consumers wait
--  12 ops       zset op id -> time: ack/nack/enqueue calls already applied, so that a call
--               retried after a lost reply is not applied twice (kept OPS_MEMORY_MS)
--  13 ready     zset id -> rank * SPAN + the time it was made ready: deliverable tasks not in
--               the stream; the lowest score goes first (by priority, then first come)
-- ARGV[1] = operation, ARGV[2] = max attempts (0: unlimited), then the operation's arguments.

local K_STREAM, K_TASKS, K_PAYLOADS, K_DEDUP, K_LEASES, K_EXPIRED = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local K_DELAYED, K_DEAD, K_CONF, K_COUNTS, K_WAKE, K_OPS = KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local K_READY = KEYS[13]
local GROUP = 'workers'
-- Scores of `ready` and `expired` are rank * SPAN + a time in ms: every time before the year
-- 2286 is below SPAN, and 3 * SPAN is exact in a double, so priority orders first, then time.
local SPAN = 10000000000000
local OPS_MEMORY_MS = 120000
local OP = ARGV[1]
local MAX = tonumber(ARGV[2])
local time = redis.call('TIME')
local NOW = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)

local function meta(id)
  local m = redis.call('HGET', K_TASKS, id)
  if m then return cjson.decode(m) end
  return nil
end

local function save(id, m)
  redis.call('HSET', K_TASKS, id, cjson.encode(m))
end

-- One token for one waiting consumer; a consumer that takes a task while more are deliverable
-- passes it on (see `take`).
local function wake()
  redis.call('LPUSH', K_WAKE, '1')
  redis.call('LTRIM', K_WAKE, 0, 0)
end

local function applied(op)
  return redis.call('ZSCORE', K_OPS, op) ~= false
end

local function remember(op)
  redis.call('ZADD', K_OPS, NOW, op)
  redis.call('ZREMRANGEBYSCORE', K_OPS, '-inf', NOW - OPS_MEMORY_MS)
end

local function rank(m)
  return m.r or 1
end

-- The task is deliverable now: it waits in `ready` behind the tasks of its priority that were
-- deliverable before it. Its time is NOW, or one ms past the last task made ready if that is
-- later, so tasks made ready in one ms keep their order (as stream entry ids do).
local function make_ready(id, m)
  save(id, m)
  local last = tonumber(redis.call('HGET', K_COUNTS, 'ready_at') or '0')
  local at = math.max(NOW, last + 1)
  redis.call('HSET', K_COUNTS, 'ready_at', at)
  redis.call('ZADD', K_READY, rank(m) * SPAN + at, id)
end

local function drop_entry(m)
  if m.e then
    redis.call('XACK', K_STREAM, GROUP, m.e)
    redis.call('XDEL', K_STREAM, m.e)
    m.e = false
  end
end

local function forget(id, m)
  redis.call('ZREM', K_READY, id)
  redis.call('HDEL', K_TASKS, id)
  redis.call('HDEL', K_PAYLOADS, id)
  if m.k ~= '' and redis.call('HGET', K_DEDUP, m.k) == id then
    redis.call('HDEL', K_DEDUP, m.k)
  end
end

local function bury(id, m, reason)
  drop_entry(m)
  redis.call('XADD', K_DEAD, '*', 'task', id, 'payload', redis.call('HGET', K_PAYLOADS, id) or 'null',
    'attempts', m.a, 'reason', reason, 'consumer', m.c, 'dead_at', NOW)
  forget(id, m)
end

-- Leases that ran out: dead letters after their last attempt, else deliverable again.
local function reap()
  local due = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', NOW, 'WITHSCORES')
  for i = 1, #due, 2 do
    local id = due[i]
    redis.call('ZREM', K_LEASES, id)
    local m = meta(id)
    if m then
      if MAX > 0 and m.a >= MAX then
        bury(id, m, 'lease_expired')
      else
        redis.call('ZADD', K_EXPIRED, rank(m) * SPAN + tonumber(due[i + 1]), id)
      end
    end
  end
  return #due / 2
end

-- Delayed tasks whose time has come are made ready, in the order of their due times.
local function promote()
  local due = redis.call('ZRANGEBYSCORE', K_DELAYED, '-inf', NOW)
  for _, id in ipairs(due) do
    redis.call('ZREM', K_DELAYED, id)
    local m = meta(id)
    if m then make_ready(id, m) end
  end
end

-- The lease check of ack, nack and extend: the task's current lease, unexpired, is this one.
local function held(id, consumer, attempt)
  if not redis.call('ZSCORE', K_LEASES, id) then return nil end
  local m = meta(id)
  if m and m.a == tonumber(attempt) and m.c == consumer then return m end
  return nil
end

local function limit()
  return tonumber(redis.call('HGET', K_CONF, 'limit') or '-1')
end

-- How long until something could become deliverable without a wake-up: a lease runs out or
-- (if the limit leaves room) a delayed task falls due. -1: nothing is scheduled.
local function next_change(room)
  local best = -1
  local lease = redis.call('ZRANGE', K_LEASES, 0, 0, 'WITHSCORES')
  if lease[2] then best = tonumber(lease[2]) end
  if room then
    local delayed = redis.call('ZRANGE', K_DELAYED, 0, 0, 'WITHSCORES')
    if delayed[2] and (best < 0 or tonumber(delayed[2]) < best) then best = tonumber(delayed[2]) end
  end
  if best < 0 then return -1 end
  return math.max(best - NOW, 1)
end

-- The id of the oldest entry no consumer has read yet, or nil. Entries are added as they are
-- read, so only a stream written before tasks had priorities has unread ones.
local function next_unread()
  if redis.call('EXISTS', K_STREAM) == 0 then return nil end
  local last = '0-0'
  for _, group in ipairs(redis.call('XINFO', 'GROUPS', K_STREAM)) do
    local name, delivered
    for i = 1, #group, 2 do
      if group[i] == 'name' then name = group[i + 1] end
      if group[i] == 'last-delivered-id' then delivered = group[i + 1] end
    end
    if name == GROUP then last = delivered end
  end
  local entry = redis.call('XRANGE', K_STREAM, '(' .. last, '+', 'COUNT', 1)[1]
  if entry then return entry[1] end
  return nil
end

local function take(consumer, visibility)
  reap()
  promote()
  local cap = limit()
  local leased = redis.call('ZCARD', K_LEASES)
  if cap >= 0 and leased >= cap then return {'none', tostring(next_change(false))} end
  -- Unread entries of a stream written before priorities go first, in stream order. Then the
  -- most urgent priority, and within it whatever became deliverable first: an expired lease
  -- (at its expiry) or a ready task (since it became deliverable).
  local unread = next_unread()
  local expired = redis.call('ZRANGE', K_EXPIRED, 0, 0, 'WITHSCORES')
  local ready = redis.call('ZRANGE', K_READY, 0, 0, 'WITHSCORES')
  local id, m
  -- Reads the oldest unread entry for `consumer`: its task's id and meta (nil for a stray
  -- entry, which is dropped: unreachable while the keys are only written by this script).
  local function read_one()
    local entry = redis.call('XREADGROUP', 'GROUP', GROUP, consumer, 'COUNT', 1, 'STREAMS', K_STREAM, '>')[1][2][1]
    local found = meta(entry[2][2])
    if found then
      found.e = entry[1]
    else
      redis.call('XACK', K_STREAM, GROUP, entry[1])
      redis.call('XDEL', K_STREAM, entry[1])
    end
    return entry[2][2], found
  end
  if unread then
    id, m = read_one()
    if not m then return {'none', '1'} end
  elseif expired[1] and (not ready[1] or tonumber(expired[2]) <= tonumber(ready[2])) then
    id = expired[1]
    redis.call('ZREM', K_EXPIRED, id)
    m = meta(id)
    if not m then return {'none', '1'} end
    redis.call('XCLAIM', K_STREAM, GROUP, consumer, 0, m.e)
  elseif ready[1] then
    redis.call('ZREM', K_READY, ready[1])
    if redis.call('EXISTS', K_STREAM) == 0 then
      redis.call('XGROUP', 'CREATE', K_STREAM, GROUP, '0', 'MKSTREAM')
    end
    redis.call('XADD', K_STREAM, '*', 'task', ready[1])
    id, m = read_one()
    if not m then return {'none', '1'} end
  else
    return {'none', tostring(next_change(true))}
  end
  -- The attempt is the deliveries of this entry (counted by the group) plus those of the
  -- entries the task had before a nack moved it to the end of the stream.
  local deliveries = redis.call('XPENDING', K_STREAM, GROUP, m.e, m.e, 1)[1][4]
  m.a = m.p + deliveries
  m.c = consumer
  save(id, m)
  redis.call('ZADD', K_LEASES, NOW + tonumber(visibility), id)
  if m.a > 1 then redis.call('HINCRBY', K_COUNTS, 'redelivered', 1) end
  local waiting = redis.call('ZCARD', K_READY) + redis.call('XLEN', K_STREAM) - leased - 1
  if waiting > 0 and (cap < 0 or leased + 1 < cap) then wake() end
  return {'task', id, redis.call('HGET', K_PAYLOADS, id), tostring(m.a), tostring(visibility)}
end

if OP == 'enqueue' then
  -- ARGV: id, payload, dedup key or "", mode (now | after | at), ms, priority rank (0 high,
  -- 1 normal, 2 low)
  local id, dedup, mode = ARGV[3], ARGV[5], ARGV[6]
  reap()
  if applied(id) then return id end
  if dedup ~= '' then
    local holder = redis.call('HGET', K_DEDUP, dedup)
    if holder then return holder end
    redis.call('HSET', K_DEDUP, dedup, id)
  end
  local due = NOW
  if mode == 'after' then due = NOW + tonumber(ARGV[7]) elseif mode == 'at' then due = tonumber(ARGV[7]) end
  redis.call('HSET', K_PAYLOADS, id, ARGV[4])
  local m = {e = false, p = 0, k = dedup, a = 0, c = '', r = tonumber(ARGV[8] or '1')}
  if due > NOW then
    save(id, m)
    redis.call('ZADD', K_DELAYED, due, id)
  else
    make_ready(id, m)
    wake()
  end
  remember(id)
  return id
elseif OP == 'take' then
  -- ARGV: consumer, visibility ms
  return take(ARGV[3], ARGV[4])
elseif OP == 'ack' then
  -- ARGV: id, consumer, attempt, op id
  local id = ARGV[3]
  reap()
  if applied(ARGV[6]) then return 1 end
  local m = held(id, ARGV[4], ARGV[5])
  if not m then return 0 end
  redis.call('ZREM', K_LEASES, id)
  drop_entry(m)
  forget(id, m)
  redis.call('HINCRBY', K_COUNTS, 'acked', 1)
  remember(ARGV[6])
  if limit() >= 0 then wake() end
  return 1
elseif OP == 'nack' then
  -- ARGV: id, consumer, attempt, op id, retry after ms (0: at once)
  local id = ARGV[3]
  reap()
  if applied(ARGV[6]) then return 1 end
  local m = held(id, ARGV[4], ARGV[5])
  if not m then return 0 end
  redis.call('ZREM', K_LEASES, id)
  remember(ARGV[6])
  if MAX > 0 and m.a >= MAX then
    bury(id, m, 'nacked')
    return 1
  end
  drop_entry(m)
  m.p = m.a
  local retry = tonumber(ARGV[7])
  if retry > 0 then
    save(id, m)
    redis.call('ZADD', K_DELAYED, NOW + retry, id)
  else
    make_ready(id, m)
  end
  wake()
  return 1
elseif OP == 'extend' then
  -- ARGV: id, consumer, attempt, visibility ms
  local id = ARGV[3]
  reap()
  if not held(id, ARGV[4], ARGV[5]) then return 0 end
  redis.call('ZADD', K_LEASES, 'XX', NOW + tonumber(ARGV[6]), id)
  return 1
elseif OP == 'limit' then
  -- ARGV: limit (-1: none)
  if tonumber(ARGV[3]) < 0 then
    redis.call('HDEL', K_CONF, 'limit')
  else
    redis.call('HSET', K_CONF, 'limit', ARGV[3])
  end
  wake()
  return 1
elseif OP == 'stats' then
  reap()
  promote()
  local leased = redis.call('ZCARD', K_LEASES)
  return {redis.call('ZCARD', K_READY) + redis.call('XLEN', K_STREAM) - leased,
    redis.call('ZCARD', K_DELAYED), leased,
    redis.call('XLEN', K_DEAD), limit(), tonumber(redis.call('HGET', K_COUNTS, 'acked') or '0'),
    tonumber(redis.call('HGET', K_COUNTS, 'redelivered') or '0')}
elseif OP == 'dead' then
  return redis.call('XRANGE', K_DEAD, '-', '+')
elseif OP == 'requeue_expired' then
  local n = reap()
  if n > 0 then wake() end
  return n
end
return redis.error_reply('unknown queue operation ' .. tostring(OP))
