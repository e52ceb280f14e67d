// pricing.h: what a model call costs — the pricing table (per provider and model, USD per
// million tokens), the lookup of a model in it and the cost of a call's usage.
//
// The built-in table is data (share/pricing.yaml, embedded at build time and read by
// config/pricing_file.h); the configuration's `pricing:` entries override or add to it, and
// `unknown_model:` says what a model the table does not know costs (docs/governance.md).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace troupe {

// Prices in USD per million tokens. A negative price is "not given": cached input and cache
// writes then cost the input price, reasoning the output price.
struct TokenPrices {
  double input = 0;
  double output = 0;
  double cached_input = -1;  // cache reads
  double cache_write = -1;
  double reasoning = -1;
};

// One model's entry in the table.
struct ModelPrice {
  TokenPrices base;
  // A higher tier for long prompts (Gemini 2.5 Pro above 200k): when a call's input tokens are
  // more than tier_above, the whole call is priced at `tier`. 0: no tier.
  int64_t tier_above = 0;
  TokenPrices tier;
  std::string source;  // the vendor's pricing page
  std::string as_of;   // the month the figures are from ("2026-06")
};

// A call's final usage, as the normalized response reports it: input includes cached_input and
// cache_write; output includes reasoning.
struct TokenUsage {
  int64_t input = 0;
  int64_t output = 0;
  int64_t cached_input = 0;
  int64_t cache_write = 0;
  int64_t reasoning = 0;
};

// The cost in USD: uncached input at the input price, cached input at the cached price, cache
// writes at the cache-write price, output less reasoning at the output price, reasoning at the
// reasoning price; all over 1e6. Counts that do not add up (more cached than input) are clamped
// so no part is negative.
double cost_usd(const ModelPrice& price, const TokenUsage& usage);

// What an unknown model costs (config `unknown_model:`).
enum class UnknownModel {
  refuse,  // the call fails before it is sent
  zero,    // the call is made and flagged unpriced (its cost is not known, not $0)
  price,   // the call is priced at `unknown_price`
};

// The table: provider (a plugin name such as "openai", or a configured provider's own name for
// an override) -> model -> price. The model "*" prices every model of its provider (ollama,
// mock).
class PricingTable {
 public:
  void set(const std::string& provider, const std::string& model, ModelPrice price);
  // Adds every entry of `other`, replacing the entries it names.
  void merge(const PricingTable& other);
  // The entry of exactly this provider and model, or null.
  const ModelPrice* exact(const std::string& provider, const std::string& model) const;
  // The best entry of one provider for a model: the model itself, else the longest known model
  // that is a prefix of it ending at a '-' ("gpt-4o-2024-08-06" -> "gpt-4o"), else "*". Sets
  // *matched to the entry's model name.
  const ModelPrice* find(const std::string& provider, const std::string& model,
                         std::string* matched = nullptr) const;
  size_t size() const;
  const std::map<std::string, std::map<std::string, ModelPrice>>& entries() const {
    return entries_;
  }

 private:
  std::map<std::string, std::map<std::string, ModelPrice>> entries_;
};

// How a model call is priced: by the table, with its configuration. A provider instance is
// priced by its plugin (`openai-eu` with plugin `openai` uses the openai entries; a provider
// served by the mock costs what the mock costs); a configured entry under the instance's own
// name (`openai-eu/gpt-4o`) wins over the plugin's when both match as well.
struct Pricing {
  PricingTable table;      // by plugin name: the built-in table with the configured entries
  PricingTable overrides;  // the configured entries, by the provider name they were written with
  UnknownModel unknown_model = UnknownModel::zero;
  ModelPrice unknown_price;  // for UnknownModel::price
  // Configured provider name -> the plugin serving it; names not here are served by
  // fallback_plugin (when not empty) or priced under their own name.
  std::map<std::string, std::string> plugin_of;
  std::string fallback_plugin;

  struct Match {
    const ModelPrice* price = nullptr;  // null: unknown model
    std::string entry;                  // "provider/model" of the entry used
  };
  // The price of "provider/model" (model_ref as a workflow writes it); price is null when
  // neither the instance's own entries nor its plugin's know the model.
  Match find(const std::string& model_ref) const;
};

// The plugin name of a configured plugin: "openai" for "openai", "libfoo" for "/x/libfoo.so".
std::string plugin_base_name(const std::string& plugin);

// "$0.0123": a cost for people, with enough digits to show a cheap call.
std::string format_usd(double usd);

}  // namespace troupe
