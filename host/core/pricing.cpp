// pricing.cpp: the pricing table's lookup and the cost of a call (pricing.h).
#include "core/pricing.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace troupe {

double cost_usd(const ModelPrice& price, const TokenUsage& u) {
  const TokenPrices& p =
      price.tier_above > 0 && u.input > price.tier_above ? price.tier : price.base;
  auto or_else = [](double given, double fallback) { return given >= 0 ? given : fallback; };
  int64_t input = std::max<int64_t>(u.input, 0);
  int64_t cached = std::clamp<int64_t>(u.cached_input, 0, input);
  int64_t writes = std::clamp<int64_t>(u.cache_write, 0, input - cached);
  int64_t uncached = input - cached - writes;
  int64_t output = std::max<int64_t>(u.output, 0);
  int64_t reasoning = std::clamp<int64_t>(u.reasoning, 0, output);
  double micro = static_cast<double>(uncached) * p.input +
                 static_cast<double>(cached) * or_else(p.cached_input, p.input) +
                 static_cast<double>(writes) * or_else(p.cache_write, p.input) +
                 static_cast<double>(output - reasoning) * p.output +
                 static_cast<double>(reasoning) * or_else(p.reasoning, p.output);
  return micro / 1e6;
}

void PricingTable::set(const std::string& provider, const std::string& model, ModelPrice price) {
  entries_[provider][model] = std::move(price);
}

void PricingTable::merge(const PricingTable& other) {
  for (const auto& [provider, models] : other.entries_)
    for (const auto& [model, price] : models)
      entries_[provider][model] = price;
}

const ModelPrice* PricingTable::exact(const std::string& provider, const std::string& model) const {
  auto p = entries_.find(provider);
  if (p == entries_.end()) return nullptr;
  auto m = p->second.find(model);
  return m == p->second.end() ? nullptr : &m->second;
}

const ModelPrice* PricingTable::find(const std::string& provider, const std::string& model,
                                     std::string* matched) const {
  auto p = entries_.find(provider);
  if (p == entries_.end()) return nullptr;
  const auto& models = p->second;
  // The model itself, then each shorter prefix ending before a '-'.
  for (size_t end = model.size(); end > 0;) {
    auto m = models.find(model.substr(0, end));
    if (m != models.end()) {
      if (matched) *matched = m->first;
      return &m->second;
    }
    size_t dash = model.rfind('-', end - 1);
    if (dash == std::string::npos || dash == 0) break;
    end = dash;
  }
  if (auto any = models.find("*"); any != models.end()) {
    if (matched) *matched = any->first;
    return &any->second;
  }
  return nullptr;
}

size_t PricingTable::size() const {
  size_t n = 0;
  for (const auto& [provider, models] : entries_)
    n += models.size();
  return n;
}

Pricing::Match Pricing::find(const std::string& model_ref) const {
  Match out;
  size_t slash = model_ref.find('/');
  if (slash == std::string::npos) return out;
  std::string provider = model_ref.substr(0, slash);
  std::string model = model_ref.substr(slash + 1);
  std::string plugin = provider;
  if (auto it = plugin_of.find(provider); it != plugin_of.end()) {
    plugin = it->second;
  } else if (!fallback_plugin.empty()) {
    plugin = fallback_plugin;
  }
  // The instance's own configured entries first; the plugin's win only with a longer match.
  std::string own_model, plugin_model;
  const ModelPrice* own = overrides.find(provider, model, &own_model);
  const ModelPrice* by_plugin = table.find(plugin, model, &plugin_model);
  auto rank = [](const std::string& m) { return m == "*" ? 0 : m.size(); };
  if (own && (!by_plugin || rank(own_model) >= rank(plugin_model))) {
    out.price = own;
    out.entry = provider + "/" + own_model;
  } else if (by_plugin) {
    out.price = by_plugin;
    out.entry = plugin + "/" + plugin_model;
  }
  return out;
}

std::string plugin_base_name(const std::string& plugin) {
  std::string name = plugin;
  if (size_t slash = name.find_last_of('/'); slash != std::string::npos)
    name = name.substr(slash + 1);
  if (name.size() > 3 && name.compare(name.size() - 3, 3, ".so") == 0) name.resize(name.size() - 3);
  return name;
}

std::string format_usd(double usd) {
  char buf[48];
  if (usd == 0) return "$0";
  // Four significant digits for cheap calls, cents and their fraction otherwise.
  if (std::fabs(usd) < 0.01) {
    std::snprintf(buf, sizeof buf, "$%.6f", usd);
  } else {
    std::snprintf(buf, sizeof buf, "$%.4f", usd);
  }
  return buf;
}

}  // namespace troupe
