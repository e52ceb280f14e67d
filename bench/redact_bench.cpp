// redact_bench.cpp: the cost of secret redaction (host/core/redact.cpp, decision 0013) on text
// without secrets — what every delta, event and stored row pays — for 1 to 64 registered keys,
// next to the per-secret substring loop it replaced (whole secrets only, no escaped forms).
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "core/log.h"

namespace {

// A provider-like key: a prefix and 48 random letters and digits, the same for every run.
std::string key(int i) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  std::mt19937 rng(static_cast<unsigned>(i) + 1);
  std::string k = "sk-proj-";
  for (int c = 0; c < 48; ++c)
    k += alphabet[rng() % 62];
  return k;
}

// 4 KiB of a model's answer: prose, code and JSON, without any secret.
std::string answer() {
  const std::string piece =
      "The function reads the config, then calls `parse_settings(path)` and returns "
      "{\"status\": \"ok\", \"items\": [1, 2, 3]} when every key is valid; otherwise it logs "
      "a warning.\n";
  std::string text;
  while (text.size() < 4096)
    text += piece;
  text.resize(4096);
  return text;
}

std::vector<std::string> g_keys;

void register_keys(int n) {
  while (static_cast<int>(g_keys.size()) < n) {
    g_keys.push_back(key(static_cast<int>(g_keys.size())));
    troupe::log::add_secret(g_keys.back());
  }
}

void BM_Redact(benchmark::State& state) {
  register_keys(static_cast<int>(state.range(0)));
  const std::string text = answer();
  for (auto _ : state)
    benchmark::DoNotOptimize(troupe::log::redact(text));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}

// The answer as 24-byte deltas through one stream redactor.
void BM_StreamDeltas(benchmark::State& state) {
  register_keys(static_cast<int>(state.range(0)));
  const std::string text = answer();
  for (auto _ : state) {
    troupe::log::StreamRedactor r;
    for (size_t at = 0; at < text.size(); at += 24)
      benchmark::DoNotOptimize(r.feed(std::string_view(text).substr(at, 24)));
    benchmark::DoNotOptimize(r.finish());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}

// Before decision 0013: one find() loop per whole secret.
void BM_SubstringLoop(benchmark::State& state) {
  register_keys(static_cast<int>(state.range(0)));
  const std::string text = answer();
  for (auto _ : state) {
    std::string out(text);
    for (const auto& secret : g_keys) {
      for (size_t pos = out.find(secret); pos != std::string::npos; pos = out.find(secret, pos)) {
        out.replace(pos, secret.size(), "[REDACTED]");
        pos += 10;
      }
    }
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}

// Registered keys only accumulate, and benchmarks run in this order: all three with 1 key,
// then with 4, then with 64.
BENCHMARK(BM_Redact)->Arg(1);
BENCHMARK(BM_StreamDeltas)->Arg(1);
BENCHMARK(BM_SubstringLoop)->Arg(1);
BENCHMARK(BM_Redact)->Arg(4);
BENCHMARK(BM_StreamDeltas)->Arg(4);
BENCHMARK(BM_SubstringLoop)->Arg(4);
BENCHMARK(BM_Redact)->Arg(64);
BENCHMARK(BM_StreamDeltas)->Arg(64);
BENCHMARK(BM_SubstringLoop)->Arg(64);

}  // namespace

BENCHMARK_MAIN();
