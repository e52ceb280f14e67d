// config.cpp: parsing and validating troupe.yaml / troupe.json.
#include "config/config.h"

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "config/bounded_read.h"
#include "config/document.h"
#include "config/pricing_file.h"
#include "config/retention.h"

#include "core/utf8.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr uint64_t kMaxMegabytes = 1u << 20;  // 1 TiB
constexpr uint64_t kMaxCallTimeoutS = UINT32_MAX / 1000;

// The largest configuration file read: a troupe.yaml is a few KB.
constexpr uint64_t kMaxConfigBytes = 1u << 20;

// Reads values out of the parsed document; every error names the file, the line and column
// of the key (from the document's marks) and the key's path.
class Reader {
 public:
  Reader(std::string file, const std::map<std::string, TextMark>& marks)
      : file_(std::move(file)), marks_(marks) {}

  [[noreturn]] void fail(const std::string& where, const std::string& what) const {
    auto it = marks_.find(where);
    throw ConfigError(
        format_error(file_, it == marks_.end() ? TextMark{} : it->second, where, what));
  }

  void check_keys(const json& obj, const std::string& where,
                  const std::set<std::string>& known) const {
    for (const auto& [key, value] : obj.items()) {
      if (known.count(key)) continue;
      std::string list;
      for (const auto& k : known)
        list += (list.empty() ? "" : ", ") + k;
      fail(where.empty() ? key : where + "." + key, "unknown setting (known here: " + list + ")");
    }
  }

  std::string string(const json& v, const std::string& where) const {
    if (!v.is_string()) fail(where, std::string("expected a string, got ") + json_type_name(v));
    return v.get<std::string>();
  }

  // An integer in 1..max; a larger one is refused naming the limit, never wrapped.
  uint64_t bounded(const json& v, const std::string& where, uint64_t max,
                   const std::string& why) const {
    if (!v.is_number_integer()) {
      fail(where, std::string("expected a positive integer, got ") + json_type_name(v));
    }
    if (v.is_number_unsigned() ? v.get<uint64_t>() == 0 : v.get<int64_t>() <= 0)
      fail(where, "expected a positive integer, got " + v.dump());
    uint64_t n = v.get<uint64_t>();
    if (n > max) fail(where, v.dump() + " is above the limit of " + std::to_string(max) + why);
    return n;
  }

  const json& object(const json& v, const std::string& where) const {
    if (!v.is_object()) fail(where, std::string("expected a mapping, got ") + json_type_name(v));
    return v;
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
  const std::map<std::string, TextMark>& marks_;
};

std::string relative_to(const std::string& base_dir, const std::string& p) {
  if (p.empty() || fs::path(p).is_absolute() || base_dir.empty()) return p;
  return (fs::path(base_dir) / p).lexically_normal().string();
}

// A number of seconds in 0..a day, as milliseconds.
int64_t seconds_ms(const Reader& r, const json& v, const std::string& where) {
  if (!v.is_number() || !(v.get<double>() >= 0) || v.get<double>() > 86'400)
    r.fail(where, "expected a number of seconds between 0 and 86400, got " + v.dump());
  return static_cast<int64_t>(v.get<double>() * 1000.0 + 0.5);
}

// `retry: {attempts, initial, backoff, max, jitter, non_retryable}`: the default policy of model
// calls, over the built-in one (core/retry_policy.h); seconds, as a workflow writes them.
RetryPolicy read_retry(const Reader& r, const json& v) {
  const json& o = r.object(v, "retry");
  r.check_keys(o, "retry", {"attempts", "initial", "backoff", "max", "jitter", "non_retryable"});
  RetryPolicy p;
  if (o.contains("attempts")) {
    const json& a = o["attempts"];
    if (!a.is_number_integer() || a.get<int64_t>() < 0 || a.get<int64_t>() > 1000)
      r.fail("retry.attempts",
             "expected an integer between 0 (no limit) and 1000, got " + a.dump());
    p.attempts = static_cast<int>(a.get<int64_t>());
  }
  if (o.contains("initial")) {
    p.initial_ms = seconds_ms(r, o["initial"], "retry.initial");
    p.max_ms = std::min<int64_t>(p.initial_ms * 100, 86'400'000);  // Temporal's default
  }
  if (o.contains("max")) p.max_ms = seconds_ms(r, o["max"], "retry.max");
  for (const char* key : {"backoff", "jitter"}) {
    if (!o.contains(key)) continue;
    if (!o[key].is_number()) r.fail(std::string("retry.") + key, "expected a number");
    (std::string(key) == "backoff" ? p.backoff : p.jitter) = o[key].get<double>();
  }
  if (o.contains("non_retryable")) {
    const json& list = o["non_retryable"];
    if (!list.is_array()) r.fail("retry.non_retryable", "expected a list of status names");
    for (size_t i = 0; i < list.size(); ++i)
      p.non_retryable.push_back(
          r.string(list[i], "retry.non_retryable[" + std::to_string(i) + "]"));
  }
  if (std::string wrong = check_retry_policy(p); !wrong.empty()) r.fail("retry", wrong);
  return p;
}

// `pricing:` (entries by "provider/model"), `unknown_model:`, `unknown_price:`.
void read_pricing_config(const Reader& r, const json& doc, PricingConfig* out) {
  PriceFail fail = [&r](const std::string& where, const std::string& what) { r.fail(where, what); };
  if (doc.contains("pricing")) {
    const json& entries = r.object(doc["pricing"], "pricing");
    for (const auto& [ref, price] : entries.items()) {
      std::string where = "pricing." + ref;
      size_t slash = ref.find('/');
      if (slash == std::string::npos || slash == 0 || slash + 1 == ref.size() ||
          ref.find('/', slash + 1) != std::string::npos)
        r.fail(where, "'" + ref + "' must be written as provider/model (e.g. openai/gpt-4o)");
      out->overrides.set(ref.substr(0, slash), ref.substr(slash + 1),
                         read_model_price(price, where, fail, false));
    }
  }
  if (doc.contains("unknown_model")) {
    std::string u = r.string(doc["unknown_model"], "unknown_model");
    if (u == "refuse") {
      out->unknown_model = UnknownModel::refuse;
    } else if (u == "zero") {
      out->unknown_model = UnknownModel::zero;
    } else if (u == "price") {
      out->unknown_model = UnknownModel::price;
    } else {
      r.fail("unknown_model", "expected 'refuse', 'zero' or 'price', got '" + u + "'");
    }
  }
  bool wants_price = out->unknown_model == UnknownModel::price;
  if (doc.contains("unknown_price")) {
    if (!wants_price) r.fail("unknown_price", "is used only with unknown_model: price");
    out->unknown_price = read_model_price(doc["unknown_price"], "unknown_price", fail, false);
  } else if (wants_price) {
    r.fail("unknown_model",
           "'price' needs unknown_price: {input: ..., output: ...} (USD per million tokens)");
  }
}

bool valid_provider_name(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
  }
  return true;
}

Config from_document(const Document& parsed, const std::string& file) {
  const json& doc = parsed.value;
  Reader r(file, parsed.marks);
  Config c;
  c.path = file;
  std::string dir = fs::path(file).parent_path().string();
  if (doc.is_null()) {
    r.fail("", "the file holds only null: write {} for a configuration that keeps every default");
  }
  if (!doc.is_object()) {
    r.fail("", std::string("expected a mapping of settings at the top of the file, got ") +
                   json_type_name(doc));
  }
  r.check_keys(doc, "",
               {"store", "plugin_path", "providers", "fallback_provider", "default_model",
                "durability", "lease_s", "park_after_s", "limits", "http", "retention", "retry",
                "dead_letters", "pricing", "unknown_model", "unknown_price"});
  if (doc.contains("store")) c.store_path = relative_to(dir, r.string(doc["store"], "store"));
  if (doc.contains("plugin_path")) {
    const json& pp = doc["plugin_path"];
    if (pp.is_string()) {
      c.plugin_path.push_back(relative_to(dir, pp.get<std::string>()));
    } else if (pp.is_array()) {
      for (size_t i = 0; i < pp.size(); ++i) {
        c.plugin_path.push_back(
            relative_to(dir, r.string(pp[i], "plugin_path[" + std::to_string(i) + "]")));
      }
    } else {
      r.fail("plugin_path",
             std::string("expected a folder or a list of folders, got ") + json_type_name(pp));
    }
  }
  if (doc.contains("default_model")) {
    c.default_model = r.string(doc["default_model"], "default_model");
    if (c.default_model.find('/') == std::string::npos) {
      r.fail("default_model", "'" + c.default_model + "' must be written as provider/model");
    }
  }
  if (doc.contains("durability")) {
    std::string d = r.string(doc["durability"], "durability");
    if (d == "sync") {
      c.runtime.durability = Durability::sync;
    } else if (d == "async") {
      c.runtime.durability = Durability::async;
    } else {
      r.fail("durability", "expected 'sync' or 'async', got '" + d + "'");
    }
  }
  if (doc.contains("lease_s")) {
    // Whole seconds, at most a day: a longer lease only delays taking over a crashed run.
    c.runtime.lease_ms =
        static_cast<uint32_t>(r.bounded(doc["lease_s"], "lease_s", 86'400, " (a day)") * 1000);
    if (c.runtime.lease_ms == 0) r.fail("lease_s", "a lease of 0 s would expire at once");
  }
  if (doc.contains("park_after_s")) {
    // Up to a year (the longest troupe.sleep): a longer threshold would never park.
    c.runtime.park_after_ms = static_cast<uint32_t>(
        r.bounded(doc["park_after_s"], "park_after_s", 4'000'000, " (about 46 days)") * 1000);
  }
  if (doc.contains("limits")) {
    const json& l = r.object(doc["limits"], "limits");
    r.check_keys(l, "limits",
                 {"max_instructions", "max_memory_mb", "call_timeout_s", "slice_instructions",
                  "max_unyielding_instructions", "max_steps", "max_events", "max_stored_mb",
                  "store_queue_mb"});
    auto& lim = c.runtime.limits;
    // Counts (instructions, steps, events) up to 2^63-1; sizes in MB up to 1 TiB (a bigger
    // one is likely in bytes by mistake, and shifted into bytes it would wrap); the call
    // timeout up to what 32-bit milliseconds hold. Nothing is wrapped or clamped silently.
    auto count = [&](const char* key, uint64_t* out) {
      if (l.contains(key))
        *out = r.bounded(l[key], std::string("limits.") + key, INT64_MAX, " (2^63-1)");
    };
    auto megabytes = [&](const char* key, uint64_t* out) {
      if (l.contains(key)) {
        *out = r.bounded(l[key], std::string("limits.") + key, kMaxMegabytes,
                         " (1 TiB; is it in bytes instead of MB?)")
               << 20;
      }
    };
    count("max_instructions", &lim.max_instructions);
    count("slice_instructions", &lim.slice_instructions);
    count("max_unyielding_instructions", &lim.max_unyielding_instructions);
    count("max_steps", &lim.max_steps);
    count("max_events", &lim.max_events);
    megabytes("max_memory_mb", &lim.max_memory_bytes);
    megabytes("max_stored_mb", &lim.max_stored_bytes);
    megabytes("store_queue_mb", &c.store_options.max_queued_bytes);
    if (l.contains("call_timeout_s")) {
      lim.call_timeout_ms = static_cast<uint32_t>(
          r.bounded(l["call_timeout_s"], "limits.call_timeout_s", kMaxCallTimeoutS,
                    " (about 49 days: the timeout is kept as 32-bit milliseconds)") *
          1000);
    }
  }
  if (doc.contains("http")) {
    const json& h = r.object(doc["http"], "http");
    r.check_keys(h, "http", {"allow", "deny"});
    auto policy = std::make_shared<HttpPolicy>();
    for (const char* list : {"allow", "deny"}) {
      if (!h.contains(list)) continue;
      std::string where = std::string("http.") + list;
      const json& entries = h[list];
      if (!entries.is_array())
        r.fail(where, std::string("expected a list of hosts, addresses and CIDRs, got ") +
                          json_type_name(entries));
      auto& rules = std::string(list) == "allow" ? policy->allow : policy->deny;
      for (size_t i = 0; i < entries.size(); ++i) {
        std::string at = where + "[" + std::to_string(i) + "]";
        std::string text = r.string(entries[i], at);
        try {
          rules.push_back(parse_destination_rule(text));
        } catch (const std::invalid_argument& e) {
          r.fail(at, "'" + text + "': " + e.what());
        }
      }
    }
    c.runtime.http_policy = std::move(policy);
  }
  if (doc.contains("retry")) c.runtime.retry = read_retry(r, doc["retry"]);
  if (doc.contains("dead_letters")) {
    std::string d = r.string(doc["dead_letters"], "dead_letters");
    if (d == "off") {
      c.runtime.dead_letters = DeadLetters::off;
    } else if (d == "retryable") {
      c.runtime.dead_letters = DeadLetters::retryable;
    } else if (d == "all") {
      c.runtime.dead_letters = DeadLetters::all;
    } else {
      r.fail("dead_letters", "expected 'off', 'retryable' or 'all', got '" + d + "'");
    }
  }
  read_pricing_config(r, doc, &c.pricing);
  if (doc.contains("retention")) {
    const json& ret = r.object(doc["retention"], "retention");
    r.check_keys(ret, "retention", {"older_than", "status"});
    if (ret.contains("older_than")) {
      // A string even in YAML ("30d"); a bare number would leave its unit to a guess.
      const json& age = ret["older_than"];
      if (!age.is_string()) {
        r.fail("retention.older_than",
               std::string("expected a duration such as 30d, 12h, 90m or 45s, got ") +
                   json_type_name(age));
      }
      c.retention.older_than = age.get<std::string>();
      try {
        c.retention.older_than_ms = parse_retention_ms(c.retention.older_than);
      } catch (const std::invalid_argument& e) {
        r.fail("retention.older_than", e.what());
      }
    }
    if (ret.contains("status")) {
      const json& statuses = ret["status"];
      if (!statuses.is_array() || statuses.empty()) {
        r.fail("retention.status",
               "expected a list of one or more of succeeded, failed, cancelled");
      }
      for (size_t i = 0; i < statuses.size(); ++i) {
        std::string at = "retention.status[" + std::to_string(i) + "]";
        std::string status = r.string(statuses[i], at);
        try {
          check_retention_status(status);
        } catch (const std::invalid_argument& e) {
          r.fail(at, e.what());
        }
        c.retention.statuses.push_back(std::move(status));
      }
    }
  }
  if (doc.contains("providers")) {
    const json& ps = r.object(doc["providers"], "providers");
    for (const auto& [name, spec] : ps.items()) {
      std::string where = "providers." + name;
      if (!valid_provider_name(name))
        r.fail(where, "provider names may contain letters, digits, '_', '-' and '.'");
      r.object(spec, where);
      r.check_keys(spec, where, {"plugin", "settings", "secrets"});
      ProviderConfig p;
      p.name = name;
      if (!spec.contains("plugin"))
        r.fail(where, "missing 'plugin' (a plugin name such as 'mock', or a path to a .so)");
      p.plugin = r.string(spec["plugin"], where + ".plugin");
      if (p.plugin.find('/') != std::string::npos) p.plugin = relative_to(dir, p.plugin);
      if (spec.contains("settings"))
        p.settings_json = r.object(spec["settings"], where + ".settings").dump();
      if (spec.contains("secrets")) {
        const json& s = r.object(spec["secrets"], where + ".secrets");
        for (const auto& [secret, env] : s.items()) {
          p.secret_env[secret] = r.string(
              env, where + ".secrets." + secret + " (the name of an environment variable)");
        }
      }
      c.providers[name] = std::move(p);
    }
  }
  if (!doc.contains("providers")) {  // nothing about providers: serve them all offline
    c.providers = default_config().providers;
    if (!doc.contains("fallback_provider")) c.fallback_provider = "mock";
  }
  if (doc.contains("fallback_provider")) {
    c.fallback_provider = r.string(doc["fallback_provider"], "fallback_provider");
    if (!c.providers.count(c.fallback_provider)) {
      r.fail("fallback_provider",
             "'" + c.fallback_provider + "' is not one of the configured providers");
    }
  }
  return c;
}

}  // namespace

Config default_config() {
  Config c;
  ProviderConfig mock;
  mock.name = "mock";
  mock.plugin = "mock";
  c.providers["mock"] = mock;
  c.fallback_provider = "mock";
  return c;
}

std::shared_ptr<const Pricing> make_pricing(const Config& c) {
  auto p = std::make_shared<Pricing>();
  p->table = builtin_pricing();
  p->table.merge(c.pricing.overrides);
  p->overrides = c.pricing.overrides;
  p->unknown_model = c.pricing.unknown_model;
  p->unknown_price = c.pricing.unknown_price;
  for (const auto& [name, pc] : c.providers)
    p->plugin_of[name] = plugin_base_name(pc.plugin);
  if (auto it = p->plugin_of.find(c.fallback_provider); it != p->plugin_of.end())
    p->fallback_plugin = it->second;
  return p;
}

Config load_config(const std::string& path) {
  std::string text, error;
  if (!read_bounded(path, kMaxConfigBytes, FileKind::regular, "a configuration file", &text,
                    &error)) {
    throw ConfigError(error);
  }
  DocumentLimits limits;  // 64 levels, 100,000 values: far beyond any real configuration
  Document doc;
  try {
    if (fs::path(path).extension() == ".json") {
      doc = read_json_document(text, limits);
    } else {
      doc = read_yaml_document(text, limits);
    }
  } catch (const DocumentError& e) {
    throw ConfigError(format_error(path, e.mark, e.path, e.what_text));
  }
  return from_document(doc, path);
}

namespace {

std::string env_value(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

// Adds a real vendor provider when its key variable is set: the name models use, the plugin,
// and the variable the key comes from (the key itself stays in the environment). base_var
// names the variable the vendor's own SDK reads a different endpoint from.
void add_keyed_provider(Config& c, const std::string& name, const std::vector<const char*>& vars,
                        const char* base_var) {
  for (const char* var : vars) {
    if (env_value(var).empty()) continue;
    ProviderConfig p;
    p.name = name;
    p.plugin = name;
    p.secret_env["api_key"] = var;
    if (std::string base = env_value(base_var); !base.empty())
      p.settings_json = json{{"base_url", base}}.dump();
    c.providers[name] = std::move(p);
    return;
  }
}

}  // namespace

void add_environment_providers(Config& c) {
  if (!env_value("TROUPE_OFFLINE").empty() && env_value("TROUPE_OFFLINE") != "0") return;
  add_keyed_provider(c, "openai", {"OPENAI_API_KEY"}, "OPENAI_BASE_URL");
  add_keyed_provider(c, "anthropic", {"ANTHROPIC_API_KEY"}, "ANTHROPIC_BASE_URL");
  add_keyed_provider(c, "gemini", {"GEMINI_API_KEY", "GOOGLE_API_KEY"}, "GEMINI_BASE_URL");
  std::string ollama = env_value("OLLAMA_HOST");
  if (!ollama.empty()) {
    // Ollama's own clients accept "host:port" without a scheme.
    if (ollama.find("://") == std::string::npos) ollama = "http://" + ollama;
    ProviderConfig p;
    p.name = "ollama";
    p.plugin = "ollama";
    p.settings_json = json{{"base_url", ollama}}.dump();
    c.providers["ollama"] = std::move(p);
  }
}

Config find_config(const std::string& explicit_path) {
  Config c;
  bool found = false;
  if (!explicit_path.empty()) {
    c = load_config(explicit_path);
    found = true;
  } else if (std::string env = env_value("TROUPE_CONFIG"); !env.empty()) {
    c = load_config(env);
    found = true;
  } else {
    for (const char* name : {"troupe.yaml", "troupe.yml", "troupe.json"}) {
      std::error_code ec;
      if (fs::is_regular_file(name, ec)) {
        c = load_config(name);
        found = true;
        break;
      }
    }
  }
  if (!found) {
    c = default_config();
    add_environment_providers(c);
  }
  if (std::string model = env_value("TROUPE_MODEL"); !model.empty()) {
    if (model.find('/') == std::string::npos || model.front() == '/' || model.back() == '/')
      throw ConfigError("TROUPE_MODEL: '" + model + "' must be written as provider/model");
    c.default_model = model;
  }
  return c;
}

}  // namespace troupe
