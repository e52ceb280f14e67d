// cmd_run.cpp: `troupe run` and `troupe resume` — run a workflow (or take over an interrupted
// run), show live progress, print the result.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "api/host.h"
#include "cli/commands.h"
#include "cli/term.h"
#include "config/config.h"
#include "config/input.h"
#include "loop/event_loop.h"
#include "store/store.h"

namespace troupe::cli {
namespace {

using nlohmann::json;

std::atomic<int> g_interrupts{0};
std::atomic<Runtime*> g_runtime{nullptr};  // the runtime a signal interrupts

void on_interrupt(int sig) {
  // A run computing where it cannot yield keeps the loop (and the check below) waiting:
  // interrupt() reaches it at its next count hook.
  if (Runtime* rt = g_runtime.load(); rt != nullptr && g_interrupts.load() == 0) {
    rt->interrupt(sig == SIGTERM ? "interrupted (SIGTERM)" : "interrupted by the user (SIGINT)");
  }
  g_interrupts.fetch_add(1);
}

// Live progress on stderr: one line when a step starts, one when it ends.
class Progress {
 public:
  Progress(Style style, bool live) : s_(style), live_(live) {}

  void on_event(const RunEvent& ev) {
    json d = json::parse(ev.data_json, nullptr, false);
    if (ev.type == "text.delta") {
      if (live_) stream_text(ev.step_key, d.value("text", ""));
      return;
    }
    // Any other line ends the streamed text on screen; it continues under its own prefix.
    bool ends_stream = ev.type == "step.finished" && ev.step_key == stream_key_;
    break_stream_line();
    if (ends_stream) stream_key_.clear();
    if (ev.type == "log") {
      std::string level = d.value("level", "info");
      std::string line = "  · " + d.value("message", "");
      if (level == "warn") line = s_.yellow(line);
      if (level == "error") line = s_.red(line);
      if (level != "debug" || live_) std::fprintf(stderr, "%s\n", line.c_str());
      return;
    }
    if (!live_) return;
    if (ev.type == "run.started") {
      std::fprintf(stderr, "%s %s %s\n", s_.bold("▶ " + d.value("workflow", "")).c_str(),
                   s_.dim("run " + ev.run_id).c_str(), s_.dim(d.value("source", "")).c_str());
    } else if (ev.type == "step.started") {
      std::string kind = d.value("kind", "");
      std::string what = kind;
      if (kind == "chat") what = pad(d.value("agent", ""), 12) + " " + d.value("model", "");
      if (kind == "tool") what = pad(d.value("caller", ""), 12) + " tool " + d.value("tool", "");
      if (kind == "http") what = "http " + d.value("method", "") + " " + d.value("url", "");
      if (kind == "sleep") what = "sleep " + format_ms(d.value("seconds", 0.0) * 1000);
      std::fprintf(stderr, "  %s %s %s\n", s_.cyan("→").c_str(), pad(ev.step_key, 8).c_str(),
                   what.c_str());
    } else if (ev.type == "join.started") {
      std::fprintf(stderr, "  %s %s %s ×%d\n", s_.cyan("⇉").c_str(), pad(ev.step_key, 8).c_str(),
                   d.value("kind", "parallel").c_str(), d.value("branches", 0));
    } else if (ev.type == "step.finished") {
      bool ok = d.value("status", "") == "succeeded";
      std::string kind = d.value("kind", "");
      std::string what = kind == "chat"
                             ? pad(d.value("agent", ""), 12) + " " + pad(d.value("model", ""), 28)
                         : kind == "tool" ? pad("tool " + d.value("agent", ""), 41)
                                          : pad(kind, 41);
      std::string figures = format_ms(d.value("latency_ms", 0.0));
      if (d.contains("input_tokens")) {
        figures += "  " + std::to_string(d.value("input_tokens", 0)) + " → " +
                   std::to_string(d.value("output_tokens", 0)) + " tok";
      }
      if (!ok) figures += "  " + s_.red(one_line(d.value("error", ""), 80));
      std::fprintf(stderr, "  %s %s %s %s\n", ok ? s_.green("✓").c_str() : s_.red("✗").c_str(),
                   pad(ev.step_key, 8).c_str(), what.c_str(), s_.dim(figures).c_str());
    }
  }

 private:
  // Streamed text of one model call at a time is shown as it arrives, under "  │ ". Calls
  // streaming at the same time wait their turn: their text is in the result and the journal.
  void stream_text(const std::string& key, const std::string& text) {
    if (stream_key_.empty()) stream_key_ = key;
    if (key != stream_key_ || text.empty()) return;
    std::string out;
    for (char c : text) {
      if (at_line_start_) {
        out += s_.dim("  │ ");
        at_line_start_ = false;
      }
      out += c;
      if (c == '\n') at_line_start_ = true;
    }
    std::fputs(out.c_str(), stderr);
    std::fflush(stderr);
    mid_line_ = !at_line_start_;
  }

  void break_stream_line() {
    if (mid_line_) std::fputc('\n', stderr);
    mid_line_ = false;
    at_line_start_ = true;
  }

  Style s_;
  bool live_;
  std::string stream_key_;     // the call whose text is on screen; "" = none
  bool at_line_start_ = true;  // the next streamed character starts a line
  bool mid_line_ = false;      // streamed text left the cursor in the middle of a line
};

}  // namespace

int cmd_run(const Common& common, const RunArgs& args) {
  Style err_style = style_for(STDERR_FILENO);
  std::string input;
  std::unique_ptr<Host> host;
  try {
    // Everything the user handed over is checked before the store is opened or a run begins.
    bool fresh = args.resume_id.empty() && args.fork_id.empty() && args.replay_id.empty();
    if (fresh || !args.input.empty()) input = read_input_argument(args.input);
    if (fresh) check_workflow_file(args.workflow);
    if (!args.script.empty()) check_workflow_file(args.script);
    host = std::make_unique<Host>(config_for(common));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe: %s\n", e.what());
    return kUsage;
  }

  if (args.detach) {
    RunSpec queued;
    queued.source_path = args.workflow;
    queued.input_json = input;
    std::string error;
    std::string id = host->runtime().submit(queued, &error);
    if (id.empty()) {
      std::fprintf(stderr, "troupe: %s\n", error.c_str());
      return kUsage;
    }
    if (common.json) {
      std::printf("%s\n", json{{"run_id", id}, {"status", "queued"}}.dump(2).c_str());
    } else {
      std::printf("%s\n", id.c_str());
    }
    return kOk;
  }

  bool live = !args.quiet && !common.json && is_terminal(STDERR_FILENO);
  Progress progress(err_style, live);
  RunSpec spec;
  spec.source_path = args.workflow;
  spec.input_json = input;
  RunOutcome outcome;
  bool done = false;
  std::string run_id;
  host->runtime().set_listener([&](const RunEvent& ev) {
    if (!args.quiet && !common.json) progress.on_event(ev);
  });
  g_runtime = &host->runtime();
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  auto on_done = [&](const RunOutcome& o) {
    outcome = o;
    done = true;
  };
  if (args.resume_id.empty() && args.fork_id.empty() && args.replay_id.empty()) {
    run_id = host->runtime().start(spec, on_done);
  } else {
    std::string error;
    if (!args.resume_id.empty()) {
      ResumeSpec resume;
      resume.run_id = args.resume_id;
      resume.allow_changed = args.allow_changed;
      resume.retry_failed = args.retry_failed;
      run_id = host->runtime().resume(resume, on_done, &error);
    } else {
      ForkSpec fork;
      fork.run_id = args.fork_id.empty() ? args.replay_id : args.fork_id;
      fork.from_step = args.from_step;
      fork.input_json = input;
      fork.script_path = args.script;
      fork.offline = !args.replay_id.empty();
      run_id = host->runtime().fork(fork, on_done, &error);
    }
    if (run_id.empty()) {
      std::signal(SIGINT, SIG_DFL);
      std::signal(SIGTERM, SIG_DFL);
      g_runtime = nullptr;
      if (common.json) {
        std::string asked = args.resume_id + args.fork_id + args.replay_id;
        std::printf("%s\n", json{{"run_id", asked}, {"error", error}}.dump(2).c_str());
      }
      std::fprintf(stderr, "troupe: %s\n", error.c_str());
      return kUsage;
    }
  }
  int seen_interrupts = 0;
  while (!done) {
    host->loop().run_once(100);
    int n = g_interrupts.load();
    if (n != seen_interrupts) {
      seen_interrupts = n;
      if (n >= 2) {
        std::fprintf(stderr, "troupe: interrupted again, exiting\n");
        g_runtime = nullptr;
        return kInterrupted;
      }
      std::fprintf(stderr, "\ntroupe: interrupted, cancelling run %s (Ctrl-C again to quit)\n",
                   run_id.c_str());
      host->runtime().cancel(run_id, "interrupted by the user (SIGINT)");
    }
  }
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  g_runtime = nullptr;
  if (host->store()) host->store()->flush();
  // The outcome already counts every write of the run up to its final record; a write after it
  // (its run.finished event) that failed is a lost record too, and this command fails with it.
  if (host->store() && outcome.status != "failed" && !host->store()->last_error().empty()) {
    outcome.status = "failed";
    outcome.error = "the journal could not record this run: " + host->store()->last_error();
  }

  // Figures for the summary come from the journal, the same source `troupe show` uses.
  int64_t in_tok = 0, out_tok = 0;
  size_t steps = 0;
  if (host->store()) {
    for (const auto& st : host->store()->get_steps(outcome.run_id)) {
      in_tok += st.input_tokens;
      out_tok += st.output_tokens;
      ++steps;
    }
  }
  int64_t duration = 0;
  if (host->store()) {
    if (auto rec = host->store()->get_run(outcome.run_id)) {
      duration = rec->finished_ms - rec->created_ms;
    }
  }
  if (outcome.status == "waiting") {
    // Parked: nothing of it is left in this process; a worker takes it when it is due.
    int64_t wake = 0;
    if (auto rec = host->store()->get_run(outcome.run_id)) wake = rec->wake_ms;
    if (common.json) {
      std::printf("%s\n", json{{"run_id", outcome.run_id},
                               {"workflow", outcome.workflow},
                               {"status", "waiting"},
                               {"wake_ms", wake},
                               {"steps", steps}}
                              .dump(2)
                              .c_str());
    } else if (!args.quiet) {
      std::fprintf(stderr, "%s\n",
                   err_style
                       .yellow("⏸ waiting until " + format_time(wake) + " · run " +
                               outcome.run_id + " · `troupe worker` resumes it then")
                       .c_str());
    }
    std::fflush(stdout);
    return kOk;
  }
  bool ok = outcome.status == "succeeded";
  // A replay answers one question: does the (edited) script still do what the run did?
  json replay;
  if (!args.replay_id.empty()) {
    auto recorded = host->store()->get_run(args.replay_id);
    bool same = ok && recorded &&
                json::parse(recorded->output_json, nullptr, false) ==
                    json::parse(outcome.output_json, nullptr, false);
    replay = {{"parent", recorded ? recorded->id : args.replay_id},
              {"diverged", !ok},
              {"same_output", same}};
  }
  if (common.json) {
    json out = {{"run_id", outcome.run_id}, {"workflow", outcome.workflow},
                {"status", outcome.status}, {"steps", steps},
                {"input_tokens", in_tok},   {"output_tokens", out_tok},
                {"duration_ms", duration}};
    out["output"] = ok ? json::parse(outcome.output_json, nullptr, false) : json(nullptr);
    if (!outcome.error.empty()) out["error"] = outcome.error;
    if (!replay.is_null()) out["replay"] = replay;
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    if (!replay.is_null()) {
      std::fprintf(stderr, "%s\n",
                   ok ? ("replay of run " + replay["parent"].get<std::string>() +
                         ": no divergence; the output is " +
                         (replay["same_output"].get<bool>() ? "the same" : "different"))
                            .c_str()
                      : ("replay of run " + replay["parent"].get<std::string>() +
                         " diverges: " + one_line(outcome.error, 300))
                            .c_str());
    }
    if (!args.quiet) {
      std::string summary =
          (ok ? err_style.green("✓ " + outcome.status) : err_style.red("✗ " + outcome.status)) +
          " in " + format_ms(static_cast<double>(duration)) + " · " + std::to_string(steps) +
          " steps · " + std::to_string(in_tok) + " → " + std::to_string(out_tok) +
          " tokens · run " + outcome.run_id;
      std::fprintf(stderr, "%s\n", summary.c_str());
    }
    if (ok) {
      json value = json::parse(outcome.output_json, nullptr, false);
      if (value.is_string()) {
        std::printf("%s\n", value.get<std::string>().c_str());
      } else if (!value.is_null()) {
        std::printf("%s\n", value.dump(2).c_str());
      }
    } else {
      std::fprintf(stderr, "%s\n", outcome.error.c_str());
    }
  }
  std::fflush(stdout);
  if (outcome.status == "cancelled" && seen_interrupts > 0) return kInterrupted;
  return ok ? kOk : kRunFailed;
}

}  // namespace troupe::cli
