-- post_message.lua: wrk script for `make bench` (scripts/bench.sh).
--
-- Every request is POST /v1/messages with a realistic message of about 2 KB
-- (two recipients, text and HTML bodies, a custom header, tags, metadata).
-- The API key comes from the environment variable MAILGATE_BENCH_TOKEN or
-- from the first script argument:
--
--   wrk -t2 -c64 -d20s --latency -s bench/post_message.lua \
--       http://127.0.0.1:8089/v1/messages -- mg_TOKEN
--
-- Responses other than 202 are counted per thread; done() prints the total
-- as "non-202 responses: N" and the first few status codes seen, so a
-- benchmark that measured errors instead of accepted messages shows it.

local threads = {}

-- setup runs in the main Lua state once per thread: keep the threads so
-- done() can read their counters.
function setup(thread)
  table.insert(threads, thread)
end

-- paragraph returns n sentences of plain ASCII text (no JSON escaping needed).
local function paragraph(n)
  local sentence = "Thank you for your order; we are packing it now and will "
    .. "send tracking details as soon as the parcel leaves our warehouse. "
  return string.rep(sentence, n)
end

local function message_body()
  return '{'
    .. '"from":"Shop <orders@example.com>",'
    .. '"to":["ann@example.org","Bob <bob@example.net>"],'
    .. '"reply_to":"support@example.com",'
    .. '"subject":"Your order #1234 has been received",'
    .. '"text":"Hello,\\n\\n' .. paragraph(6) .. '\\n\\nShop",'
    .. '"html":"<p>Hello,</p><p>' .. paragraph(6) .. '</p><p>Shop</p>",'
    .. '"headers":{"X-Order":"1234"},'
    .. '"tags":["order","confirmation"],'
    .. '"metadata":{"order_id":"1234","customer_id":"c-5678"}'
    .. '}'
end

-- init runs in each thread's own Lua state.
function init(args)
  local token = os.getenv("MAILGATE_BENCH_TOKEN")
  if args and args[1] and args[1] ~= "" then
    token = args[1]
  end
  if not token or token == "" then
    error("set MAILGATE_BENCH_TOKEN or pass the API key after --")
  end
  non202 = 0
  codes = ""
  wrk.method = "POST"
  wrk.body = message_body()
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json"
end

function response(status, headers, body)
  if status ~= 202 then
    non202 = non202 + 1
    if #codes < 60 then
      codes = codes .. status .. " "
    end
  end
end

function done(summary, latency, requests)
  local total, codes = 0, ""
  for _, thread in ipairs(threads) do
    total = total + (thread:get("non202") or 0)
    codes = codes .. (thread:get("codes") or "")
  end
  io.write(string.format("non-202 responses: %d\n", total))
  if total > 0 then
    io.write(string.format("first non-202 status codes: %s\n", codes))
  end
end
