// config.h: the host configuration — store, plugin path, providers, limits — from YAML or JSON.
//
// Found in this order: an explicit path (--config), $TROUPE_CONFIG, ./troupe.yaml,
// ./troupe.yml, ./troupe.json; without any, defaults route every provider to the mock plugin
// so workflows run offline. Relative paths inside a file are relative to that file.
// Secrets are never in the file: it names the environment variables that hold them.
//
// `http: { allow: [...], deny: [...] }` is where workflows' troupe.http may connect (not
// provider plugins: their URLs come from this file). Entries are host names ("api.example.com",
// "*.example.com"), addresses and CIDRs ("10.0.0.0/8", "fd00::/8"), each optionally with a
// port ("127.0.0.1:8080", "[::1]:8080"). `deny` refuses what it matches; a non-empty `allow`
// refuses everything it does not match. Link-local addresses and the cloud metadata services
// are always denied; loopback is allowed unless denied here (loop/http_policy.h, decision 0010).
// Reading is strict (docs/decisions/0012-strict-config-and-input.md): a regular file of at
// most 1 MiB; duplicate and unknown keys, values of the wrong type and numbers past a limit
// are errors naming the file, line, column and key; YAML aliases are expanded with a budget
// and may not refer to themselves.
//
// `retry: { attempts: 3, initial: 1, backoff: 2, max: 100, jitter: 0.2, non_retryable: [...] }`
// is how a failed model call is tried again when its agent or call says nothing (seconds);
// `dead_letters: off | retryable | all` which failed runs are kept for `troupe dlq`
// (docs/durability.md).
//
// `pricing: { "openai/gpt-4o": {input: 2.5, output: 10, cached_input: 1.25, ...} }` overrides or
// adds prices (USD per million tokens) to the built-in table (share/pricing.yaml);
// `unknown_model: refuse | zero | price` says what a model the table does not know costs, with
// `unknown_price: {input, output, ...}` for `price` (docs/governance.md).
//
// `retention: { older_than: 30d, status: [failed, cancelled] }` is the default of `troupe gc`:
// ended runs that finished longer ago than `older_than` (a whole number of d, h, m or s) are
// deleted, only those of the listed statuses when `status` is given (config/retention.h).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/pricing.h"
#include "runtime/runtime.h"
#include "store/store.h"

namespace troupe {

// Says what is wrong and where: "<file>:<line>:<col>: providers.openai.plugin: expected a
// string".
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct ProviderConfig {
  std::string name;                               // as models name it: "<name>/<model>"
  std::string plugin;                             // plugin name or path of a .so
  std::string settings_json = "{}";               // handed to the plugin's create()
  std::map<std::string, std::string> secret_env;  // secret name -> environment variable
};

// `retention:` — what `troupe gc` (and Host.gc in Python) deletes when not told otherwise.
struct RetentionConfig {
  std::string older_than;             // as written ("30d"); empty = not set
  int64_t older_than_ms = 0;          // older_than in milliseconds
  std::vector<std::string> statuses;  // `status:`; empty = every ended status
};

// `pricing:`, `unknown_model:`, `unknown_price:` — over the built-in table.
struct PricingConfig {
  PricingTable overrides;  // by the provider and model the entry names
  UnknownModel unknown_model = UnknownModel::zero;
  ModelPrice unknown_price;  // for UnknownModel::price
};

struct Config {
  std::string path;  // the file it came from; empty for defaults
  std::string store_path = ".troupe/troupe.db";
  StoreOptions store_options;  // limits.store_queue_mb: the bound of the store's write queue
  std::vector<std::string> plugin_path;
  std::map<std::string, ProviderConfig> providers;
  // Providers not listed in `providers` are served by this one; empty = unknown is an error.
  std::string fallback_provider;
  std::string default_model = "mock/mock-1";
  RuntimeOptions runtime;
  RetentionConfig retention;
  PricingConfig pricing;
};

// How this configuration prices model calls: the built-in table with the `pricing:` entries over
// it, `unknown_model:`, and which plugin serves each configured provider (and the fallback).
std::shared_ptr<const Pricing> make_pricing(const Config& c);

// The configuration with nothing configured: every provider name served by the mock plugin.
Config default_config();

// Parses a file (JSON when it ends in .json, else YAML, which accepts JSON too). An empty file
// is an error (`{}` keeps every default). Throws ConfigError.
Config load_config(const std::string& path);

// Without a configuration file, real vendors are used for the keys the environment holds:
// OPENAI_API_KEY -> openai, ANTHROPIC_API_KEY -> anthropic, GEMINI_API_KEY (or GOOGLE_API_KEY)
// -> gemini, OLLAMA_HOST -> ollama; OPENAI_BASE_URL, ANTHROPIC_BASE_URL and GEMINI_BASE_URL
// point a vendor elsewhere, as the vendors' SDKs do. Every other provider name stays on the mock.
// TROUPE_OFFLINE=1 turns this off.
void add_environment_providers(Config& c);

// Applies the search order above (and add_environment_providers() when no file is found).
// $TROUPE_MODEL, when set, replaces default_model. explicit_path may be empty.
Config find_config(const std::string& explicit_path);

}  // namespace troupe
