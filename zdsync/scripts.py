"""The Lua scripts zdsync runs in Redis: each one command, so atomic and one round trip."""

WRITE = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then
  return -1
end
if ARGV[2] ~= '' and string.match(redis.call('info', 'server'), 'run_id:(%w+)') ~= ARGV[2] then
  return -2
end
if ARGV[3] ~= '' and redis.call('hget', KEYS[2], '@store') ~= ARGV[3] then
  return -3
end
local stored = 0
local n = tonumber(ARGV[4])
for i = 5, 4 + 4 * n, 4 do
  local id, gts, uat, json = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], ARGV[i + 3]
  local newer = true
  local old = redis.call('hget', KEYS[2], id)
  if old then
    local ok, prior = pcall(cjson.decode, old)
    local ogts, ouat
    if ok and type(prior) == 'table' and type(prior.ticket) == 'table' then
      ogts, ouat = prior.ticket.generated_timestamp, prior.ticket.updated_at
    elseif ok and type(prior) == 'table' and prior[1] ~= nil then
      ogts, ouat = prior[8], prior[7]
    else
      ok = false
    end
    if ok then
      ogts = tonumber(ogts) or 0
      if type(ouat) ~= 'string' then ouat = '' end
      if gts > 0 and ogts > 0 then
        newer = gts > ogts or (gts == ogts and uat >= ouat)
      else
        newer = uat >= ouat
      end
    end
  end
  if newer then
    redis.call('hset', KEYS[2], id, json)
    stored = stored + 1
  end
end
for _, op in ipairs(cjson.decode(ARGV[5 + 4 * n])) do
  if op[1] == 'zremif' then
    local score = redis.call('zscore', op[2], op[3])
    if score and tonumber(score) == tonumber(op[4]) then
      redis.call('zrem', op[2], op[3])
    end
  else
    redis.call(unpack(op))
  end
end
return stored
"""
"""Every write of the sync state: refused (-1) unless the lease token still holds, (-2)
when run on another Redis process than the one the writer read from, or (-3) when the
records no longer carry the store identity the writer read (Redis lost them); stores each
record only if its snapshot is not older than the stored one (either form of record:
``packing``); then runs the ops
(``zremif`` removes a member only if its score is unchanged)."""

ENQUEUE_WEBHOOK = """
if ARGV[3] ~= '' then
  if not redis.call('set', KEYS[2], '1', 'NX', 'EX', ARGV[4]) then
    return 0
  end
end
redis.call('zadd', KEYS[1], ARGV[2], ARGV[1])
return 1
"""
"""Remember a webhook event id (duplicates return 0) and queue its ticket id."""

DEQUEUE = """
local removed = 0
for i = 1, #ARGV, 2 do
  local score = redis.call('zscore', KEYS[1], ARGV[i])
  if score and tonumber(score) == tonumber(ARGV[i + 1]) then
    removed = removed + redis.call('zrem', KEYS[1], ARGV[i])
  end
end
return removed
"""
"""Remove sorted-set members whose score is still the one read."""

UNMAP = """
if redis.call('hdel', KEYS[1], ARGV[1]) == 1 then
  redis.call('zadd', KEYS[2], ARGV[2], ARGV[1])
  if redis.call('hdel', KEYS[1], '@held') == 1 then
    redis.call('zadd', KEYS[2], ARGV[2], ARGV[3])
  end
  return 1
end
return 0
"""
"""Forget a mapping and list the agent for re-planning; if that ends a hold of assignees,
list every agent (ARGV[3]) for it too."""

SET_MAPPINGS = """
local identity = redis.call('get', KEYS[3])
if identity and redis.call('hexists', KEYS[1], '@store') == 0 then
  redis.call('hset', KEYS[1], '@store', identity)
end
redis.call('hset', KEYS[1], unpack(ARGV, 3))
for i = 3, #ARGV, 2 do
  redis.call('zadd', KEYS[2], ARGV[1], ARGV[i])
end
if redis.call('hdel', KEYS[1], '@held') == 1 then
  redis.call('zadd', KEYS[2], ARGV[1], ARGV[2])
end
return 1
"""
"""Store mappings and list their agents for re-planning; if that ends a hold of assignees,
list every agent (ARGV[2]) for it too. ARGV: time, the every-agent marker, then pairs.
Mappings stored by hand after ``users`` was lost restore it: the store's identity
(KEYS[3]) marks it again, so no pass holds assignees for their loss any more."""

RENEW_LEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
"""Extend the lease only for its holder."""

RELEASE_LEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""
"""Delete the lease only for its holder."""
