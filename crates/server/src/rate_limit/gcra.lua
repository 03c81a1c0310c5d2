-- One request against a GCRA bucket (the token bucket in its exact form), on Redis server time
-- in microseconds, so every process agrees whatever its own clock says.
--
-- KEYS[1]  the bucket: its theoretical arrival time (TAT, µs); absent means full
-- ARGV[1]  interval: µs per request (the period / n)
-- ARGV[2]  tolerance: interval × (n − 1), the burst beyond one request
--
-- Returns 0 when the request is allowed (it spends a token), else the wait in µs until it
-- would be; a refused request changes nothing.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])

local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then
  tat = now
end
local ahead = tat - now
if ahead > tolerance then
  return ahead - tolerance
end
local next_tat = tat + interval
-- The key lives until the bucket is full again (an absent bucket is a full one). '%.0f': a
-- plain number would be written as 1.7e+15 and lose its last digits.
local ttl_ms = math.max(1, math.ceil((next_tat - now) / 1000))
redis.call('SET', KEYS[1], string.format('%.0f', next_tat), 'PX', ttl_ms)
return 0
