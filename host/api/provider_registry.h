// provider_registry.h: "provider/model" -> a live plugin instance, created on first use.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "plugin/plugin_instance.h"
#include "runtime/runtime.h"

namespace troupe {

class EventLoop;

class ProviderRegistry : public ProviderResolver {
 public:
  ProviderRegistry(EventLoop& loop, const Config& config, std::vector<std::string> search_path);
  ~ProviderRegistry() override;

  // Loads the plugin and creates the instance the first time a provider is named. A failure
  // is remembered, so a broken plugin is reported the same way for every call.
  std::shared_ptr<PluginInstance> provider(const std::string& name, std::string* error) override;

 private:
  EventLoop& loop_;
  const Config& config_;
  std::vector<std::string> search_path_;
  std::map<std::string, std::shared_ptr<PluginInstance>> instances_;
  std::map<std::string, std::string> failures_;
  std::set<std::string> fallback_noted_;  // names already reported as served by the fallback
};

}  // namespace troupe
