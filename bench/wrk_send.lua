-- wrk's script for bench/bench_sync.py --sender wrk: sends each pre-built, signed request
-- in the file named by its argument (NUL-separated) once, over wrk's connections, then
-- stops. wrk itself runs for its whole -d, whatever the script does: the thread prints
-- ELAPSED (microseconds from its first request to its last answer) and the bench then
-- sends wrk SIGINT, on which it prints its summary: RESULT requests, p50 and p99 latency in
-- microseconds, answers other than 2xx/3xx. wrk is built on LuaJIT: the clock is libc's.
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clock, bench_timespec *now);
]]
local function micros()
  local now = ffi.new("bench_timespec")
  ffi.C.clock_gettime(1, now)  -- CLOCK_MONOTONIC
  return tonumber(now.tv_sec) * 1000000 + tonumber(now.tv_nsec) / 1000
end

local requests = {}
local started = nil
local index = 0
local answered = 0

function init(args)
  local file = assert(io.open(args[1], "rb"))
  local data = file:read("*a")
  file:close()
  for request in data:gmatch("([^%z]+)%z") do
    requests[#requests + 1] = request
  end
end

function request()
  if started == nil then started = micros() end
  index = index + 1
  if index > #requests then
    return requests[#requests]  -- the last again, after the end (a duplicate: answered, not stored twice)
  end
  return requests[index]
end

function response(status, headers, body)
  answered = answered + 1
  if answered == #requests then
    io.write(string.format("ELAPSED %d\n", micros() - started))
    io.flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests_)
  io.write(string.format("RESULT %d %d %d %d\n", summary.requests,
    latency:percentile(50), latency:percentile(99), summary.errors.status))
  io.write(string.format("LATENCY p90 %d p99.9 %d max %d us\n", latency:percentile(90),
    latency:percentile(99.9), latency.max))
end
