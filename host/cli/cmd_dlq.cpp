// cmd_dlq.cpp: `troupe dlq list|show|discard` — the dead letters: failed runs kept for a person
// (config `dead_letters:`). `troupe dlq replay RUN` re-drives one through cmd_run (a resume that
// tries its failed step again); see docs/durability.md.
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "api/run_json.h"
#include "cli/commands.h"
#include "cli/term.h"
#include "store/store.h"

namespace troupe::cli {
namespace {

using nlohmann::json;

// The run a prefix names and its dead letter; prints why not and returns nullopt.
std::optional<DeadLetterRecord> find_dead_letter(const Store& store, const std::string& prefix) {
  auto run = find_run(store, prefix);
  if (!run) return std::nullopt;
  auto dead = store.get_dead_letter(run->id);
  if (!dead) {
    std::fprintf(stderr, "troupe: run %s is not a dead letter (it is %s)\n", run->id.c_str(),
                 run->status.c_str());
  }
  return dead;
}

}  // namespace

int cmd_dlq_list(const Common& common, int limit) {
  auto store = open_store(common);
  if (!store) return kUsage;
  auto dead = store->dead_letters(limit);
  if (common.json) {
    json out = json::array();
    for (const auto& d : dead)
      out.push_back(dead_letter_json(d));
    std::printf("%s\n", out.dump(2).c_str());
    return kOk;
  }
  if (dead.empty()) {
    std::printf("no dead letters\n");
    return kOk;
  }
  Style s = style_for(STDOUT_FILENO);
  std::vector<std::vector<std::string>> rows = {
      {"RUN", "WORKFLOW", "FAILED", "REASON", "STEP", "ATTEMPTS", "ERROR"}};
  for (const auto& d : dead) {
    rows.push_back({d.run_id, d.workflow, format_time(d.dead_ms), d.reason,
                    d.step_key.empty() ? "-" : d.step_key,
                    d.attempts ? std::to_string(d.attempts) : "-", one_line(d.error, 60)});
  }
  print_table(rows, s);
  return kOk;
}

int cmd_dlq_show(const Common& common, const std::string& run_id) {
  auto store = open_store(common);
  if (!store) return kUsage;
  auto dead = find_dead_letter(*store, run_id);
  if (!dead) return kUsage;
  std::vector<AttemptRecord> attempts = store->get_attempts(dead->run_id);
  if (common.json) {
    std::printf("%s\n", dead_letter_json(*dead, &attempts).dump(2).c_str());
    return kOk;
  }
  Style s = style_for(STDOUT_FILENO);
  std::printf("%s %s\n", s.bold("dead letter").c_str(), dead->run_id.c_str());
  std::printf("  workflow  %s\n", dead->workflow.c_str());
  std::printf("  failed    %s\n", format_time(dead->dead_ms).c_str());
  std::printf("  reason    %s\n", dead->reason.c_str());
  if (!dead->step_key.empty()) {
    std::printf("  step      %s (%d attempt%s)\n", dead->step_key.c_str(), dead->attempts,
                dead->attempts == 1 ? "" : "s");
  }
  for (const auto& a : attempts) {
    if (a.step_key != dead->step_key) continue;
    std::printf("    attempt %d  %s: %s  (waited %s)\n", a.attempt, a.status.c_str(),
                one_line(a.error, 100).c_str(), format_ms(static_cast<double>(a.delay_ms)).c_str());
  }
  std::printf("\n%s\n%s\n", s.bold(s.red("error")).c_str(), dead->error.c_str());
  std::printf("\nre-drive it with: troupe dlq replay %s\n", dead->run_id.c_str());
  return kOk;
}

int cmd_dlq_discard(const Common& common, const std::string& run_id) {
  try {
    auto store = Store::open(store_path_for(common));
    auto dead = find_dead_letter(*store, run_id);
    if (!dead) return kUsage;
    bool dropped = store->discard_dead_letter(dead->run_id);
    if (common.json) {
      std::printf("%s\n", json{{"run_id", dead->run_id}, {"discarded", dropped}}.dump(2).c_str());
    } else {
      std::printf("dead letter %s discarded (the run and its journal stay until gc)\n",
                  dead->run_id.c_str());
    }
    return kOk;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe: %s\n", e.what());
    return kUsage;
  }
}

}  // namespace troupe::cli
