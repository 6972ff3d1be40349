-- wrk -t1 -s bench/write.lua http://127.0.0.1:PORT/?gpio/led
-- POST /?gpio/led with the body 0, then 1, then 0...: on one wrk thread the requests
-- alternate, so (almost) every write changes the output and takes the whole path of a
-- change: the board, the audit line, the event for subscribers. Both requests are
-- formatted once, in init (wrk.format adds Host and Content-Length; wrk.host is not
-- set yet while this file loads).
local writes
local turn = 0

init = function(args)
  writes = { wrk.format("POST", nil, nil, "0"), wrk.format("POST", nil, nil, "1") }
end

request = function()
  turn = 1 - turn
  return writes[turn + 1]
end
