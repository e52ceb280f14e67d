// cmd_outside.cpp: what the world outside a run tells it — `troupe signal RUN NAME`, `troupe
// approvals [RUN]` (pending ones) and `troupe approve RUN [KEY] --choice C` (the first decision
// wins). Each writes into the store; the run's process, or a worker for a parked run, picks it up.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/term.h"
#include "config/input.h"
#include "store/store.h"

namespace troupe::cli {
namespace {

using nlohmann::json;

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

json approval_json(const ApprovalRecord& a) {
  json out = {{"run_id", a.run_id},
              {"key", a.step_key},
              {"request", json::parse(a.request_json, nullptr, false)},
              {"requested_ms", a.requested_ms},
              {"deadline_ms", a.deadline_ms}};
  if (!a.choice.empty()) {
    out["decision"] = {{"choice", a.choice},
                       {"by", a.decided_by},
                       {"comment", a.comment},
                       {"at", a.decided_ms},
                       {"defaulted", a.defaulted}};
  }
  return out;
}

// The store for writing, and the run a prefix names; prints why not and returns null.
std::unique_ptr<Store> open_for_run(const Common& common, const std::string& prefix,
                                    RunRecord* run) {
  try {
    auto store = Store::open(store_path_for(common));
    auto found = store->get_run(prefix);
    if (!found) {
      std::fprintf(stderr, "troupe: no run with id '%s'\n", prefix.c_str());
      return nullptr;
    }
    *run = *found;
    return store;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe: %s\n", e.what());
    return nullptr;
  }
}

}  // namespace

int cmd_signal(const Common& common, const SignalArgs& args) {
  std::string data = "null";
  try {
    if (!args.data.empty()) data = read_input_argument(args.data);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe: --data: %s\n", e.what());
    return kUsage;
  }
  RunRecord run;
  auto store = open_for_run(common, args.run_id, &run);
  if (!store) return kUsage;
  if (run.status == "succeeded" || run.status == "failed" || run.status == "cancelled") {
    std::fprintf(stderr, "troupe: run %s has ended (%s): nothing will take the signal\n",
                 run.id.c_str(), run.status.c_str());
    return kRunFailed;
  }
  try {
    int64_t seq = store->send_signal(run.id, args.name, data, now_ms());
    if (common.json) {
      std::printf("%s\n",
                  json{{"run_id", run.id}, {"name", args.name}, {"seq", seq}}.dump(2).c_str());
    } else {
      std::printf("signal %s sent to run %s\n", args.name.c_str(), run.id.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe: %s\n", e.what());
    return kRunFailed;
  }
  return kOk;
}

int cmd_approvals(const Common& common, const std::string& run_prefix) {
  std::unique_ptr<Store> store;
  std::string run_id;
  try {
    store = Store::open_readonly(store_path_for(common));
    if (!run_prefix.empty()) {
      auto run = store->get_run(run_prefix);
      if (!run) {
        std::fprintf(stderr, "troupe: no run with id '%s'\n", run_prefix.c_str());
        return kUsage;
      }
      run_id = run->id;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe: %s\n", e.what());
    return kUsage;
  }
  auto pending = store->pending_approvals(run_id, 1000);
  if (common.json) {
    json out = json::array();
    for (const auto& a : pending)
      out.push_back(approval_json(a));
    std::printf("%s\n", out.dump(2).c_str());
    return kOk;
  }
  Style s = style_for(STDOUT_FILENO);
  std::vector<std::vector<std::string>> rows = {{"RUN", "KEY", "TITLE", "CHOICES", "DEADLINE"}};
  for (const auto& a : pending) {
    json request = json::parse(a.request_json, nullptr, false);
    std::string choices;
    if (request.is_object() && request.contains("choices")) {
      for (const auto& c : request["choices"])
        choices += (choices.empty() ? "" : "|") + c.get<std::string>();
    }
    rows.push_back({a.run_id, a.step_key,
                    request.is_object() ? one_line(request.value("title", ""), 40) : "", choices,
                    a.deadline_ms ? format_time(a.deadline_ms) : "-"});
  }
  print_table(rows, s);
  return kOk;
}

int cmd_approve(const Common& common, const ApproveArgs& args) {
  RunRecord run;
  auto store = open_for_run(common, args.run_id, &run);
  if (!store) return kUsage;
  std::string key = args.key;
  if (key.empty()) {
    auto pending = store->pending_approvals(run.id, 100);
    if (pending.size() != 1) {
      std::fprintf(stderr, "troupe: run %s has %zu pending approvals: name one by its key%s\n",
                   run.id.c_str(), pending.size(),
                   pending.empty() ? "" : " (troupe approvals RUN lists them)");
      return kUsage;
    }
    key = pending[0].step_key;
  }
  auto current = store->get_approval(run.id, key);
  if (!current) {
    std::fprintf(stderr, "troupe: run %s has no approval %s\n", run.id.c_str(), key.c_str());
    return kUsage;
  }
  json request = json::parse(current->request_json, nullptr, false);
  bool known = false;
  if (request.is_object() && request.contains("choices")) {
    for (const auto& c : request["choices"])
      known = known || c == args.choice;
  }
  if (!known) {
    std::fprintf(
        stderr, "troupe: '%s' is not one of the choices %s\n", args.choice.c_str(),
        request.is_object() ? request.value("choices", json::array()).dump().c_str() : "[]");
    return kUsage;
  }
  std::string by = args.by;
  if (by.empty()) by = std::getenv("USER") ? std::getenv("USER") : "someone";
  std::optional<ApprovalRecord> after;
  try {
    after = store->decide_approval(run.id, key, args.choice, by, args.comment, now_ms(), false);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe: %s\n", e.what());
    return kRunFailed;
  }
  bool mine = after && after->choice == args.choice && after->decided_by == by && !after->defaulted;
  if (common.json) {
    json out = approval_json(*after);
    out["decided_now"] = mine;
    std::printf("%s\n", out.dump(2).c_str());
  } else if (mine) {
    std::printf("approval %s of run %s: %s\n", key.c_str(), run.id.c_str(), args.choice.c_str());
  } else {
    std::fprintf(stderr, "troupe: approval %s of run %s was already decided: %s by %s\n",
                 key.c_str(), run.id.c_str(), after->choice.c_str(), after->decided_by.c_str());
  }
  return mine ? kOk : kRunFailed;
}

}  // namespace troupe::cli
