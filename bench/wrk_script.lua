-- One wrk scenario, configured by bench/gateway.py through environment-free globals it
-- prepends to this file: METHOD, PATH, BODY (templates), HEADERS, USERS, RUN.
-- Templates may contain {n} (a request number unique in the whole run) and {user}
-- (a user drawn at random from USERS). done() prints one machine-readable line.

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
  local user = USERS[math.random(#USERS)]
  local body = nil
  if BODY ~= "" then
    body = fill(BODY, n, user)
  end
  return wrk.format(METHOD, fill(PATH, n, user), HEADERS, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"non2xx":%d,"connect":%d,"read":%d,"write":%d,' ..
    '"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
