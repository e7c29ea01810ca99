-- fridgebench redis-atomic: add ingredients to a session, atomically (after session_json.lua).
-- KEYS[1] = session key; ARGV[1] = ttl seconds; ARGV[2..n] = ingredient names.
-- Returns 1 if the session existed (and was updated, TTL refreshed to ARGV[1]), else 0.
-- Names already present are not added again (set semantics, order kept).
local data, list = load_session(KEYS[1])
if not data then
  return 0
end
local present = {}
local parts = {}
for i, name in ipairs(list) do
  present[name] = true
  parts[i] = cjson.encode(name)
end
for i = 2, #ARGV do
  local name = ARGV[i]
  if not present[name] then
    present[name] = true
    parts[#parts + 1] = cjson.encode(name)
  end
end
redis.call('SET', KEYS[1], store_value(data, parts), 'EX', ARGV[1])
return 1
