// model_stream.cpp: host.stream / host.stream_next — a streamed model call read by a Lua
// iterator (agent:stream).
//
// host.stream starts the call (one step, like host.chat) and returns a handle at once. The
// plugin's events arrive on the loop whenever they come and are queued here; host.stream_next
// hands out the next one, suspending only the reading branch while the queue is empty. After
// the deltas comes the end: the full response (once its step is journaled) or the error. The
// handle's __close (the generic for's closing value) and __gc cancel a call still running, so
// breaking out of the loop stops the provider's HTTP transfer; the step is then recorded as
// cancelled.
//
// Secrets: every piece of text is redacted on its way in by a StreamRedactor of its own field
// (the text, the reasoning, each tool call's arguments), so a key split across deltas is still
// caught; what a redactor holds back (the start of what may be a key) is handed out with the
// field's next piece or at the end, possibly after events of other fields. A tool call's id and
// name are whole values on its first delta (stream_event.schema.json): the first piece of each
// is handed out, redacted, and later pieces are dropped, as the provider kit assembles them.
#include <deque>
#include <map>
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <string>

#include "core/json_text.h"
#include "core/log.h"
#include "loop/event_loop.h"
#include "runtime/json_lua.h"
#include "runtime/model_call.h"
#include "runtime/primitives.h"
#include "runtime/runtime_internal.h"
#include "troupe/status_names.h"

namespace troupe::rt {
namespace {

constexpr const char* kStreamType = "troupe.stream";

// One delta as Lua sees it (stream_event.schema.json); text is already redacted.
struct Delta {
  troupe_event_type_t type = 0;
  int32_t index = 0;
  std::string text;  // text / reasoning deltas; the arguments piece of a tool call delta
  std::string id;
  std::string name;
};

struct StreamState {
  Core* core = nullptr;
  Liveness::Watch token;
  std::shared_ptr<PluginInstance> provider;
  uint64_t call = 0;
  std::string run_id;
  std::string key;
  std::deque<Delta> pending;
  uint64_t pending_bytes = 0;  // charged to the run (Core::charge_host_bytes) while queued
  log::StreamRedactor text, reasoning;
  struct ToolPieces {
    bool has_id = false, has_name = false;
    log::StreamRedactor arguments;
  };
  std::map<int32_t, ToolPieces> tools;  // by tool call index
  bool completed = false;               // the provider call ended, whatever its status
  bool recorded = false;                // ... and its step is journaled: the end may be handed out
  bool ended = false;                   // the end was handed out (or the reader closed the stream)
  bool ok = false;
  CallResult result;           // once completed; result_json redacted
  std::string error_text;      // the one-line error for Lua when !ok
  std::weak_ptr<Task> reader;  // the task suspended in stream_next, if any
  // The call's attempts: one that failed before its first delta is tried again (a policy,
  // Core::retry_later); once a delta went out, the failure is the stream's.
  std::weak_ptr<StreamState> self;
  std::string body;
  StepRecord step;  // started, not finished
  RetryPolicy policy;
  FirstAttempt first;
  int attempt = 1;
  bool any_delta = false;
  EventLoop::Id retry_timer = 0;  // the wait before the next attempt, while it runs
};

void settle_stream(StreamState& s, StepRecord step, CallResult result, bool ok);

// Queued deltas are host memory the run holds: charged to it while they wait for its reader,
// so a run that never reads a long stream meets its memory limit.
void charge_pending(StreamState& s, int64_t delta) {
  s.pending_bytes += delta;
  auto it = s.core->runs.find(s.run_id);
  if (it != s.core->runs.end()) s.core->charge_host_bytes(*it->second, delta);
}

void queue(StreamState& s, Delta d) {
  charge_pending(s, static_cast<int64_t>(d.text.size() + d.id.size() + d.name.size()));
  s.pending.push_back(std::move(d));
}

Delta unqueue(StreamState& s) {
  Delta d = std::move(s.pending.front());
  s.pending.pop_front();
  charge_pending(s, -static_cast<int64_t>(d.text.size() + d.id.size() + d.name.size()));
  return d;
}

void drop_pending(StreamState& s) {
  s.pending.clear();
  charge_pending(s, -static_cast<int64_t>(s.pending_bytes));
}

// The full userdata: a shared_ptr, because the plugin's handlers may outlive the Lua value.
struct StreamBox {
  std::shared_ptr<StreamState> state;
};

// Queues a piece of text or reasoning already redacted.
void emit_text(StreamState& s, troupe_event_type_t type, std::string text) {
  if (text.empty()) return;
  Delta d{type, 0, std::move(text), {}, {}};
  if (type == TROUPE_EVENT_TEXT_DELTA) {
    auto it = s.core->runs.find(s.run_id);
    if (it != s.core->runs.end()) {
      s.core->emit(*it->second, "text.delta", s.key, json_text(nlohmann::json{{"text", d.text}}),
                   false);
    }
  }
  queue(s, std::move(d));
}

// A tool call delta: the first id and name of the index, the arguments through its redactor.
void emit_tool_piece(StreamState& s, const StreamEvent& ev) {
  StreamState::ToolPieces& tool = s.tools[ev.index];
  Delta d{ev.type, ev.index, tool.arguments.feed(ev.text), {}, {}};
  if (!tool.has_id && !ev.tool_id.empty()) {
    tool.has_id = true;
    d.id = log::redact(ev.tool_id);
  }
  if (!tool.has_name && !ev.tool_name.empty()) {
    tool.has_name = true;
    d.name = log::redact(ev.tool_name);
  }
  if (!d.text.empty() || !d.id.empty() || !d.name.empty()) queue(s, std::move(d));
}

// The end of the stream: what the redactors still hold.
void flush_held(StreamState& s) {
  emit_text(s, TROUPE_EVENT_REASONING_DELTA, s.reasoning.finish());
  emit_text(s, TROUPE_EVENT_TEXT_DELTA, s.text.finish());
  for (auto& [index, tool] : s.tools) {
    std::string rest = tool.arguments.finish();
    if (!rest.empty()) queue(s, Delta{TROUPE_EVENT_TOOL_CALL_DELTA, index, rest, {}, {}});
  }
}

bool has_next(const StreamState& s) {
  return !s.pending.empty() || (s.recorded && !s.ended);
}

void cancel_call(StreamState& s) {
  if (s.completed || s.token.gone()) return;
  if (s.retry_timer != 0) {  // between two attempts: no call to cancel, the step ends here
    s.core->loop.cancel_timer(s.retry_timer);
    s.retry_timer = 0;
    StepRecord& step = s.step;
    CallResult result;
    result.status = TROUPE_CANCELLED;
    result.error = "the stream was closed while it waited to try again";
    bool ok = settle_chat(&step, &result, EventLoop::now_ns(), &s.error_text);
    settle_stream(s, std::move(step), std::move(result), ok);
    return;
  }
  // PluginInstance::cancel_call completes the call (on_complete) before it returns.
  s.provider->cancel_call(s.call);
}

// Pushes what stream_next returns for the next item: (true, event), (true, nil) at the end,
// or (false, error).
int push_next(lua_State* co, StreamState& s) {
  if (!s.pending.empty()) {
    Delta d = unqueue(s);
    lua_pushboolean(co, 1);
    lua_createtable(co, 0, 5);
    if (d.type == TROUPE_EVENT_TOOL_CALL_DELTA) {
      lua_pushliteral(co, "tool_call_delta");
      lua_setfield(co, -2, "type");
      lua_pushinteger(co, d.index);
      lua_setfield(co, -2, "index");
      if (!d.id.empty()) {
        lua_pushlstring(co, d.id.data(), d.id.size());
        lua_setfield(co, -2, "id");
      }
      if (!d.name.empty()) {
        lua_pushlstring(co, d.name.data(), d.name.size());
        lua_setfield(co, -2, "name");
      }
      lua_pushlstring(co, d.text.data(), d.text.size());
      lua_setfield(co, -2, "arguments");
    } else {
      lua_pushstring(co, d.type == TROUPE_EVENT_REASONING_DELTA ? "reasoning_delta" : "text_delta");
      lua_setfield(co, -2, "type");
      lua_pushlstring(co, d.text.data(), d.text.size());
      lua_setfield(co, -2, "text");
    }
    return 2;
  }
  if (s.recorded && !s.ended) {
    s.ended = true;
    if (!s.ok) {
      lua_pushboolean(co, 0);
      push_error_table(co, troupe_status_name(s.result.status), s.result.error, s.result.retryable,
                       s.result.retry_after_ms, s.key, s.error_text);
      return 2;
    }
    lua_pushboolean(co, 1);
    lua_createtable(co, 0, 3);
    lua_pushliteral(co, "usage");
    lua_setfield(co, -2, "type");
    std::string err;
    if (!lua::push_json(co, s.result.result_json, &err)) lua_createtable(co, 0, 0);
    lua_getfield(co, -1, "usage");
    lua_setfield(co, -3, "usage");
    lua_setfield(co, -2, "response");
    return 2;
  }
  lua_pushboolean(co, 1);
  lua_pushnil(co);
  return 2;
}

// Resumes the waiting reader when there is something for it.
void wake(const std::shared_ptr<StreamState>& s) {
  if (!has_next(*s) || s->token.gone()) return;
  auto task = s->reader.lock();
  if (!task || task->finished) return;
  s->reader.reset();
  task->cancel_op = nullptr;
  s->core->schedule(task, [s](lua_State* co) { return push_next(co, *s); });
}

StreamState& check_stream(lua_State* L, int idx) {
  auto* box = static_cast<StreamBox*>(luaL_checkudata(L, idx, kStreamType));
  if (!box->state) luaL_error(L, "agent:stream: this stream is no longer usable");
  return *box->state;
}

int stream_gc(lua_State* L) {
  auto* box = static_cast<StreamBox*>(luaL_checkudata(L, 1, kStreamType));
  if (box->state) {
    cancel_call(*box->state);
    drop_pending(*box->state);
  }
  box->~StreamBox();
  return 0;
}

// The generic for's closing value: the loop ended, was left with break, or its body raised.
int stream_close(lua_State* L) {
  StreamState& s = check_stream(L, 1);
  s.ended = true;
  drop_pending(s);
  cancel_call(s);
  return 0;
}

// A resumed run's stream its journal answers: the recorded answer, handed out as the deltas
// of one piece each (the text, each tool call) and then the end; no call is made.
void replay_served(StreamState& s, const StepRecord& rec) {
  s.completed = s.recorded = true;
  s.ok = served_result(rec, &s.result, &s.error_text);
  if (!s.ok) return;
  nlohmann::json response = nlohmann::json::parse(rec.response_json, nullptr, false);
  if (!response.is_object()) return;
  if (response.contains("text") && response["text"].is_string())
    emit_text(s, TROUPE_EVENT_TEXT_DELTA, response["text"].get<std::string>());
  if (!response.contains("tool_calls") || !response["tool_calls"].is_array()) return;
  int32_t index = 0;
  for (const nlohmann::json& call : response["tool_calls"]) {
    if (!call.is_object()) continue;
    Delta d{TROUPE_EVENT_TOOL_CALL_DELTA, index++, {}, {}, {}};
    if (call.contains("arguments")) d.text = json_text(call["arguments"]);
    d.id = call.value("id", "");
    d.name = call.value("name", "");
    queue(s, std::move(d));
  }
}

void start_stream_attempt(StreamState& s);

// The next attempt after wait_ms, unless the stream ends meanwhile (cancel_call).
void retry_stream_after(StreamState& s, int64_t wait_ms) {
  std::weak_ptr<StreamState> weak = s.self;
  s.retry_timer = s.core->loop.add_timer(static_cast<uint64_t>(wait_ms), [weak] {
    auto state = weak.lock();
    if (!state || state->token.gone() || state->completed) return;
    state->retry_timer = 0;
    start_stream_attempt(*state);
  });
}

// The call's end: what the redactors hold, the result, and the step, journaled; the reader
// gets the end once it is.
void settle_stream(StreamState& s, StepRecord step, CallResult result, bool ok) {
  s.completed = true;
  if (!s.ended) flush_held(s);
  step.attempts = s.attempt;
  if (!ok && s.attempt > 1) s.error_text += " (after " + std::to_string(s.attempt) + " attempts)";
  s.ok = ok;
  s.result = std::move(result);
  auto it = s.core->runs.find(s.run_id);
  if (it == s.core->runs.end()) return;  // the run is over: nobody reads or records
  std::weak_ptr<StreamState> weak = s.self;
  s.core->record_step(*it->second, std::move(step), [weak] {
    auto recorded = weak.lock();
    if (!recorded) return;
    recorded->recorded = true;
    wake(recorded);
  });
}

// Starts an attempt of the call. The handlers hold the state weakly: a stream nobody reads any
// more is collected, and its __gc cancels the call.
void start_stream_attempt(StreamState& s) {
  if (s.core->runs.count(s.run_id) == 0) {  // the run ended during the wait: nothing to ask
    s.completed = true;
    return;
  }
  std::weak_ptr<StreamState> weak = s.self;
  uint64_t t0 = EventLoop::now_ns();
  int64_t attempt_started_ms = unix_ms();
  CallHandlers handlers;
  handlers.on_event = [weak](const StreamEvent& ev) {
    auto state = weak.lock();
    if (!state || state->completed || state->ended || state->token.gone()) return;
    if (ev.type != TROUPE_EVENT_TEXT_DELTA && ev.type != TROUPE_EVENT_REASONING_DELTA &&
        ev.type != TROUPE_EVENT_TOOL_CALL_DELTA) {
      return;  // the plugin's USAGE events: the end carries the complete usage instead
    }
    state->any_delta = true;
    if (ev.type == TROUPE_EVENT_TOOL_CALL_DELTA) {
      emit_tool_piece(*state, ev);
    } else {
      auto& redactor = ev.type == TROUPE_EVENT_TEXT_DELTA ? state->text : state->reasoning;
      emit_text(*state, ev.type, redactor.feed(ev.text));
    }
    wake(state);
  };
  handlers.on_complete = [weak, t0, attempt_started_ms](CallResult result) {
    auto state = weak.lock();
    if (!state || state->token.gone()) return;
    StepRecord& step = state->step;  // settled anew by each attempt
    step.error.clear();
    step.response_json.clear();
    bool ok = settle_chat(&step, &result, t0, &state->error_text);
    auto it = state->core->runs.find(state->run_id);
    if (!ok && !state->any_delta && !state->ended && it != state->core->runs.end()) {
      AttemptRecord failed = attempt_of(step, state->attempt, troupe_status_name(result.status),
                                        result.error, attempt_started_ms);
      AttemptFailure failure{failed.status, result.retryable, result.retry_after_ms};
      EventLoop::Id timer = state->core->retry_later(
          *it->second, std::move(failed), state->first.base, state->policy, failure, [weak] {
            auto again = weak.lock();
            if (!again || again->completed) return;
            again->retry_timer = 0;
            ++again->attempt;
            start_stream_attempt(*again);
          });
      if (timer != 0) {
        state->retry_timer = timer;
        return;
      }
    }
    settle_stream(*state, std::move(step), std::move(result), ok);
  };
  s.call = s.provider->start_call("chat", s.body, true, s.core->options.limits.call_timeout_ms,
                                  std::move(handlers));
}

}  // namespace

void register_stream_type(lua_State* L) {
  register_handle_type(L, kStreamType, stream_gc, stream_close);
}

// host.stream(agent, "provider/model", role|nil, request, retry|nil) -> handle: starts a
// streamed call.
int prim_stream(lua_State* L) {
  Core* core = core_of(L);
  Task* t = task_of(L);
  RetryPolicy policy = read_retry(L, 5, core->options.retry, "agent:stream");
  ChatCall c = prepare_chat(L, core, t);
  auto* box = static_cast<StreamBox*>(lua_newuserdatauv(L, sizeof(StreamBox), 0));
  new (box) StreamBox{std::make_shared<StreamState>()};
  luaL_setmetatable(L, kStreamType);
  std::shared_ptr<StreamState> s = box->state;
  s->core = core;
  s->token = core->alive.watch();
  s->provider = c.provider;
  s->run_id = t->run->id;
  s->key = c.key;
  if (c.served) {
    replay_served(*s, *c.served);
    core->served_now(*t->run, c.key);
    return 1;
  }

  s->self = s;
  s->body = std::move(c.body);
  s->step = std::move(c.step);
  s->policy = std::move(policy);
  s->first = core->first_attempt(*t->run, c.key);
  s->attempt = s->first.number;
  if (s->first.wait_ms > 0) {
    retry_stream_after(*s, s->first.wait_ms);
  } else {
    start_stream_attempt(*s);
  }
  return 1;
}

// host.stream_next(handle) -> true, event | true, nil (the end) | false, error
int prim_stream_next(lua_State* L) {
  Core* core = core_of(L);
  StreamState& s = check_stream(L, 1);
  if (has_next(s) || s.ended) return push_next(L, s);
  Task* t = waiting_task_of(L, "a stream's iterator");
  if (auto other = s.reader.lock(); other && !other->finished && other.get() != t) {
    return user_error(L, "agent:stream: this stream is already being read by another branch");
  }
  s.reader = core->shared(t);
  std::weak_ptr<StreamState> weak = static_cast<StreamBox*>(lua_touserdata(L, 1))->state;
  t->cancel_op = [weak] {
    if (auto state = weak.lock()) cancel_call(*state);
  };
  return suspend_task(L, t);
}

}  // namespace troupe::rt
