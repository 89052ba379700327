//! The Lua scripts of the Redis broker.
//!
//! Each one runs atomically in Redis and touches only keys of one channel (one hash tag),
//! of one table, or one events stream.
//! `redis::Script` runs them by SHA and loads them again when Redis answers `NOSCRIPT`
//! (after a restart), so nothing has to be loaded up front; publishes, sent several at a
//! time, do the same in `RedisBroker::publish_many`.
//!
//! The epoch rule, applied by the history script through `ENSURE_EPOCH` and by the publish
//! script in its own cheaper way: a channel gets a new random epoch (chosen by the caller,
//! used only when needed) when its meta hash is missing, or when publications were made
//! (`o > 0`) but the history stream is gone. A new epoch restarts offsets at 0, and deletes
//! any stream left over from the previous one.

use std::sync::LazyLock;

use redis::Script;

const ENSURE_EPOCH: &str = r"
local function ensure_epoch(stream, meta, new_epoch, ttl_ms)
  local m = redis.call('hmget', meta, 'e', 'o', 's')
  local epoch = m[1]
  local top = tonumber(m[2]) or 0
  if (not epoch) or (top > 0 and redis.call('exists', stream) == 0) then
    redis.call('del', stream)
    redis.call('hset', meta, 'e', new_epoch, 'o', 0)
    redis.call('pexpire', meta, ttl_ms)
    return new_epoch, 0, 0
  end
  return epoch, top, tonumber(m[3]) or 0
end
";

/// Publish one or more publications of one channel, in order.
///
/// KEYS: stream, meta, and the idempotency key when there is one.
/// ARGV: history size (0 = no history), history ttl ms, new epoch candidate, pub/sub
/// channel, idempotency window ms (0 = none; then exactly one publication), publication
/// JSON (no offset) 1 .. n.
/// Returns `{deduplicated (0/1), "<first offset>:<epoch>"}`; the others have the offsets
/// after the first one. Each pub/sub message is `p<offset>:<epoch>:<publication JSON>`.
///
/// Kept small, because it runs for every publication (docs/benchmarks.md, "One publishing
/// connection"):
/// - one `HMGET` of the meta hash, one `XADD` per publication, one `HSET` of the new top,
///   one `PTTL`, one `PUBLISH` per publication;
/// - no `EXISTS` for the epoch rule: `XADD NOMKSTREAM` of the first publication fails when
///   the stream is gone, and only then is the epoch decided again;
/// - `MAXLEN ~`: whole nodes of the stream are trimmed (exact trimming rewrites the oldest
///   node on every publication); the size goes into the meta hash as `s`, and the history
///   script never returns more than the last `s` offsets, so reads are as if exact;
/// - the TTLs are refreshed only when the meta hash's remaining life left
///   `[ttl, ttl + ttl/32]`, to `ttl + ttl/32`: the history still lives at least `ttl`
///   after the last publication (and at most `ttl/32` longer), at one `PEXPIRE` pair per
///   channel every `ttl/32` instead of one per publication.
const PUBLISH: &str = r"
local size = tonumber(ARGV[1])
local window = tonumber(ARGV[5])
if window > 0 then
  local first = redis.call('get', KEYS[3])
  if first then
    return {1, first}
  end
end
local pubsub = ARGV[4]
local result
if size == 0 then
  for i = 6, #ARGV do
    redis.call('publish', pubsub, 'p0::' .. ARGV[i])
  end
  result = '0:'
else
  local stream, meta = KEYS[1], KEYS[2]
  local ttl = tonumber(ARGV[2])
  local m = redis.call('hmget', meta, 'e', 'o')
  local epoch = m[1]
  local top = tonumber(m[2]) or 0
  local first = top + 1
  local created = true
  if epoch then
    created = not redis.call('xadd', stream, 'NOMKSTREAM', 'MAXLEN', '~', size, first .. '-0', 'd', ARGV[6])
  end
  if created then
    if (not epoch) or top > 0 then
      redis.call('del', stream)
      epoch = ARGV[3]
      first = 1
    end
    redis.call('xadd', stream, 'MAXLEN', '~', size, first .. '-0', 'd', ARGV[6])
  end
  local offset = first
  for i = 7, #ARGV do
    offset = offset + 1
    redis.call('xadd', stream, 'MAXLEN', '~', size, offset .. '-0', 'd', ARGV[i])
  end
  redis.call('hset', meta, 'e', epoch, 'o', offset, 's', size)
  local keep = ttl + math.floor(ttl / 32)
  local left = created and -1 or redis.call('pttl', meta)
  if left < ttl or left > keep then
    redis.call('pexpire', stream, keep)
    redis.call('pexpire', meta, keep)
  end
  local position = ':' .. epoch .. ':'
  for i = 6, #ARGV do
    redis.call('publish', pubsub, 'p' .. (first + i - 6) .. position .. ARGV[i])
  end
  result = first .. ':' .. epoch
end
if window > 0 then
  redis.call('set', KEYS[3], result, 'PX', window)
end
return {0, result}
";

/// Read the position and a window of the history, atomically.
///
/// KEYS: stream, meta.
/// ARGV: new epoch candidate, ttl ms of a new epoch, since offset ('' = none), since epoch,
/// limit (-1 = all), reverse ('1' / '0').
/// Returns `{epoch, top offset, epoch matches (0/1), entries}` with entries as XRANGE
/// replies. Only the last `s` offsets (the history size the publish script wrote into the
/// meta hash) are history: the stream is trimmed by whole nodes and may hold a few more.
const HISTORY: &str = r"
local epoch, top, size = ensure_epoch(KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2]))
local since = ARGV[3]
if since ~= '' and ARGV[4] ~= epoch then
  return {epoch, top, 0, {}}
end
local limit = tonumber(ARGV[5])
if limit == 0 then
  return {epoch, top, 1, {}}
end
local floor = 0
if size > 0 and top > size then
  floor = top - size
end
local entries
if ARGV[6] == '1' then
  local hi = '+'
  if since ~= '' then
    if tonumber(since) <= 1 then
      return {epoch, top, 1, {}}
    end
    hi = '(' .. since .. '-0'
  end
  local lo = '-'
  if floor > 0 then
    lo = '(' .. floor .. '-0'
  end
  if limit > 0 then
    entries = redis.call('xrevrange', KEYS[1], hi, lo, 'COUNT', limit)
  else
    entries = redis.call('xrevrange', KEYS[1], hi, lo)
  end
else
  local after = floor
  if since ~= '' and tonumber(since) > after then
    after = tonumber(since)
  end
  local lo = '-'
  if since ~= '' or after > 0 then
    lo = '(' .. string.format('%d', after) .. '-0'
  end
  if limit > 0 then
    entries = redis.call('xrange', KEYS[1], lo, '+', 'COUNT', limit)
  else
    entries = redis.call('xrange', KEYS[1], lo, '+')
  end
end
return {epoch, top, 1, entries}
";

/// Add or refresh a presence entry.
///
/// KEYS: presence hash, expiry sorted set. ARGV: client id, info JSON, ttl ms.
/// Both keys live as long as their longest-living entry.
const PRESENCE_ADD: &str = r"
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[3])
redis.call('zadd', KEYS[2], now + ttl, ARGV[1])
redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
local keep = ttl
local current = redis.call('pttl', KEYS[1])
if current > keep then
  keep = current
end
redis.call('pexpire', KEYS[1], keep)
redis.call('pexpire', KEYS[2], keep)
return 1
";

/// Remove a presence entry. KEYS: presence hash, expiry sorted set. ARGV: client id.
const PRESENCE_REMOVE: &str = r"
redis.call('hdel', KEYS[1], ARGV[1])
redis.call('zrem', KEYS[2], ARGV[1])
return 1
";

/// Drop expired presence entries and return the rest as `HGETALL` does.
/// KEYS: presence hash, expiry sorted set.
const PRESENCE_GET: &str = r"
local t = redis.call('time')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('zrangebyscore', KEYS[2], '-inf', now)
local batch = 500
for i = 1, #expired, batch do
  local last = math.min(i + batch - 1, #expired)
  redis.call('hdel', KEYS[1], unpack(expired, i, last))
end
if #expired > 0 then
  redis.call('zremrangebyscore', KEYS[2], '-inf', now)
end
return redis.call('hgetall', KEYS[1])
";

/// Take over what a dead consumer holds, or remove it from the group when it holds
/// nothing; atomically, so two claimers never take the same entry.
///
/// KEYS: the events stream.
/// ARGV: group, claiming consumer, dead consumer, grace ms, count.
/// The caller found the dead consumer's liveness mark gone; this checks again that the
/// consumer is in the group and has been idle for the grace, then either deletes it
/// (nothing pending) or claims up to `count` of its entries.
/// Returns `{removed (0/1), {{id, {field, value, ...}, deliveries}, ...}}`.
const CLAIM_DEAD: &str = r"
local stream, group, me, dead = KEYS[1], ARGV[1], ARGV[2], ARGV[3]
local grace = tonumber(ARGV[4])
local idle = nil
for _, info in ipairs(redis.call('xinfo', 'consumers', stream, group)) do
  local name, seen = nil, nil
  for i = 1, #info, 2 do
    if info[i] == 'name' then
      name = info[i + 1]
    elseif info[i] == 'idle' then
      seen = info[i + 1]
    end
  end
  if name == dead then
    idle = seen
    break
  end
end
if idle == nil or idle < grace then
  return {0, {}}
end
local held = redis.call('xpending', stream, group, '-', '+', tonumber(ARGV[5]), dead)
if #held == 0 then
  redis.call('xgroup', 'delconsumer', stream, group, dead)
  return {1, {}}
end
local ids = {}
local deliveries = {}
for i, row in ipairs(held) do
  ids[i] = row[1]
  deliveries[row[1]] = row[4]
end
local out = {}
for _, entry in ipairs(redis.call('xclaim', stream, group, me, 0, unpack(ids))) do
  if entry and entry[2] then
    out[#out + 1] = {entry[1], entry[2], deliveries[entry[1]] + 1}
  end
end
return {0, out}
";

/// The publish script's source (loaded by `SCRIPT LOAD` after a `NOSCRIPT`).
pub(crate) const PUBLISH_SOURCE: &str = PUBLISH;
/// The publish script.
pub(crate) static PUBLISH_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(PUBLISH));
/// The history script.
pub(crate) static HISTORY_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{ENSURE_EPOCH}{HISTORY}")));
/// The presence add/refresh script.
pub(crate) static PRESENCE_ADD_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(PRESENCE_ADD));
/// The presence remove script.
pub(crate) static PRESENCE_REMOVE_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(PRESENCE_REMOVE));
/// The dead-consumer claim script.
pub(crate) static CLAIM_DEAD_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(CLAIM_DEAD));
/// The presence read script.
pub(crate) static PRESENCE_GET_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(PRESENCE_GET));
