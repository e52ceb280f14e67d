// run_journal.cpp: the journal of a run — finished steps into the store (resuming the task
// once durable) and events to the store and the listener.
#include "core/json_text.h"
#include "core/log.h"
#include "loop/event_loop.h"
#include "runtime/runtime_internal.h"

namespace troupe::rt {

void Core::emit(Run& run, const char* type, const std::string& step_key, std::string data_json,
                bool persistent) {
  // Once a limit stopped the run, what it still causes is not stored (run.finished is).
  if (persistent && !charge_store(run, false, data_json.size() + step_key.size())) return;
  // Every event leaves here (listeners, the store): redacted once, as dumped (decision 0013).
  RunEvent ev{run.id, type, step_key, log::redact(data_json), unix_ms()};
  if (persistent && store) store->append_event({0, run.id, ev.ts_ms, type, step_key, ev.data_json});
  if (listener) listener(ev);
}

void Core::price_step(StepRecord& step) const {
  if (step.kind != "chat" || step.model.empty() || !options.pricing) return;
  const Pricing& pricing = *options.pricing;
  Pricing::Match match = pricing.find(step.model);
  const ModelPrice* price = match.price;
  if (price == nullptr && pricing.unknown_model == UnknownModel::price)
    price = &pricing.unknown_price;
  if (price == nullptr) {  // never silently $0: the cost is not known
    step.cost_usd.reset();
    step.unpriced = true;
    return;
  }
  step.unpriced = false;
  step.cost_usd =
      cost_usd(*price, TokenUsage{step.input_tokens, step.output_tokens, step.cached_input_tokens,
                                  step.cache_write_tokens, step.reasoning_tokens});
}

void Core::record_step(Run& run, StepRecord step, std::function<void()> on_recorded) {
  // Over a limit, the step is still journaled (it happened, and may have been paid for); the
  // run is failed soon after.
  charge_store(run, true,
               step.request_json.size() + step.response_json.size() + step.error.size() +
                   step.step_key.size());
  // The end is the start plus the latency measured on the monotonic clock: a wall-clock jump
  // during the step cannot make it end before it started.
  step.finished_ms = step.started_ms + step.latency_us / 1000;
  ++run.steps;
  run.input_tokens += step.input_tokens;
  run.output_tokens += step.output_tokens;
  price_step(step);
  if (step.cost_usd) run.cost_usd += *step.cost_usd;
  if (step.unpriced) ++run.unpriced;
  nlohmann::json data = {{"kind", step.kind},
                         {"status", step.status},
                         {"latency_ms", static_cast<double>(step.latency_us) / 1000.0}};
  if (!step.agent.empty()) data["agent"] = step.agent;
  if (!step.model.empty()) data["model"] = step.model;
  if (step.input_tokens || step.output_tokens) {
    data["input_tokens"] = step.input_tokens;
    data["output_tokens"] = step.output_tokens;
  }
  if (step.cached_input_tokens) data["cached_input_tokens"] = step.cached_input_tokens;
  if (step.reasoning_tokens) data["reasoning_tokens"] = step.reasoning_tokens;
  if (step.cache_write_tokens) data["cache_write_tokens"] = step.cache_write_tokens;
  if (step.cost_usd) data["cost_usd"] = *step.cost_usd;
  if (step.unpriced) data["unpriced"] = true;
  if (!step.error.empty()) data["error"] = step.error;
  emit(run, "step.finished", step.step_key, json_text(data));
  if (store == nullptr || run.durability == Durability::async || run.done) {
    if (store) store->record_step(step);
    if (on_recorded) on_recorded();
    return;
  }
  // Durable: go on only once the step's record is committed; if it cannot be, the run fails.
  Liveness::Watch token = alive.watch();
  EventLoop* lp = &loop;
  std::string run_id = run.id;
  store->record_step(step,
                     [this, lp, token, run_id, on_recorded = std::move(on_recorded)](bool ok) {
                       lp->post([this, token, run_id, ok, on_recorded] {
                         if (token.gone()) return;
                         if (!ok) {
                           journal_failed(run_id, store->run_writes(run_id).error);
                           return;
                         }
                         if (on_recorded) on_recorded();
                       });
                     });
}

namespace {

std::string short_hash(const std::string& hash) {
  return hash.empty() ? "none" : hash.substr(0, 12) + "…";
}

}  // namespace

const StepRecord* Core::served_step(lua_State* co, Run& run, const std::string& key,
                                    const StepCall& call) {
  auto it = run.journal.find(key);
  if (it == run.journal.end()) {
    if (!run.offline) return nullptr;
    // A replay makes no call: what the journal does not answer is where the script diverges.
    run.kill_reason = "replay: the script diverges at step " + key + ": it makes a " + call.kind +
                      " call" + (call.agent.empty() ? "" : " ('" + call.agent + "')") +
                      " where the journal of run " + run.parent_run + " holds nothing";
    luaL_error(co, "%s", run.kill_reason.c_str());
  }
  const StepRecord& rec = it->second;
  std::string differs;
  if (rec.kind != call.kind) {
    differs = "the journal has a " + rec.kind + " step there; the script now makes a " + call.kind +
              " call";
  } else if (rec.agent != call.agent) {
    differs = "the journal has " + rec.kind + " '" + rec.agent + "' there; the script now asks " +
              call.kind + " '" + call.agent + "'";
  } else if (rec.model != call.model) {
    differs = "the journal has model " + rec.model + " there; the script now asks " + call.model;
  } else if (!rec.request_hash.empty() && rec.request_hash != call.request_hash) {
    differs = "the journal has another request there (sha256 " + short_hash(rec.request_hash) +
              " recorded, " + short_hash(call.request_hash) + " now)";
  }
  if (!differs.empty()) {
    // Never serve a recorded answer to another question: the run stops, whatever pcall does.
    const char* mode = run.offline ? "replay" : run.parent_run.empty() ? "resume" : "fork";
    run.kill_reason = std::string(mode) + ": step " + key +
                      " does not match the journal: " + differs +
                      ". A changed workflow shifts its steps; guard changes with " +
                      "troupe.patched(id) so that runs in flight keep the old path";
    luaL_error(co, "%s", run.kill_reason.c_str());
  }
  if (rec.status == "pending") return &rec;  // a wait that had started: its primitive goes on
  ++run.served;
  ++run.steps;
  run.input_tokens += rec.input_tokens;
  run.output_tokens += rec.output_tokens;
  return &rec;
}

namespace {

// How long served answers may wait for one recorded before them that nobody asks for (a
// changed script) before the wait is given up.
constexpr uint64_t kDeliveryStallMs = 200;

// Takes the turns that are due: held answers are scheduled, early ones skipped.
void advance(Core& core, Run& run) {
  for (;;) {
    if (auto h = run.held.find(run.next_delivery); h != run.held.end()) {
      if (auto task = h->second.task.lock()) core.schedule(task, std::move(h->second.push));
      run.held.erase(h);
    } else if (!run.delivered.erase(run.next_delivery)) {
      return;
    }
    ++run.next_delivery;
  }
}

}  // namespace

void Core::serve(const std::shared_ptr<Task>& task, const std::string& key, Pusher push) {
  Run& run = *task->run;
  auto it = run.delivery_order.find(key);
  if (it == run.delivery_order.end() || it->second < run.next_delivery) {
    schedule(task, std::move(push));
    return;
  }
  run.held.emplace(it->second, Ready{task, std::move(push)});
  advance(*this, run);
  if (run.held.empty() || run.stall_timer) return;
  // A script that no longer asks for an earlier answer must not wait for it forever.
  run.stall_timer = true;
  run.delivery_checked = run.next_delivery;
  Liveness::Watch token = alive.watch();
  std::string run_id = run.id;
  auto on_timer = std::make_shared<std::function<void()>>();
  // The closure holds itself weakly; each armed timer holds it, so it goes with the last one.
  *on_timer = [this, token, run_id, weak = std::weak_ptr(on_timer)] {
    if (token.gone()) return;
    auto r = runs.find(run_id);
    if (r == runs.end()) return;
    Run& stalled = *r->second;
    stalled.stall_timer = false;
    if (stalled.held.empty()) return;
    if (stalled.next_delivery == stalled.delivery_checked) {
      stalled.next_delivery = stalled.held.begin()->first;  // give up on the turns before it
      advance(*this, stalled);
    }
    if (stalled.held.empty()) return;
    stalled.stall_timer = true;
    stalled.delivery_checked = stalled.next_delivery;
    if (auto self = weak.lock()) loop.add_timer(kDeliveryStallMs, [self] { (*self)(); });
  };
  loop.add_timer(kDeliveryStallMs, [on_timer] { (*on_timer)(); });
}

void Core::served_now(Run& run, const std::string& key) {
  auto it = run.delivery_order.find(key);
  if (it == run.delivery_order.end() || it->second < run.next_delivery) return;
  run.delivered.insert(it->second);
  advance(*this, run);
}

void Core::finish_step(const std::shared_ptr<Task>& task, StepRecord step, Pusher push) {
  Run& run = *task->run;
  if (task->finished || run.done) {
    record_step(run, std::move(step), nullptr);
    return;
  }
  std::weak_ptr<Task> weak = task;
  record_step(run, std::move(step), [this, weak, push = std::move(push)] {
    if (auto t = weak.lock()) schedule(t, push);
  });
}

}  // namespace troupe::rt
