-- fridgebench redis-atomic: shared prelude, prepended to each script when it is loaded
-- (Redis scripts cannot import one another).
-- load_session(key): the decoded session object and its ingredient list, or nil when missing.
-- store_value(data, parts): the JSON text with "ingredients" always a JSON array built from
-- already-encoded names (cjson would write an empty table as {}); other fields are kept.
local function load_session(key)
  local raw = redis.call('GET', key)
  if not raw then
    return nil
  end
  local data = cjson.decode(raw)
  local list = data['ingredients']
  if type(list) ~= 'table' then
    list = {}
  end
  data['ingredients'] = nil
  return data, list
end

local function store_value(data, parts)
  local body = string.sub(cjson.encode(data), 1, -2)
  if body ~= '{' then
    body = body .. ','
  end
  return body .. '"ingredients":[' .. table.concat(parts, ',') .. ']}'
end

