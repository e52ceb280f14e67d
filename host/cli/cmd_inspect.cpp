// cmd_inspect.cpp: `troupe runs`, `troupe show`, `troupe events` — reading the store.
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "api/run_json.h"
#include "cli/commands.h"
#include "cli/term.h"
#include "config/config.h"
#include "core/pricing.h"
#include "store/store.h"

namespace troupe::cli {

std::unique_ptr<Store> open_store(const Common& common) {
  std::string path;
  try {
    path = store_path_for(common);
    return Store::open_readonly(path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe: %s\n", e.what());
    if (!path.empty())
      std::fprintf(stderr, "troupe: no runs yet? `troupe run WORKFLOW.lua` records them there\n");
    return nullptr;
  }
}

std::optional<RunRecord> find_run(const Store& store, const std::string& id) {
  try {
    auto run = store.get_run(id);
    if (!run) std::fprintf(stderr, "troupe: no run with id '%s'\n", id.c_str());
    return run;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe: %s\n", e.what());
    return std::nullopt;
  }
}

namespace {

using nlohmann::json;

std::string status_cell(const std::string& status, const Style& s) {
  if (status == "succeeded") return s.green(status);
  if (status == "failed") return s.red(status);
  if (status == "running") return s.cyan(status);
  return s.yellow(status);
}

// Orders step keys the way the run executed them: "2" < "3.1/1" < "3.2/1" < "10".
bool key_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2])))
        ++i2;
      while (j2 < b.size() && std::isdigit(static_cast<unsigned char>(b[j2])))
        ++j2;
      long long x = std::stoll(a.substr(i, i2 - i)), y = std::stoll(b.substr(j, j2 - j));
      if (x != y) return x < y;
      i = i2;
      j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

// A run's total: "$0.0123", and how many calls had no price ("$0.0123 + 2 unpriced calls").
std::string run_cost(double usd, int64_t unpriced) {
  std::string text = format_usd(usd);
  if (unpriced > 0)
    text +=
        " + " + std::to_string(unpriced) + (unpriced == 1 ? " unpriced call" : " unpriced calls");
  return text;
}

}  // namespace

Config config_for(const Common& common) {
  Config config = find_config(common.config_path);
  if (!common.store_path.empty()) config.store_path = common.store_path;
  return config;
}

std::string store_path_for(const Common& common) {
  if (!common.store_path.empty()) return common.store_path;
  return find_config(common.config_path).store_path;
}

int cmd_runs(const Common& common, const ListArgs& args) {
  try {  // no store yet is no error for a listing: there are simply no runs
    std::string path = store_path_for(common);
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      if (common.json) {
        std::printf("[]\n");
      } else {
        std::printf("no runs yet (%s does not exist; `troupe run WORKFLOW.lua` creates it)\n",
                    path.c_str());
      }
      return kOk;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe: %s\n", e.what());
    return kUsage;
  }
  auto store = open_store(common);
  if (!store) return kUsage;
  RunFilter filter;
  filter.limit = args.limit;
  filter.status = args.status;
  filter.workflow = args.workflow;
  auto runs = store->list_runs(filter);
  if (common.json) {
    json out = json::array();
    for (const auto& r : runs)
      out.push_back(run_json(r));
    std::printf("%s\n", out.dump(2).c_str());
    return kOk;
  }
  Style s = style_for(STDOUT_FILENO);
  std::vector<std::vector<std::string>> rows = {
      {"RUN", "WORKFLOW", "STATUS", "STARTED", "DURATION", "COST", "ERROR"}};
  for (const auto& r : runs) {
    rows.push_back(
        {r.id, r.workflow, status_cell(r.status, s), format_time(r.created_ms),
         r.finished_ms ? format_ms(static_cast<double>(r.finished_ms - r.created_ms)) : "-",
         run_cost(r.cost_usd, r.unpriced_steps), one_line(r.error, 60)});
  }
  if (runs.empty()) {
    std::printf("no runs yet\n");
  } else {
    print_table(rows, s);
  }
  return kOk;
}

int cmd_show(const Common& common, const std::string& id) {
  auto store = open_store(common);
  if (!store) return kUsage;
  auto run = find_run(*store, id);
  if (!run) return kUsage;
  auto steps = store->get_steps(run->id);
  std::sort(steps.begin(), steps.end(), [](const StepRecord& a, const StepRecord& b) {
    return key_less(a.step_key, b.step_key);
  });
  std::vector<AttemptRecord> attempts = store->get_attempts(run->id);
  if (common.json) {
    json out = run_json(*run);
    out["steps"] = steps_json(steps, attempts);
    std::printf("%s\n", out.dump(2).c_str());
    return kOk;
  }
  Style s = style_for(STDOUT_FILENO);
  int64_t in_tok = 0, out_tok = 0;
  for (const auto& st : steps) {
    in_tok += st.input_tokens;
    out_tok += st.output_tokens;
  }
  std::printf("%s %s\n", s.bold("run").c_str(), run->id.c_str());
  std::printf("  workflow  %s (%s)\n", run->workflow.c_str(), run->source.c_str());
  std::printf("  status    %s\n", status_cell(run->status, s).c_str());
  std::printf("  started   %s\n", format_time(run->created_ms).c_str());
  if (run->finished_ms) {
    std::printf("  duration  %s\n",
                format_ms(static_cast<double>(run->finished_ms - run->created_ms)).c_str());
  }
  std::printf("  tokens    %lld in, %lld out, %zu steps\n", static_cast<long long>(in_tok),
              static_cast<long long>(out_tok), steps.size());
  std::printf("  cost      %s\n", run_cost(run->cost_usd, run->unpriced_steps).c_str());
  std::printf("  input     %s\n", one_line(run->input_json, 100).c_str());
  if (!steps.empty()) {
    std::printf("\n");
    std::vector<std::vector<std::string>> rows = {
        {"STEP", "KIND", "AGENT", "MODEL", "STATUS", "LATENCY", "TOKENS IN→OUT", "COST"}};
    for (const auto& st : steps) {
      rows.push_back({st.step_key, st.kind, st.agent.empty() ? "-" : st.agent,
                      st.model.empty() ? "-" : st.model, status_cell(st.status, s),
                      format_ms(static_cast<double>(st.latency_us) / 1000.0),
                      st.kind == "chat" ? std::to_string(st.input_tokens) + " → " +
                                              std::to_string(st.output_tokens)
                                        : "-",
                      st.cost_usd   ? format_usd(*st.cost_usd)
                      : st.unpriced ? s.yellow("unpriced")
                                    : "-"});
      for (const AttemptRecord& a : attempts) {
        if (a.step_key != st.step_key) continue;
        rows.push_back({"", "",
                        s.yellow("attempt " + std::to_string(a.attempt) + ": " +
                                 one_line(a.status + ": " + a.error, 80) + ", then " +
                                 format_ms(static_cast<double>(a.delay_ms)) + " wait")});
      }
      if (st.attempts > 1) {
        rows.push_back({"", "",
                        s.dim("attempt " + std::to_string(st.attempts) + ": " + st.status +
                              " (the step's outcome)")});
      }
      if (!st.error.empty()) rows.push_back({"", "", s.red("error: " + one_line(st.error, 100))});
    }
    print_table(rows, s);
  }
  std::printf("\n");
  if (run->status == "succeeded") {
    json out = stored_json(run->output_json);
    std::printf("%s\n%s\n", s.bold("output").c_str(),
                out.is_string() ? out.get<std::string>().c_str() : out.dump(2).c_str());
  } else if (!run->error.empty()) {
    std::printf("%s\n%s\n", s.bold(s.red("error")).c_str(), run->error.c_str());
  }
  return kOk;
}

int cmd_events(const Common& common, const std::string& id, bool follow) {
  auto store = open_store(common);
  if (!store) return kUsage;
  auto run = find_run(*store, id);
  if (!run) return kUsage;
  Style s = style_for(STDOUT_FILENO);
  int64_t after = 0;
  bool finished = false;
  int polls_after_end = 0;  // polls since the run was seen ended without its run.finished
  while (true) {
    auto events = store->get_events(run->id, after, 1000);
    for (const auto& ev : events) {
      after = ev.seq;
      if (ev.type == "run.finished") finished = true;
      if (common.json) {
        std::printf("%s\n", event_json(ev).dump().c_str());
      } else {
        std::printf("%s  %s %s %s\n", s.dim(format_time(ev.ts_ms)).c_str(),
                    s.cyan(pad(ev.type, 14)).c_str(), pad(ev.step_key, 8).c_str(),
                    one_line(ev.data_json, 160).c_str());
      }
    }
    std::fflush(stdout);
    if (!follow || finished) break;
    if (events.empty()) {
      auto current = store->get_run(run->id);
      // Queued, running and waiting runs go on; an interrupted one may be resumed later, but
      // nothing drives it now.
      bool over = current && current->status != "running" && current->status != "queued" &&
                  current->status != "waiting";
      if (over) {
        // The run ended (or was interrupted). Its run.finished event may commit a moment after the
        // status (the writer can split them across two transactions): give it a few polls, then
        // stop.
        if (store->get_events(run->id, after, 1).empty() && ++polls_after_end > 5) break;
        if (polls_after_end == 0) continue;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }
  return kOk;
}

}  // namespace troupe::cli
