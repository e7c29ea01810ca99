-- fridgebench redis-atomic: remove ingredients from a session, atomically (after session_json.lua).
-- KEYS[1] = session key; ARGV[1..n] = ingredient names.
-- Returns 1 if the session existed (expiry unchanged: SET ... KEEPTTL), else 0.
local data, list = load_session(KEYS[1])
if not data then
  return 0
end
local drop = {}
for i = 1, #ARGV do
  drop[ARGV[i]] = true
end
local parts = {}
for _, name in ipairs(list) do
  if not drop[name] then
    parts[#parts + 1] = cjson.encode(name)
  end
end
redis.call('SET', KEYS[1], store_value(data, parts), 'KEEPTTL')
return 1
