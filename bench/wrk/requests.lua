-- wrk script of scripts/bench-collector.sh: cycles through prepared requests, one per line of the
-- file given after `--` ("PATH<TAB>BEARER-TOKEN-or-minus<TAB>BODY"; netmedic-loadgen
-- wrk-requests writes it), so the collector and VictoriaMetrics get the same load generator with
-- one device (one heartbeat or one sample) per request. done() prints one machine-readable line.

local requests = {}
local pos = 1

function init(args)
  local path = args[1]
  local f = assert(io.open(path, "r"))
  for line in f:lines() do
    local p, token, body = line:match("^([^\t]*)\t([^\t]*)\t(.*)$")
    if p then
      local headers = {}
      if token ~= "-" then
        headers["Authorization"] = "Bearer " .. token
        headers["Content-Type"] = "application/json"
      else
        headers["Content-Type"] = "text/plain"
      end
      requests[#requests + 1] = wrk.format("POST", p, headers, body)
    end
  end
  f:close()
  assert(#requests > 0, "no requests in " .. path)
  -- Threads start at different places so that they do not send the same device in step.
  math.randomseed(os.time() + #tostring({}))
  pos = math.random(#requests)
end

function request()
  local r = requests[pos]
  pos = pos % #requests + 1
  return r
end

function done(summary, latency, requests)
  local e = summary.errors
  local secs = summary.duration / 1e6
  io.write(string.format(
    "WRK requests=%d rps=%.0f p50_ms=%.2f p99_ms=%.2f status_errors=%d socket_errors=%d\n",
    summary.requests, summary.requests / secs, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, e.status, e.connect + e.read + e.write + e.timeout))
end
