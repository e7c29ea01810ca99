-- fridgebench redis-atomic: remove ingredients from a session, atomically.
-- KEYS[1] = session key; ARGV[1..n] = ingredient names.
-- Returns 1 if the session existed (expiry unchanged: SET ... KEEPTTL), else 0.
-- The value is re-encoded with "ingredients" always a JSON array (see add_ingredients.lua).
local raw = redis.call('GET', KEYS[1])
if not raw then
  return 0
end
local data = cjson.decode(raw)
local list = data['ingredients']
if type(list) ~= 'table' then
  list = {}
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
data['ingredients'] = nil
local rest = cjson.encode(data)
local body = string.sub(rest, 1, -2)
if body ~= '{' then
  body = body .. ','
end
local value = body .. '"ingredients":[' .. table.concat(parts, ',') .. ']}'
redis.call('SET', KEYS[1], value, 'KEEPTTL')
return 1
