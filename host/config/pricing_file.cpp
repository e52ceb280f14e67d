// pricing_file.cpp: reading the pricing table and one model's prices (pricing_file.h).
#include "config/pricing_file.h"

#include <set>

#include "config/config.h"
#include "config/document.h"

namespace troupe {

using nlohmann::json;

namespace {

const std::set<std::string> kPriceKeys = {"input", "output", "cached_input", "cache_write",
                                          "reasoning"};

double read_usd(const json& v, const std::string& where, const PriceFail& fail) {
  if (!v.is_number() || !(v.get<double>() >= 0) || v.get<double>() > 1'000'000)
    fail(where, "expected a price in USD per million tokens (a number from 0 to 1000000), got " +
                    v.dump());
  return v.get<double>();
}

TokenPrices read_prices(const json& o, const std::string& where, const PriceFail& fail) {
  TokenPrices p;
  for (const char* key : {"input", "output"}) {
    if (!o.contains(key))
      fail(where, std::string("missing '") + key + "' (USD per million tokens)");
  }
  p.input = read_usd(o["input"], where + ".input", fail);
  p.output = read_usd(o["output"], where + ".output", fail);
  if (o.contains("cached_input"))
    p.cached_input = read_usd(o["cached_input"], where + ".cached_input", fail);
  if (o.contains("cache_write"))
    p.cache_write = read_usd(o["cache_write"], where + ".cache_write", fail);
  if (o.contains("reasoning")) p.reasoning = read_usd(o["reasoning"], where + ".reasoning", fail);
  return p;
}

void check_keys(const json& o, const std::string& where, const std::set<std::string>& known,
                const PriceFail& fail) {
  for (const auto& [key, value] : o.items()) {
    if (known.count(key)) continue;
    std::string list;
    for (const auto& k : known)
      list += (list.empty() ? "" : ", ") + k;
    fail(where + "." + key, "unknown setting (known here: " + list + ")");
  }
}

}  // namespace

ModelPrice read_model_price(const json& v, const std::string& where, const PriceFail& fail,
                            bool with_source) {
  if (!v.is_object())
    fail(where, std::string("expected a mapping of prices, got ") + json_type_name(v));
  std::set<std::string> known = kPriceKeys;
  known.insert({"above_input_tokens", "above", "source", "as_of"});
  check_keys(v, where, known, fail);
  ModelPrice m;
  m.base = read_prices(v, where, fail);
  if (v.contains("above_input_tokens") != v.contains("above"))
    fail(where, "a higher tier needs both 'above_input_tokens' and 'above'");
  if (v.contains("above")) {
    const json& t = v["above_input_tokens"];
    if (!t.is_number_integer() || t.get<int64_t>() <= 0)
      fail(where + ".above_input_tokens",
           "expected a positive whole number of tokens, got " + t.dump());
    m.tier_above = t.get<int64_t>();
    const json& above = v["above"];
    if (!above.is_object())
      fail(where + ".above",
           std::string("expected a mapping of prices, got ") + json_type_name(above));
    check_keys(above, where + ".above", kPriceKeys, fail);
    m.tier = read_prices(above, where + ".above", fail);
  }
  for (const char* key : {"source", "as_of"}) {
    if (!v.contains(key)) {
      if (with_source)
        fail(where, std::string("missing '") + key +
                        (std::string(key) == "source" ? "' (the vendor's pricing page)"
                                                      : "' (the month of the figures, YYYY-MM)"));
      continue;
    }
    if (!v[key].is_string())
      fail(where + "." + key, std::string("expected a string, got ") + json_type_name(v[key]));
    (std::string(key) == "source" ? m.source : m.as_of) = v[key].get<std::string>();
  }
  return m;
}

PricingTable read_pricing_table(const std::string& yaml_text, const std::string& name) {
  Document doc;
  try {
    doc = read_yaml_document(yaml_text, DocumentLimits{});
  } catch (const DocumentError& e) {
    throw ConfigError(format_error(name, e.mark, e.path, e.what_text));
  }
  PriceFail fail = [&](const std::string& where, const std::string& what) {
    auto it = doc.marks.find(where);
    throw ConfigError(
        format_error(name, it == doc.marks.end() ? TextMark{} : it->second, where, what));
  };
  if (!doc.value.is_object()) fail("", "expected a mapping of providers");
  PricingTable table;
  for (const auto& [provider, models] : doc.value.items()) {
    if (!models.is_object())
      fail(provider, std::string("expected a mapping of models, got ") + json_type_name(models));
    for (const auto& [model, price] : models.items())
      table.set(provider, model, read_model_price(price, provider + "." + model, fail, true));
  }
  return table;
}

const PricingTable& builtin_pricing() {
  static const PricingTable table = read_pricing_table(builtin_pricing_yaml(), "pricing.yaml");
  return table;
}

}  // namespace troupe
