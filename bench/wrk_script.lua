-- One wrk scenario, configured by bench/gateway.py through globals it prepends to
-- this file: METHOD, PATH, BODY (templates), HEADERS, USERS, TOKENS, RUN.
-- Templates may contain {n} (a request number unique in the whole run) and {user}
-- (a user drawn at random from USERS). When TOKENS is not empty, the request carries
-- the bearer token of the same index as the user (each user calls as themselves).
-- done() prints one machine-readable line.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  counter = 0
  math.randomseed(tid * 7919 + os.time())
end

local function fill(template, n, user)
  local out = template:gsub("{n}", n)
  out = out:gsub("{user}", user)
  return out
end

function request()
  counter = counter + 1
  local n = RUN .. "-" .. tid .. "-" .. counter
  local index = math.random(#USERS)
  local user = USERS[index]
  local body = nil
  if BODY ~= "" then
    body = fill(BODY, n, user)
  end
  local headers = HEADERS
  if #TOKENS > 0 then
    headers = {}
    for k, v in pairs(HEADERS) do headers[k] = v end
    headers["authorization"] = "Bearer " .. TOKENS[index]
  end
  return wrk.format(METHOD, fill(PATH, n, user), headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
