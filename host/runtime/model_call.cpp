// model_call.cpp: a model call from Lua to the plugin and back — prepare (provider, step key,
// request JSON, step.started), start the call on the plugin instance, suspend the task, settle
// the completion into its step (tokens, redacted response or error) and resume the task.
// host.stream (model_stream.cpp) shares prepare and settle.
#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "core/json_text.h"
#include "core/log.h"
#include "loop/event_loop.h"
#include "plugin/plugin_instance.h"
#include "runtime/json_lua.h"
#include "runtime/model_call.h"
#include "runtime/primitives.h"
#include "runtime/runtime_internal.h"
#include "troupe/status_names.h"

namespace troupe::rt {

namespace {

// A model the pricing table does not know: refused before the call is sent
// (unknown_model: refuse), or warned about once per run — a log line and a
// `pricing.unknown_model` event — and then priced at zero-and-flagged or at unknown_price.
void check_price(lua_State* L, Core* core, Run& run, const std::string& agent,
                 const std::string& model) {
  const Pricing* pricing = core->options.pricing.get();
  if (pricing == nullptr || pricing->find(model).price != nullptr) return;
  if (pricing->unknown_model == UnknownModel::refuse) {
    user_error(L, "agent '" + agent + "': model '" + model +
                      "' has no price in the pricing table and unknown_model is 'refuse': add "
                      "it to the configuration's pricing: (\"" +
                      model +
                      "\": {input: ..., output: ...}, USD per million tokens), or set "
                      "unknown_model: zero or price");
  }
  if (!run.unknown_models.insert(model).second) return;
  bool zero = pricing->unknown_model == UnknownModel::zero;
  log::warn(
      "pricing",
      "run " + run.id + ": model '" + model + "' has no price in the pricing " + "table: " +
          (zero ? "its calls are counted as unpriced" : "its calls are priced at unknown_price") +
          " (add it to the configuration's pricing:)");
  core->emit(run, "pricing.unknown_model", "",
             json_text(nlohmann::json{
                 {"model", model}, {"agent", agent}, {"unknown_model", zero ? "zero" : "price"}}));
}

}  // namespace

ChatCall prepare_chat(lua_State* L, Core* core, Task* t) {
  std::string agent = luaL_checkstring(L, 1);
  std::string model = luaL_checkstring(L, 2);
  std::string role = luaL_optstring(L, 3, "");
  luaL_checktype(L, 4, LUA_TTABLE);
  size_t slash = model.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == model.size()) {
    user_error(L, "agent '" + agent + "': model '" + model + "' must be written as provider/model");
  }
  std::string provider_name = model.substr(0, slash);
  std::string error;
  ChatCall c;
  c.provider = core->providers.provider(provider_name, &error);
  if (!c.provider) user_error(L, "agent '" + agent + "': " + error);
  nlohmann::json request;
  if (!lua::to_json(L, 4, &request, &error, "request")) {
    user_error(L, "agent '" + agent + "': " + error);
  }

  Run& run = *t->run;
  c.key = t->key(++t->ordinal);
  request["model"] = model.substr(slash + 1);
  // What resume compares: the request as the script made it (the metadata names the run, which
  // differs in a fork), redacted as the journal keeps it.
  std::string request_hash = sha256_hex(log::redact(json_text(request)));
  const StepRecord* served =
      core->served_step(L, run, c.key, StepCall{"chat", agent, model, request_hash});
  // A failure recorded before troupe kept failures' details is asked again.
  if (served && (served->status == "succeeded" || !served->response_json.empty())) {
    c.served = served;
    return c;
  }
  check_price(L, core, run, agent, model);
  nlohmann::json meta = {{"agent", agent}, {"run_id", run.id}, {"step_key", c.key}};
  if (!role.empty()) meta["role"] = role;
  request["metadata"] = meta;
  // Invalid UTF-8 in a prompt or a tool result must not throw out of a Lua call.
  c.body = json_text(request);

  c.step.run_id = run.id;
  c.step.step_key = c.key;
  c.step.kind = "chat";
  c.step.agent = agent;
  c.step.model = model;
  c.step.request_json = c.body;  // the store's writer redacts every row it writes
  c.step.started_ms = unix_ms();
  c.step.request_hash = std::move(request_hash);
  core->emit(run, "step.started", c.key,
             json_text(nlohmann::json{{"kind", "chat"}, {"agent", agent}, {"model", model}}));
  return c;
}

// The longest provider error message kept (start and end, see log::redact_cut).
constexpr size_t kMaxErrorBytes = 1024;

bool settle_chat(StepRecord* step, CallResult* result, uint64_t t0, std::string* error_text) {
  step->finished_ms = unix_ms();
  step->latency_us = static_cast<int64_t>((EventLoop::now_ns() - t0) / 1000);
  nlohmann::json response;
  if (result->status == TROUPE_OK) {
    response = nlohmann::json::parse(result->result_json, nullptr, false);
    if (!response.is_object()) {
      result->status = TROUPE_INTERNAL;
      result->error = "the provider returned a response that is not a JSON object";
    }
  }
  if (result->status == TROUPE_OK) {
    const nlohmann::json& usage = response.contains("usage") ? response["usage"] : nlohmann::json();
    if (usage.is_object()) {
      auto count = [&usage](const char* key) {
        auto it = usage.find(key);
        return it != usage.end() && it->is_number_integer() ? it->get<int64_t>() : int64_t{0};
      };
      step->input_tokens = count("input_tokens");
      step->output_tokens = count("output_tokens");
      step->cached_input_tokens = count("cached_input_tokens");
      step->reasoning_tokens = count("reasoning_tokens");
      step->cache_write_tokens = count("cache_write_tokens");
    }
    step->status = "succeeded";
    // A plugin that echoes a key must not get it into the journal or the workflow. \u escapes
    // could spell a key in a form the redactor does not know: such JSON is rewritten first.
    if (result->result_json.find("\\u") != std::string::npos)
      result->result_json = json_text(response);
    result->result_json = log::redact(result->result_json);
    step->response_json = result->result_json;
    return true;
  }
  // Plugins hand over vendor messages whole; the host cuts them, after redacting (0013).
  result->error = log::redact_cut(result->error, kMaxErrorBytes);
  const char* name = troupe_status_name(result->status);
  *error_text = "agent '" + step->agent + "' (" + step->model + ") step " + step->step_key + ": " +
                name + ": " + result->error;
  step->status = result->status == TROUPE_CANCELLED ? "cancelled" : "failed";
  step->error = std::string(name) + ": " + result->error;
  // What a resume serves back to the script: the error as the script saw it.
  step->response_json = json_text(nlohmann::json{{"error",
                                                  {{"code", result->status},
                                                   {"status", name},
                                                   {"message", result->error},
                                                   {"retryable", result->retryable},
                                                   {"retry_after_ms", result->retry_after_ms}}}});
  return false;
}

bool served_result(const StepRecord& rec, CallResult* result, std::string* error_text) {
  if (rec.status == "succeeded") {
    result->status = TROUPE_OK;
    result->result_json = rec.response_json;
    return true;
  }
  nlohmann::json e = nlohmann::json::parse(rec.response_json, nullptr, false);
  const nlohmann::json& err = e.is_object() && e.contains("error") ? e["error"] : nlohmann::json();
  result->status = static_cast<troupe_status_t>(err.value("code", int{TROUPE_INTERNAL}));
  result->error = err.value("message", rec.error);
  result->retryable = err.value("retryable", false);
  result->retry_after_ms = err.value("retry_after_ms", uint32_t{0});
  *error_text = "agent '" + rec.agent + "' (" + rec.model + ") step " + rec.step_key + ": " +
                troupe_status_name(result->status) + ": " + result->error;
  return false;
}

namespace {

// What host.chat returns for a call's result: (true, response) or (false, error table).
Pusher chat_pusher(bool ok, CallResult result, const std::string& text, const std::string& key) {
  if (ok) {
    return [json = std::move(result.result_json)](lua_State* co) {
      std::string err;
      lua_pushboolean(co, 1);
      if (!lua::push_json(co, json, &err)) lua_pushnil(co);
      return 2;
    };
  }
  return [result = std::move(result), text, key](lua_State* co) {
    lua_pushboolean(co, 0);
    push_error_table(co, troupe_status_name(result.status), result.error, result.retryable,
                     result.retry_after_ms, key, text);
    return 2;
  };
}

// A model call and its attempts: each failed attempt the policy tries again starts the same
// request anew after the wait (Core::retry_later); the step is journaled once, at the end.
struct ChatAttempts {
  Core* core = nullptr;
  std::weak_ptr<Task> task;
  Liveness::Watch token;
  std::shared_ptr<PluginInstance> provider;
  std::string body;
  StepRecord step;  // started, not finished; started_ms is the first attempt's
  RetryPolicy policy;
  FirstAttempt first;
  int attempt = 1;
};

void start_chat_attempt(const std::shared_ptr<ChatAttempts>& c);

// After a wait, before the next attempt: the task must still be there and waiting for it.
void chat_attempt_after(const std::shared_ptr<ChatAttempts>& c, int64_t wait_ms) {
  auto task = c->task.lock();
  if (!task || task->finished) return;
  EventLoop::Id timer = c->core->loop.add_timer(static_cast<uint64_t>(wait_ms), [c] {
    if (c->token.gone()) return;
    start_chat_attempt(c);
  });
  task->cancel_op = [core = c->core, timer] { core->loop.cancel_timer(timer); };
}

void start_chat_attempt(const std::shared_ptr<ChatAttempts>& c) {
  auto waiting = c->task.lock();
  if (!waiting || waiting->finished) return;
  uint64_t t0 = EventLoop::now_ns();
  int64_t attempt_started_ms = unix_ms();
  CallHandlers handlers;
  handlers.on_complete = [c, t0, attempt_started_ms](CallResult result) {
    if (c->token.gone()) return;
    auto task = c->task.lock();
    if (!task) return;
    task->cancel_op = nullptr;
    StepRecord& step = c->step;  // settled anew by each attempt
    step.error.clear();
    step.response_json.clear();
    std::string text;
    bool ok = settle_chat(&step, &result, t0, &text);
    if (!ok && !task->finished) {
      AttemptRecord failed = attempt_of(step, c->attempt, troupe_status_name(result.status),
                                        result.error, attempt_started_ms);
      AttemptFailure failure{failed.status, result.retryable, result.retry_after_ms};
      EventLoop::Id timer = c->core->retry_later(*task->run, std::move(failed), c->first.base,
                                                 c->policy, failure, [c] {
                                                   ++c->attempt;
                                                   start_chat_attempt(c);
                                                 });
      if (timer != 0) {
        task->cancel_op = [core = c->core, timer] { core->loop.cancel_timer(timer); };
        return;
      }
    }
    step.attempts = c->attempt;
    if (!ok && c->attempt > 1) text += " (after " + std::to_string(c->attempt) + " attempts)";
    Pusher push = chat_pusher(ok, std::move(result), text, step.step_key);
    c->core->finish_step(task, std::move(step), std::move(push));  // the last attempt
  };
  uint64_t call = c->provider->start_call(
      "chat", c->body, false, c->core->options.limits.call_timeout_ms, std::move(handlers));
  waiting->cancel_op = [provider = c->provider, call] { provider->cancel_call(call); };
}

}  // namespace

// host.chat(agent, "provider/model", role|nil, request, retry|nil) -> true, response |
// false, error
int prim_chat(lua_State* L) {
  Core* core = core_of(L);
  Task* t = waiting_task_of(L, "agent:ask/chat");
  RetryPolicy policy = read_retry(L, 5, core->options.retry, "agent:chat");
  ChatCall c = prepare_chat(L, core, t);
  if (c.served) {
    CallResult result;
    std::string text;
    bool ok = served_result(*c.served, &result, &text);
    core->serve(core->shared(t), c.key, chat_pusher(ok, std::move(result), text, c.key));
    return suspend_task(L, t);
  }
  auto attempts = std::make_shared<ChatAttempts>();
  attempts->core = core;
  attempts->task = core->shared(t);
  attempts->token = core->alive.watch();
  attempts->provider = std::move(c.provider);
  attempts->body = std::move(c.body);
  attempts->step = std::move(c.step);
  attempts->policy = std::move(policy);
  attempts->first = core->first_attempt(*t->run, c.key);
  attempts->attempt = attempts->first.number;
  if (attempts->first.wait_ms > 0) {
    chat_attempt_after(attempts, attempts->first.wait_ms);
  } else {
    start_chat_attempt(attempts);
  }
  return suspend_task(L, t);
}

}  // namespace troupe::rt
