// provider_registry.cpp: lazy creation of provider instances from the configuration.
#include "api/provider_registry.h"

#include <cstdlib>

#include "core/log.h"

namespace troupe {

ProviderRegistry::ProviderRegistry(EventLoop& loop, const Config& config,
                                   std::vector<std::string> search_path)
    : loop_(loop), config_(config), search_path_(std::move(search_path)) {
  // Every configured key is a secret from the start, not only once its provider is first used:
  // a run that never calls that provider must not be able to print it either (decision 0013).
  for (const auto& [name, pc] : config_.providers)
    for (const auto& [secret, env] : pc.secret_env)
      if (const char* value = std::getenv(env.c_str()); value != nullptr) log::add_secret(value);
}

ProviderRegistry::~ProviderRegistry() = default;

std::shared_ptr<PluginInstance> ProviderRegistry::provider(const std::string& requested,
                                                           std::string* error) {
  std::string name = requested;
  auto cfg = config_.providers.find(name);
  if (cfg == config_.providers.end()) {
    if (config_.fallback_provider.empty()) {
      std::string known;
      for (const auto& [n, p] : config_.providers)
        known += (known.empty() ? "" : ", ") + n;
      *error = "unknown provider '" + requested + "'" +
               (config_.path.empty() ? "" : " (not in " + config_.path + ")") +
               "; configured providers: " + (known.empty() ? "none" : known);
      return nullptr;
    }
    name = config_.fallback_provider;
    cfg = config_.providers.find(name);
    if (fallback_noted_.insert(requested).second) {
      log::info("providers", "provider '" + requested + "' is not configured: served by '" + name +
                                 "' (configure it in troupe.yaml, or set its API key)");
    }
  }
  if (auto it = instances_.find(name); it != instances_.end()) return it->second;
  if (auto it = failures_.find(name); it != failures_.end()) {
    *error = it->second;
    return nullptr;
  }
  const ProviderConfig& pc = cfg->second;
  try {
    InstanceConfig ic;
    ic.name = pc.name;
    ic.settings_json = pc.settings_json;
    for (const auto& [secret, env] : pc.secret_env) {
      const char* value = std::getenv(env.c_str());
      if (value == nullptr || *value == '\0') {
        throw PluginError("provider '" + pc.name + "': secret '" + secret +
                          "' needs the environment variable " + env + ", which is not set");
      }
      ic.secrets[secret] = value;
      log::add_secret(value);
    }
    auto library = PluginLibrary::load(find_plugin(pc.plugin, search_path_));
    auto instance = PluginInstance::create(loop_, std::move(library), std::move(ic));
    instances_[name] = instance;
    return instance;
  } catch (const std::exception& e) {
    failures_[name] = e.what();
    *error = e.what();
    return nullptr;
  }
}

}  // namespace troupe
