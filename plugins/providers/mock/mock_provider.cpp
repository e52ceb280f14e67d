// mock_provider.cpp: the "mock" provider plugin — deterministic offline replies for demos,
// tests and benchmarks.
//
// The decisions (which rule, what text, which error, how many tokens) are mock_engine's; this
// file only carries them out through the SDK: at once when the latency is 0 (no timer, so
// a benchmark measures the host, not the mock), else through host timers, streaming text in
// stream_chunk_chars pieces spread over the latency. Nothing ever sleeps a thread.
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <troupe/plugin.hpp>

#include "common/chat_request.h"
#include "mock_engine.h"
#include "mock_text.h"

namespace {

using troupe::mock::Outcome;
using troupe::sdk::Call;
using troupe::sdk::Host;

class MockProvider : public troupe::sdk::Plugin {
 public:
  MockProvider(Host host, std::string_view config)
      : Plugin(host, config), engine_(troupe::mock::parse_settings(config)) {}

  void invoke(std::shared_ptr<Call> call) override {
    if (!troupe::kit::accept_chat_operation(*call, "mock")) return;
    auto job = std::make_shared<Job>();
    job->call = std::move(call);
    job->outcome = engine_.plan(job->call->request());

    if (job->outcome.kind == Outcome::Kind::hang) {  // waits for cancel()
      jobs_[job->call->id()] = job;
      return;
    }
    if (job->outcome.kind == Outcome::Kind::reply && job->call->stream()) {
      job->chunks =
          troupe::mock::split_chunks(job->outcome.text, engine_.settings().stream_chunk_chars);
    }
    if (job->outcome.latency_ms == 0) {  // the fast path: everything inside invoke()
      while (!step(*job)) {
      }
      return;
    }
    job->started_ns = host().now_ns();
    jobs_[job->call->id()] = job;
    schedule(job);
  }

  void cancel(troupe_call_id_t call_id) override {
    auto it = jobs_.find(call_id);
    if (it == jobs_.end()) return;
    std::shared_ptr<Job> job = std::move(it->second);
    jobs_.erase(it);
    if (job->timer != 0) host().cancel_timer(job->timer);
    job->call->fail(TROUPE_CANCELLED, "mock: cancelled");
  }

 private:
  // One call in progress. Steps: one per text chunk (streaming only), then a last step that
  // emits the tool-call and usage events and completes. Step k of n runs at
  // latency * (k + 1) / n, so the deltas are spread over the latency and the completion
  // lands at its end.
  struct Job {
    std::shared_ptr<Call> call;
    Outcome outcome;
    std::vector<std::string> chunks;
    size_t next_step = 0;
    uint64_t started_ns = 0;
    troupe_handle_t timer = 0;
  };

  static size_t step_count(const Job& job) { return job.chunks.size() + 1; }

  // Runs the next step; true when the call is complete.
  bool step(Job& job) {
    size_t k = job.next_step++;
    if (k < job.chunks.size()) {
      job.call->text_delta(job.chunks[k]);
      return false;
    }
    const Outcome& o = job.outcome;
    if (o.kind == Outcome::Kind::fail) {
      job.call->fail(o.failure.status, o.failure.message, o.failure.retryable,
                     o.failure.retry_after_ms);
      return true;
    }
    if (job.call->stream()) {
      for (size_t i = 0; i < o.tool_calls.size(); ++i) {
        const auto& t = o.tool_calls[i];
        job.call->tool_call_delta(static_cast<int32_t>(i), t.id, t.name, t.arguments_json);
      }
      job.call->usage(o.usage_json());
    }
    job.call->finish(o.response_json());
    return true;
  }

  // Milliseconds after the start at which step k is due.
  static uint64_t due_ms(const Job& job, size_t k) {
    return uint64_t{job.outcome.latency_ms} * (k + 1) / step_count(job);
  }

  void schedule(const std::shared_ptr<Job>& job) {
    uint64_t elapsed_ms = (host().now_ns() - job->started_ns) / 1000000;
    uint64_t due = due_ms(*job, job->next_step);
    uint64_t delay = due > elapsed_ms ? due - elapsed_ms : 0;
    troupe_call_id_t id = job->call->id();
    job->timer = host().timer(delay, [this, id] { on_timer(id); });
    if (job->timer == 0) {  // the host is shutting down
      jobs_.erase(id);
      job->call->fail(TROUPE_UNAVAILABLE, "mock: the host refused a timer", true);
    }
  }

  void on_timer(troupe_call_id_t id) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) return;
    std::shared_ptr<Job> job = it->second;
    job->timer = 0;
    // Run every step that is due now (several when the timer fired late or steps share a
    // millisecond), then wait for the next one.
    uint64_t elapsed_ms = (host().now_ns() - job->started_ns) / 1000000;
    do {
      if (step(*job)) {
        jobs_.erase(id);
        return;
      }
    } while (due_ms(*job, job->next_step) <= elapsed_ms);
    schedule(job);
  }

  troupe::mock::Engine engine_;
  std::unordered_map<troupe_call_id_t, std::shared_ptr<Job>> jobs_;
};

}  // namespace

TROUPE_PLUGIN(MockProvider, TROUPE_PLUGIN_PROVIDER, "mock", "1.0.0",
              "Deterministic offline LLM for demos, tests and benchmarks",
              R"({"operations":["chat"],"streaming":true,"tools":true})")
