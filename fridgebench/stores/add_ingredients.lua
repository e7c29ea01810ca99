-- fridgebench redis-atomic: add ingredients to a session, atomically.
-- KEYS[1] = session key; ARGV[1] = ttl seconds; ARGV[2..n] = ingredient names.
-- Returns 1 if the session existed (and was updated, TTL refreshed to ARGV[1]), else 0.
-- Names already present are not added again (set semantics, order kept).
-- The value is re-encoded with "ingredients" always a JSON array (cjson would write an
-- empty table as {}), other fields of the object kept.
local raw = redis.call('GET', KEYS[1])
if not raw then
  return 0
end
local data = cjson.decode(raw)
local list = data['ingredients']
if type(list) ~= 'table' then
  list = {}
end
local present = {}
for _, name in ipairs(list) do
  present[name] = true
end
for i = 2, #ARGV do
  local name = ARGV[i]
  if not present[name] then
    present[name] = true
    list[#list + 1] = name
  end
end
data['ingredients'] = nil
local parts = {}
for i, name in ipairs(list) do
  parts[i] = cjson.encode(name)
end
local rest = cjson.encode(data)
local body = string.sub(rest, 1, -2)
if body ~= '{' then
  body = body .. ','
end
local value = body .. '"ingredients":[' .. table.concat(parts, ',') .. ']}'
redis.call('SET', KEYS[1], value, 'EX', ARGV[1])
return 1
