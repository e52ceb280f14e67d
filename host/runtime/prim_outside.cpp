// prim_outside.cpp: the primitives that wait for the outside world — host.wait_signal (a signal
// another process sends: troupe signal) and host.approve (a person's decision: troupe approve,
// or the default at the deadline, with escalation tiers on the way).
//
// Both are durable waits. The wait's step is recorded as pending when it starts (with its
// deadline); while the run is held in memory the task polls the store every kPollMs for what it
// waits for (other processes write it there); after park_after_ms of waiting it lets the run
// park (run_park.cpp), and the signal or decision then makes the parked run due so that a worker
// resumes it. Delivered once: a signal is taken by the step that records its seq (later waits
// look past it); an approval is decided once in the store (the first decision wins) and its step
// records the decision.
#include <algorithm>
#include <climits>
#include <nlohmann/json.hpp>

#include "core/digest.h"
#include "core/json_text.h"
#include "core/log.h"
#include "loop/event_loop.h"
#include "runtime/json_lua.h"
#include "runtime/notify.h"
#include "runtime/primitives.h"
#include "runtime/runtime_internal.h"

namespace troupe::rt {
namespace {

constexpr uint64_t kPollMs = 200;
constexpr int64_t kNoDeadline = INT64_MAX;

// One waiting task's poll: `check` runs on the loop every kPollMs until it returns true (it
// delivered the task, or the task is gone); cancelling the task stops it.
struct Poll {
  std::function<bool()> check;
  bool stopped = false;
};

void poll_every(Core* core, const std::shared_ptr<Poll>& poll) {
  if (poll->stopped || poll->check()) return;
  Liveness::Watch token = core->alive.watch();
  std::weak_ptr<Poll> weak = poll;
  core->loop.add_timer(kPollMs, [core, token, weak] {
    if (token.gone()) return;
    if (auto p = weak.lock()) poll_every(core, p);
  });
}

// Every park_after_ms of waiting, a wait whose next wake (park_until: its deadline or next
// escalation; kNoDeadline: none, only a signal or a decision) is at least park_after_ms away
// lets its run park; a nearer one keeps waiting in memory.
void offer_parking(Core* core, std::weak_ptr<Task> weak, std::function<int64_t()> park_until) {
  Liveness::Watch token = core->alive.watch();
  core->loop.add_timer(core->options.park_after_ms, [core, token, weak, park_until] {
    if (token.gone()) return;
    auto task = weak.lock();
    if (!task || task->finished || !task->cancel_op) return;
    int64_t until = park_until();
    if (until == kNoDeadline || until - unix_ms() >= core->options.park_after_ms) {
      task->park_until_ms = until;
      core->consider_parking(task->run->id);
    }
    offer_parking(core, weak, park_until);
  });
}

// Starts a durable wait's poll on task t: the poll is owned by the task's cancel_op, so it goes
// when the wait ends or the task is cancelled.
void start_waiting(Core* core, Task* t, std::function<bool()> check,
                   std::function<int64_t()> park_until) {
  auto poll = std::make_shared<Poll>();
  poll->check = std::move(check);
  t->cancel_op = [poll] { poll->stopped = true; };
  offer_parking(core, core->shared(t), std::move(park_until));
  Liveness::Watch first = core->alive.watch();
  core->loop.post([core, first, poll] {
    if (!first.gone()) poll_every(core, poll);
  });
}

// The record of a durable wait (a signal's, an approval's) that started at started_ms: pending
// with its deadline while it waits, succeeded with what ended it.
StepRecord wait_step(const std::string& run_id, const std::string& key, const char* kind,
                     const std::string& agent, const std::string& request,
                     const std::string& request_hash, int64_t started_ms) {
  StepRecord step;
  step.run_id = run_id;
  step.step_key = key;
  step.kind = kind;
  step.agent = agent;
  step.request_json = request;
  step.request_hash = request_hash;
  step.started_ms = started_ms;
  return step;
}

// Records the pending row of a durable wait that starts now (its deadline in the response).
void record_pending(Core* core, Run& run, const std::string& key, const char* kind,
                    const std::string& agent, const std::string& request,
                    const std::string& request_hash, int64_t until_ms, int64_t started_ms) {
  if (!core->store) return;
  StepRecord pending = wait_step(run.id, key, kind, agent, request, request_hash, started_ms);
  pending.response_json = json_text(nlohmann::json{{"until_ms", until_ms}});
  pending.status = "pending";
  core->store->record_step(pending);
}

int64_t recorded_until(const StepRecord* rec, int64_t fallback) {
  if (!rec) return fallback;
  nlohmann::json r = nlohmann::json::parse(rec->response_json, nullptr, false);
  return r.is_object() ? r.value("until_ms", fallback) : fallback;
}

// --- signals

Pusher signal_pusher(const nlohmann::json& response) {
  if (response.value("timeout", false)) {
    return [](lua_State* co) {
      lua_pushboolean(co, 0);
      lua_pushliteral(co, "timeout");
      return 2;
    };
  }
  std::string data = response.contains("data") ? json_text(response["data"]) : "null";
  return [data](lua_State* co) {
    std::string err;
    lua_pushboolean(co, 1);
    if (!lua::push_json(co, data, &err)) lua_pushnil(co);
    return 2;
  };
}

}  // namespace

// host.wait_signal(name, timeout_s|nil) -> true, data | false, "timeout"
int prim_wait_signal(lua_State* L) {
  Core* core = core_of(L);
  Task* t = waiting_task_of(L, "troupe.wait_signal");
  std::string name = luaL_checkstring(L, 1);
  if (name.empty() || name.size() > 128)
    return user_error(L, "troupe.wait_signal: the name must be 1 to 128 bytes");
  double timeout = luaL_optnumber(L, 2, -1);
  if (core->store == nullptr) {
    return user_error(L, "troupe.wait_signal needs a store: signals come through it");
  }
  Run& run = *t->run;
  std::string key = t->key(++t->ordinal);
  std::string request = json_text(nlohmann::json{{"name", name}});
  std::string hash = sha256_hex(request);
  const StepRecord* rec = core->served_step(L, run, key, StepCall{"signal", name, "", hash});
  if (rec && rec->status != "pending") {
    nlohmann::json response = nlohmann::json::parse(rec->response_json, nullptr, false);
    if (!response.is_object()) response = nlohmann::json::object();
    int64_t& seen = run.signal_seen[name];
    seen = std::max(seen, response.value("seq", int64_t{0}));
    core->serve(core->shared(t), key, signal_pusher(response));
    return suspend_task(L, t);
  }
  int64_t started_ms = rec ? rec->started_ms : unix_ms();
  int64_t until = timeout < 0 ? kNoDeadline : started_ms + static_cast<int64_t>(timeout * 1000);
  until = recorded_until(rec, until);
  if (!rec) {
    core->emit(run, "step.started", key,
               json_text(nlohmann::json{{"kind", "signal"}, {"name", name}}));
    record_pending(core, run, key, "signal", name, request, hash, until, started_ms);
  }
  std::weak_ptr<Task> weak = core->shared(t);
  auto check = [core, weak, key, name, request, hash, until, started_ms]() -> bool {
    auto task = weak.lock();
    if (!task || task->finished) return true;
    Run& r = *task->run;
    std::optional<SignalRecord> signal;
    try {
      signal = core->store->next_signal(r.id, name, r.signal_seen[name]);
    } catch (const std::exception&) {
      return false;  // a busy store: the next poll asks again
    }
    bool timed_out = !signal && unix_ms() >= until;
    if (!signal && !timed_out) return false;
    nlohmann::json response;
    if (signal) {
      r.signal_seen[name] = signal->seq;  // taken: no other wait of the run takes it
      response = {{"seq", signal->seq},
                  {"data", nlohmann::json::parse(signal->data_json, nullptr, false)},
                  {"sent_ms", signal->sent_ms}};
    } else {
      response = {{"timeout", true}};
    }
    task->cancel_op = nullptr;
    task->park_until_ms = 0;
    StepRecord step = wait_step(r.id, key, "signal", name, request, hash, started_ms);
    step.response_json = json_text(response);
    step.status = "succeeded";
    step.latency_us = (unix_ms() - started_ms) * 1000;
    core->finish_step(task, std::move(step), signal_pusher(response));
    return true;
  };
  start_waiting(core, t, check, [until] { return until; });
  return suspend_task(L, t);
}

// --- approvals

namespace {

struct Tier {
  double after_s = 0;
  std::string webhook;  // "" : an event and a log line only
};

// The decision as the workflow gets it: {choice, by, comment, at, defaulted}.
Pusher decision_pusher(const nlohmann::json& decision) {
  std::string text = json_text(decision);
  return [text](lua_State* co) {
    std::string err;
    lua_pushboolean(co, 1);
    if (!lua::push_json(co, text, &err)) lua_pushnil(co);
    return 2;
  };
}

nlohmann::json decision_json(const ApprovalRecord& a) {
  return {{"choice", a.choice},
          {"by", a.decided_by},
          {"comment", a.comment},
          {"at", a.decided_ms},
          {"defaulted", a.defaulted}};
}

}  // namespace

// host.approve(request) -> true, decision: request = {title, details, choices, default,
// timeout (s), escalate = {{after = s, webhook = url}, ...}}, already checked by the library.
int prim_approve(lua_State* L) {
  Core* core = core_of(L);
  Task* t = waiting_task_of(L, "troupe.approve");
  luaL_checktype(L, 1, LUA_TTABLE);
  if (core->store == nullptr) return user_error(L, "troupe.approve needs a store");
  nlohmann::json request;
  std::string error;
  if (!lua::to_json(L, 1, &request, &error, "approval")) return user_error(L, error);
  Run& run = *t->run;
  std::string key = t->key(++t->ordinal);
  std::string request_text = json_text(request);
  std::string hash = sha256_hex(request_text);
  std::string title = request.value("title", "");
  const StepRecord* rec = core->served_step(L, run, key, StepCall{"approval", title, "", hash});
  if (rec && rec->status != "pending") {
    nlohmann::json decision = nlohmann::json::parse(rec->response_json, nullptr, false);
    core->serve(core->shared(t), key, decision_pusher(decision));
    return suspend_task(L, t);
  }
  int64_t started_ms = rec ? rec->started_ms : unix_ms();
  double timeout = request.value("timeout", -1.0);
  int64_t deadline =
      timeout < 0 ? kNoDeadline : started_ms + static_cast<int64_t>(timeout * 1000.0);
  deadline = recorded_until(rec, deadline);
  std::vector<Tier> tiers;
  if (request.contains("escalate") && request["escalate"].is_array()) {
    for (const auto& tier : request["escalate"])
      tiers.push_back({tier.value("after", 0.0), tier.value("webhook", "")});
  }
  if (!rec) {
    core->emit(run, "step.started", key,
               json_text(nlohmann::json{{"kind", "approval"}, {"title", title}}));
    record_pending(core, run, key, "approval", title, request_text, hash, deadline, started_ms);
    ApprovalRecord ask;
    ask.run_id = run.id;
    ask.step_key = key;
    ask.request_json = request_text;
    ask.deadline_ms = deadline == kNoDeadline ? 0 : deadline;
    ask.requested_ms = started_ms;
    core->store->request_approval(ask);
  }
  // Which tiers fired already: their steps are in the journal (a resumed run fires none twice).
  auto fired = std::make_shared<size_t>(0);
  while (*fired < tiers.size() && run.journal.count(key + "!" + std::to_string(*fired + 1)))
    ++*fired;
  std::string fallback = request.value("default", "");
  std::weak_ptr<Task> weak = core->shared(t);
  auto check = [core, weak, key, title, request_text, hash, deadline, started_ms, tiers, fired,
                fallback]() -> bool {
    auto task = weak.lock();
    if (!task || task->finished) return true;
    Run& r = *task->run;
    int64_t now = unix_ms();
    // Escalation tiers whose time came, in order: an event, a log line, a signed webhook.
    while (*fired < tiers.size() &&
           now >= started_ms + static_cast<int64_t>(tiers[*fired].after_s * 1000.0)) {
      size_t tier = ++*fired;
      nlohmann::json note = {
          {"run_id", r.id}, {"approval", key},
          {"title", title}, {"tier", tier},
          {"at_ms", now},   {"deadline_ms", deadline == kNoDeadline ? 0 : deadline}};
      core->emit(r, "approval.escalated", key, json_text(note));
      log::info("approval", "run " + r.id + ": approval '" + title + "' (" + key +
                                ") escalated to tier " + std::to_string(tier));
      StepRecord step;
      step.run_id = r.id;
      step.step_key = key + "!" + std::to_string(tier);
      step.kind = "escalation";
      step.agent = title;
      step.request_json = json_text(note);
      step.status = "succeeded";
      step.started_ms = now;
      if (!tiers[tier - 1].webhook.empty()) {
        step.response_json = json_text(nlohmann::json{{"webhook", tiers[tier - 1].webhook}});
        post_webhook(*core, tiers[tier - 1].webhook, json_text(note));
      }
      core->record_step(r, std::move(step), nullptr);
    }
    std::optional<ApprovalRecord> a;
    try {
      a = core->store->get_approval(r.id, key);
      // The deadline: the default is applied, unless someone decided first.
      if (a && a->choice.empty() && deadline != kNoDeadline && now >= deadline) {
        a = core->store->decide_approval(r.id, key, fallback, "deadline", "", now, true);
      }
    } catch (const std::exception&) {
      return false;  // a busy store: the next poll asks again
    }
    if (!a || a->choice.empty()) return false;
    task->cancel_op = nullptr;
    task->park_until_ms = 0;
    nlohmann::json decision = decision_json(*a);
    StepRecord step = wait_step(r.id, key, "approval", title, request_text, hash, started_ms);
    step.response_json = json_text(decision);
    step.status = "succeeded";
    step.latency_us = (now - started_ms) * 1000;
    core->finish_step(task, std::move(step), decision_pusher(decision));
    return true;
  };
  // A parked approval wakes for its deadline or its next escalation tier, whichever is first.
  auto park_until = [deadline, tiers, fired, started_ms] {
    int64_t wake = deadline;
    if (*fired < tiers.size())
      wake = std::min(wake, started_ms + static_cast<int64_t>(tiers[*fired].after_s * 1000.0));
    return wake;
  };
  start_waiting(core, t, check, park_until);
  return suspend_task(L, t);
}

}  // namespace troupe::rt
