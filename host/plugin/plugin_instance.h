// plugin_instance.h: one live plugin instance, its host services and its in-flight calls.
//
// This is where the ABI's promises are enforced on the host side: every call completes
// exactly once on the loop thread whatever the plugin does (completes twice, completes from
// a foreign thread, completes after cancel, never completes, throws); events and completions
// arriving from other threads are marshalled onto the loop; secrets are kept in the host.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "plugin/plugin_library.h"
#include "troupe/plugin.h"

namespace troupe {

class EventLoop;

struct InstanceConfig {
  std::string name;                            // instance name, e.g. "openai" or "fast-mock"
  std::string settings_json;                   // a JSON object handed to create() and config_get()
  std::map<std::string, std::string> secrets;  // name -> value, e.g. "api_key" -> "sk-..."
};

// A stream event copied out of the plugin (see troupe_event_t).
struct StreamEvent {
  troupe_event_type_t type = 0;
  int32_t index = 0;
  std::string text;
  std::string tool_id;
  std::string tool_name;
  std::string json;
};

struct CallResult {
  troupe_status_t status = TROUPE_OK;
  std::string result_json;  // OK
  std::string error;        // not OK; secrets redacted
  bool retryable = false;
  uint32_t retry_after_ms = 0;
};

struct CallHandlers {
  std::function<void(const StreamEvent&)> on_event;  // loop thread; only before on_complete
  std::function<void(CallResult)> on_complete;       // loop thread; exactly once
};

class PluginInstance {
 public:
  // Calls the plugin's create() on the loop thread (the caller's). Throws PluginError with
  // the plugin's message when create fails or throws. An empty config.name becomes the
  // plugin's name. The loop must outlive the instance.
  static std::shared_ptr<PluginInstance> create(EventLoop& loop,
                                                std::shared_ptr<PluginLibrary> library,
                                                InstanceConfig config);
  // Drop the last reference on the loop thread. Calls still in flight complete their
  // handlers with TROUPE_CANCELLED (posted); the plugin's destroy() runs once the plugin has
  // completed them all (at once when none is in flight).
  virtual ~PluginInstance() = default;

  virtual const InstanceConfig& config() const = 0;
  virtual const PluginInfo& info() const = 0;

  // Starts a call. Loop thread. on_complete runs exactly once, always later on the loop
  // (never inside invoke), also when the plugin misbehaves: a call the plugin does not
  // complete within timeout_ms (0 = no deadline) completes with TROUPE_TIMEOUT.
  virtual uint64_t invoke(const std::string& operation, const std::string& request_json,
                          bool stream, uint32_t timeout_ms, CallHandlers handlers) = 0;

  // Cancels a call: tells the plugin and completes the caller's handlers with
  // TROUPE_CANCELLED at once (on_complete runs before cancel returns). The plugin's own
  // (late) completion is then absorbed. Loop thread. Unknown or finished ids are ignored.
  virtual void cancel(uint64_t call_id) = 0;

  // Number of calls the plugin has not completed yet (cancelled ones included).
  virtual size_t calls_in_flight() const = 0;
  // Contract violations seen so far (double completion, unknown call ids, throws, ...).
  virtual size_t contract_violations() const = 0;
};

}  // namespace troupe
