// prim_http.cpp: host.http — an HTTP request from a workflow (troupe.http), as a recorded step.
//
// The transfer runs on the host's event loop like a provider's, so a waiting request suspends
// only its branch. http and https only (the loop refuses other schemes); redirects are followed
// here, a bounded number of times, so every hop is visible in the step. Every hop carries the
// destination policy (config `http:`, loop/http_policy.h), which the loop checks on the host
// name and on each address connected to; a hop to another origin drops the headers that may
// hold credentials, and a hop from https to http is refused (loop/http_redirect.h). A refusal
// fails the step like a transport error. Header values are never journaled (they may carry
// tokens); the step keeps the method, the URL, the status and sizes.
#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/text.h"
#include "loop/event_loop.h"
#include "loop/http_redirect.h"
#include "runtime/json_lua.h"
#include "runtime/primitives.h"
#include "runtime/runtime_internal.h"
#include "troupe/status_names.h"

namespace troupe::rt {
namespace {

struct HttpOptions {
  HttpRequest request;
  int max_redirects = 5;
  size_t max_bytes = 16u << 20;
};

// One request of a workflow, across its redirects.
struct HttpExchange {
  HttpOptions options;
  int redirects = 0;
  int status = 0;
  Headers headers;
  std::string body;
  bool too_large = false;
  std::vector<std::string> hops;  // URLs redirected from
};

bool is_redirect(int status) {
  return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

// Resolves a Location header against the URL it came from (absolute, scheme-relative,
// absolute-path and relative-path forms).
std::string resolve_location(const std::string& base, const std::string& location) {
  if (location.find("://") != std::string::npos) return location;
  size_t scheme_end = base.find("://");
  if (scheme_end == std::string::npos) return location;
  if (location.rfind("//", 0) == 0) return base.substr(0, scheme_end + 1) + location;
  size_t path_start = base.find('/', scheme_end + 3);
  std::string origin = path_start == std::string::npos ? base : base.substr(0, path_start);
  if (!location.empty() && location[0] == '/') return origin + location;
  std::string path = path_start == std::string::npos ? "/" : base.substr(path_start);
  path = path.substr(0, path.find_first_of("?#"));
  return origin + path.substr(0, path.rfind('/') + 1) + location;
}

// Reads troupe.http's request table at idx into *out; false with *error when malformed.
bool read_options(lua_State* L, int idx, HttpOptions* out, std::string* error) {
  lua_getfield(L, idx, "url");
  if (!lua_isstring(L, -1)) {
    *error = "troupe.http: 'url' must be a string";
    return false;
  }
  out->request.url = lua_tostring(L, -1);
  lua_pop(L, 1);
  if (out->request.url.rfind("http://", 0) != 0 && out->request.url.rfind("https://", 0) != 0) {
    *error = "troupe.http: '" + out->request.url + "' is not an http:// or https:// URL";
    return false;
  }
  lua_getfield(L, idx, "method");
  if (!lua_isnil(L, -1)) out->request.method = luaL_optstring(L, -1, "GET");
  lua_pop(L, 1);
  lua_getfield(L, idx, "body");
  if (!lua_isnil(L, -1)) {
    if (!lua_isstring(L, -1)) {
      *error = "troupe.http: 'body' must be a string";
      return false;
    }
    size_t len = 0;
    const char* s = lua_tolstring(L, -1, &len);
    out->request.body.assign(s, len);
  }
  lua_pop(L, 1);
  lua_getfield(L, idx, "headers");
  if (lua_istable(L, -1)) {
    lua_pushnil(L);
    while (lua_next(L, -2) != 0) {
      if (lua_type(L, -2) != LUA_TSTRING || !lua_isstring(L, -1)) {
        *error = "troupe.http: 'headers' must map header names to strings";
        return false;
      }
      out->request.headers.emplace_back(lua_tostring(L, -2), lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 1);
  lua_getfield(L, idx, "timeout");
  double timeout_s = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 30.0;
  lua_pop(L, 1);
  if (!(timeout_s > 0) || timeout_s > 24 * 3600) {
    *error = "troupe.http: 'timeout' must be a number of seconds between 0 and a day";
    return false;
  }
  out->request.timeout_ms = static_cast<uint32_t>(timeout_s * 1000);
  lua_getfield(L, idx, "redirects");
  if (lua_isinteger(L, -1)) out->max_redirects = static_cast<int>(lua_tointeger(L, -1));
  lua_pop(L, 1);
  lua_getfield(L, idx, "max_bytes");
  if (lua_isinteger(L, -1) && lua_tointeger(L, -1) > 0)
    out->max_bytes = static_cast<size_t>(lua_tointeger(L, -1));
  lua_pop(L, 1);
  return true;
}

// Starts (or restarts, after a redirect) the exchange's transfer; done() runs once at the end.
void start_transfer(Core* core, const std::shared_ptr<HttpExchange>& ex,
                    const std::shared_ptr<EventLoop::Id>& current,
                    std::function<void(troupe_status_t, std::string)> done) {
  HttpHandlers h;
  h.on_headers = [ex](int status, const Headers& headers) {
    ex->status = status;
    ex->headers = headers;
    ex->body.clear();
  };
  h.on_chunk = [ex, core, current](std::string_view chunk) {
    if (ex->too_large) return;
    if (ex->body.size() + chunk.size() > ex->options.max_bytes) {
      ex->too_large = true;
      core->loop.http_cancel(*current);
      return;
    }
    ex->body.append(chunk);
  };
  h.on_complete = [core, ex, current, done](troupe_status_t status, const std::string& error) {
    if (ex->too_large) {
      done(TROUPE_TOO_LARGE, "the response is larger than max_bytes (" +
                                 std::to_string(ex->options.max_bytes) + " bytes)");
      return;
    }
    if (status == TROUPE_OK && is_redirect(ex->status) && ex->options.max_redirects > 0) {
      const std::string* location = find_header(ex->headers, "location");
      if (location != nullptr && !location->empty()) {
        if (ex->redirects >= ex->options.max_redirects) {
          done(TROUPE_TRANSPORT,
               "more than " + std::to_string(ex->options.max_redirects) + " redirects");
          return;
        }
        ++ex->redirects;
        std::string from = ex->options.request.url;
        ex->hops.push_back(from);
        ex->options.request.url = resolve_location(from, *location);
        if (ex->status == 303 ||
            ((ex->status == 301 || ex->status == 302) && ex->options.request.method == "POST")) {
          ex->options.request.method = "GET";  // what browsers and curl do
          ex->options.request.body.clear();
        }
        if (ex->options.request.url.rfind("http://", 0) != 0 &&
            ex->options.request.url.rfind("https://", 0) != 0) {
          done(TROUPE_INVALID_ARGUMENT, "redirected to a URL that is not http(s)");
          return;
        }
        std::string refusal =
            prepare_redirect(from, ex->options.request.url, ex->options.request.headers);
        if (!refusal.empty()) {
          done(TROUPE_INVALID_ARGUMENT, refusal);
          return;
        }
        start_transfer(core, ex, current, done);
        return;
      }
    }
    done(status, error);
  };
  *current = core->loop.http_start(ex->options.request, std::move(h));
}

// What troupe.http returns: (true, {status, body, url, headers}).
struct HttpAnswer {
  int status = 0;
  std::string url;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // names lowercased
};

int push_answer(lua_State* co, const HttpAnswer& a) {
  lua_pushboolean(co, 1);
  lua_createtable(co, 0, 4);
  lua_pushinteger(co, a.status);
  lua_setfield(co, -2, "status");
  lua_pushlstring(co, a.body.data(), a.body.size());
  lua_setfield(co, -2, "body");
  lua_pushlstring(co, a.url.data(), a.url.size());
  lua_setfield(co, -2, "url");
  // Header names lowercased: HTTP names are case-insensitive, Lua keys are not.
  lua_createtable(co, 0, static_cast<int>(a.headers.size()));
  for (const auto& [name, value] : a.headers) {
    lua_pushlstring(co, value.data(), value.size());
    lua_setfield(co, -2, name.c_str());
  }
  lua_setfield(co, -2, "headers");
  return 2;
}

// A resumed run's exchange its journal answers: the recorded answer, or the recorded failure.
Pusher served_http(const StepRecord& rec, const HttpRequest& req, const std::string& key) {
  if (rec.status != "succeeded") {
    std::string message = rec.error;
    std::string name = "transport";
    if (size_t colon = message.find(": "); colon != std::string::npos) {
      name = message.substr(0, colon);
      message = message.substr(colon + 2);
    }
    std::string text = "troupe.http " + req.method + " " + req.url + " (step " + key +
                       "): " + name + ": " + message;
    bool retryable = name == "transport" || name == "timeout";  // as a live failure says
    return [name, message, text, retryable, key](lua_State* co) {
      lua_pushboolean(co, 0);
      push_error_table(co, name.c_str(), message, retryable, 0, key, text);
      return 2;
    };
  }
  nlohmann::json r = nlohmann::json::parse(rec.response_json, nullptr, false);
  HttpAnswer answer;
  if (r.is_object()) {
    answer.status = r.value("status", 0);
    answer.url = r.value("url", req.url);
    answer.body = r.value("body", "");
    if (r.contains("headers") && r["headers"].is_object()) {
      for (const auto& [name, value] : r["headers"].items())
        answer.headers.emplace_back(name, value.is_string() ? value.get<std::string>() : "");
    }
  }
  return [answer = std::move(answer)](lua_State* co) { return push_answer(co, answer); };
}

}  // namespace

// host.http(request_table) -> true, {status, headers, body, url} | false, error
int prim_http(lua_State* L) {
  Core* core = core_of(L);
  Task* t = waiting_task_of(L, "troupe.http");
  luaL_checktype(L, 1, LUA_TTABLE);
  auto ex = std::make_shared<HttpExchange>();
  std::string error;
  if (!read_options(L, 1, &ex->options, &error)) return user_error(L, error);
  ex->options.request.policy = core->options.http_policy;

  Run& run = *t->run;
  std::string key = t->key(++t->ordinal);
  const HttpRequest& req = ex->options.request;
  nlohmann::json asked = {{"method", req.method}, {"url", req.url}, {"body", req.body}};
  for (const auto& [name, value] : req.headers)
    asked["headers"].push_back({text::ascii_lower(name), value});
  std::string request_hash = sha256_hex(log::redact(json_text(asked)));
  if (const StepRecord* rec =
          core->served_step(L, run, key, StepCall{"http", "", "", request_hash})) {
    core->serve(core->shared(t), key, served_http(*rec, ex->options.request, key));
    return suspend_task(L, t);
  }
  StepRecord step;
  step.run_id = run.id;
  step.step_key = key;
  step.kind = "http";
  step.request_json = json_text(
      nlohmann::json{{"method", ex->options.request.method}, {"url", ex->options.request.url}});
  step.started_ms = unix_ms();
  step.request_hash = std::move(request_hash);
  core->emit(run, "step.started", key,
             json_text(nlohmann::json{{"kind", "http"},
                                      {"method", ex->options.request.method},
                                      {"url", ex->options.request.url}}));

  std::weak_ptr<Task> weak = core->shared(t);
  Liveness::Watch token = core->alive.watch();
  uint64_t t0 = EventLoop::now_ns();
  auto current = std::make_shared<EventLoop::Id>(0);
  auto done = [core, weak, token, ex, step, t0](troupe_status_t status,
                                                std::string message) mutable {
    if (token.gone()) return;
    auto task = weak.lock();
    if (!task || task->finished) return;
    task->cancel_op = nullptr;
    step.finished_ms = unix_ms();
    step.latency_us = static_cast<int64_t>((EventLoop::now_ns() - t0) / 1000);
    Pusher push;
    if (status == TROUPE_OK) {
      step.status = "succeeded";
      // What reaches the workflow is redacted like every other way in (decision 0013).
      ex->body = log::redact(ex->body);
      for (auto& header : ex->headers)
        header.second = log::redact(header.second);
      // The whole answer is journaled: a resumed run is served it instead of asking again.
      nlohmann::json record = {{"status", ex->status},
                               {"bytes", ex->body.size()},
                               {"url", ex->options.request.url},
                               {"body", ex->body},
                               {"headers", nlohmann::json::object()}};
      for (const auto& [name, value] : ex->headers)
        record["headers"][text::ascii_lower(name)] = value;
      if (!ex->hops.empty()) record["redirected_from"] = ex->hops;
      step.response_json = json_text(record);
      push = [ex](lua_State* co) {
        HttpAnswer answer{ex->status, ex->options.request.url, ex->body, {}};
        for (const auto& [name, value] : ex->headers)
          answer.headers.emplace_back(text::ascii_lower(name), value);
        return push_answer(co, answer);
      };
    } else {
      const char* name = troupe_status_name(status);
      message = log::redact(message);
      step.status = status == TROUPE_CANCELLED ? "cancelled" : "failed";
      step.error = std::string(name) + ": " + message;
      std::string text = "troupe.http " + ex->options.request.method + " " +
                         ex->options.request.url + " (step " + step.step_key + "): " + name + ": " +
                         message;
      bool retryable = status == TROUPE_TRANSPORT || status == TROUPE_TIMEOUT;
      push = [name, message, text, retryable, key = step.step_key](lua_State* co) {
        lua_pushboolean(co, 0);
        push_error_table(co, name, message, retryable, 0, key, text);
        return 2;
      };
    }
    core->finish_step(task, std::move(step), std::move(push));
  };
  start_transfer(core, ex, current, done);
  t->cancel_op = [core, current] { core->loop.http_cancel(*current); };
  return suspend_task(L, t);
}

}  // namespace troupe::rt
