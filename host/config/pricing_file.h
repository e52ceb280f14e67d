// pricing_file.h: the pricing table as data — share/pricing.yaml, embedded into the host at
// build time — and the reader of one model's prices, shared with the configuration's
// `pricing:` and `unknown_price:` (core/pricing.h, docs/governance.md).
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "core/pricing.h"

namespace troupe {

// Reports a problem at a key path ("pricing.openai/gpt-4o.input") and does not return.
using PriceFail = std::function<void(const std::string& where, const std::string& what)>;

// One model's prices: {input, output, cached_input, cache_write, reasoning, above_input_tokens,
// above: {...}, source, as_of}; input and output are required, every price is a number of USD
// per million tokens, at least 0; with_source: source and as_of are required too (the table).
ModelPrice read_model_price(const nlohmann::json& v, const std::string& where,
                            const PriceFail& fail, bool with_source);

// Parses a pricing table in the format of share/pricing.yaml; `name` is the file name errors
// start with. Throws ConfigError ("<name>:<line>:<col>: openai.gpt-4o.input: ...").
PricingTable read_pricing_table(const std::string& yaml_text, const std::string& name);

// The built-in table (share/pricing.yaml as built into this binary), parsed once.
const PricingTable& builtin_pricing();

// The text of share/pricing.yaml as built into this binary.
const char* builtin_pricing_yaml();

}  // namespace troupe
