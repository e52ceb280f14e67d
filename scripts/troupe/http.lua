-- http.lua (troupe.http): troupe.http.request/get/post over the host call host.http
-- (host/runtime/prim_http.cpp); each request is a step of the run.
local host = ...
local raise = require("troupe.errors").raise
local util = require("troupe.util")

local check_fields = util.fields{ "url", "method", "headers", "body", "timeout", "redirects",
                                  "max_bytes" }

local function http_call(req)
  check_fields(req, "troupe.http", 3)
  local ok, res = host.http(req)
  if not ok then raise(res, 3) end
  return res
end

local function http_options(url, opts, what)
  if type(url) ~= "string" then error(what .. " expects a URL (a string), got " .. type(url), 3) end
  if opts ~= nil and type(opts) ~= "table" then error(what .. ": options must be a table", 3) end
  local req = {}
  for k, v in pairs(opts or {}) do req[k] = v end
  req.url = url
  return req
end

local http = {
  --- troupe.http.request{ url =, method =, headers =, body =, timeout = } -> { status, headers, body, url }
  request = function(req)
    if type(req) ~= "table" then error("troupe.http.request expects a table { url = ..., ... }", 2) end
    return http_call(req)
  end,
  --- troupe.http.get(url [, opts]) -> response
  get = function(url, opts)
    local req = http_options(url, opts, "troupe.http.get")
    req.method = "GET"
    return http_call(req)
  end,
  --- troupe.http.post(url, body [, opts]) -> response; a table body is sent as JSON
  post = function(url, body, opts)
    local req = http_options(url, opts, "troupe.http.post")
    req.method = "POST"
    if type(body) == "table" then
      local headers, typed = {}, false
      for k, v in pairs(req.headers or {}) do
        headers[k] = v
        if type(k) == "string" and k:lower() == "content-type" then typed = true end
      end
      if not typed then headers["Content-Type"] = "application/json" end
      req.headers, body = headers, host.json_encode(body)
    end
    req.body = body
    return http_call(req)
  end,
}

return http
