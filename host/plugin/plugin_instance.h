// plugin_instance.h: one live plugin instance, its host services and its in-flight calls.
//
// This is where the ABI's promises are enforced on the host side: every call completes
// exactly once on the loop thread whatever the plugin does (completes twice, completes from
// a foreign thread, completes after cancel, never completes, throws); events and completions
// arriving from other threads are marshalled onto the loop; secrets are kept in the host.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>

#include "loop/event_loop.h"
#include "plugin/plugin_library.h"
#include "troupe/plugin.h"

namespace troupe {

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

// One configured instance of a plugin: the plugin's opaque `troupe_host_t*` is this object.
//
// Ownership: create() returns an owner handle. Posted closures, timers and transfers of the
// plugin hold the instance too, so the plugin's host pointer and its library stay valid until
// its destroy() has run. When the last owner handle is dropped, calls still in flight complete
// their handlers with TROUPE_CANCELLED (posted) and destroy() runs once the plugin has
// completed them all (at once when none is in flight); until then an orphan registry keeps it.
//
// Threading: the loop thread (the thread that called create()) unless a member says "any
// thread". The loop must outlive the instance; drop owner handles on the loop thread.
class PluginInstance : public std::enable_shared_from_this<PluginInstance> {
 public:
  // Calls the plugin's create() on the loop thread (the caller's). Throws PluginError with
  // the plugin's message when create fails or throws. An empty config.name becomes the
  // plugin's name.
  static std::shared_ptr<PluginInstance> create(EventLoop& loop,
                                                std::shared_ptr<PluginLibrary> library,
                                                InstanceConfig config);
  ~PluginInstance();
  PluginInstance(const PluginInstance&) = delete;
  PluginInstance& operator=(const PluginInstance&) = delete;

  const InstanceConfig& config() const { return config_; }
  const PluginInfo& info() const { return library_->info(); }

  // Starts a call: the host's side of the plugin's invoke hook. on_complete runs exactly
  // once, always later on the loop (never inside start_call), also when the plugin
  // misbehaves: a call the plugin does not complete within timeout_ms (0 = no deadline)
  // completes with TROUPE_TIMEOUT. Returns the call id (unique in the process).
  uint64_t start_call(const std::string& operation, const std::string& request_json, bool stream,
                      uint32_t timeout_ms, CallHandlers handlers);

  // Cancels a call: tells the plugin and completes the caller's handlers with
  // TROUPE_CANCELLED at once (on_complete runs before cancel_call returns). The plugin's own
  // (late) completion is then absorbed. Unknown or finished ids are ignored.
  void cancel_call(uint64_t call_id);

  // Number of calls the plugin has not completed yet (cancelled ones included).
  size_t calls_in_flight() const { return calls_.size(); }
  // Contract violations seen so far (double completion, unknown call ids, throws, ...). Any
  // thread.
  size_t contract_violations() const { return violations_.load(); }

  // --- The host services behind troupe_host_api_t (host_services.cpp); the C table's
  // entries forward here. See plugin.h for the contract of each.
  static PluginInstance* from(troupe_host_t* host) {
    return reinterpret_cast<PluginInstance*>(host);
  }
  void service_log(troupe_log_level_t level, troupe_str_t message);                 // any thread
  troupe_status_t service_config_get(troupe_str_t key, troupe_str_t* out);          // any thread
  troupe_status_t service_secret_get(troupe_str_t name, troupe_str_t* out);         // any thread
  void service_emit(troupe_call_id_t call, const troupe_event_t* event);            // any thread
  void service_complete(troupe_call_id_t call, const troupe_completion_t* result);  // any thread
  troupe_status_t service_http_start(troupe_call_id_t call, const troupe_http_request_t* request,
                                     const troupe_http_callbacks_t* callbacks,
                                     troupe_handle_t* out_handle);
  void service_http_cancel(troupe_handle_t transfer);
  troupe_handle_t service_timer_start(uint64_t delay_ms, void (*fn)(void*), void* user_data);
  bool service_timer_cancel(troupe_handle_t timer);
  troupe_status_t service_post(void (*fn)(void*), void* user_data);  // any thread

  // Counts a broken promise of the plugin and warns (once per call id). Any thread.
  void violation(uint64_t call_id, const std::string& what);

 private:
  struct CallRecord {
    CallHandlers handlers;
    EventLoop::Id timer = 0;   // the deadline timer, 0 = none
    bool caller_done = false;  // on_complete delivered (or posted) to the caller
  };
  // Held by every owner handle; its end is the owner's drop (see create()).
  struct OwnerToken;

  PluginInstance(EventLoop& loop, std::shared_ptr<PluginLibrary> library, InstanceConfig config);
  troupe_host_t* host_handle() { return reinterpret_cast<troupe_host_t*>(this); }
  bool on_loop_thread() const { return std::this_thread::get_id() == loop_thread_; }
  // Parses the settings, registers the secrets and runs the plugin's create(). Throws
  // PluginError.
  void create_plugin();
  void release_owner();  // the last owner handle is gone
  // Ends the caller's side of a call early (cancel, timeout, owner gone): stops the deadline
  // and the call's transfers and (tell_plugin) calls the plugin's cancel hook. Returns the
  // handlers the caller must now be completed through.
  CallHandlers abort_call(uint64_t call_id, CallRecord& record, bool tell_plugin = true);
  void on_timeout(uint64_t call_id, uint32_t timeout_ms);
  void on_plugin_event(uint64_t call_id, StreamEvent event);
  void on_plugin_complete(uint64_t call_id, CallResult result);
  void on_invoke_threw(uint64_t call_id, const std::string& what);
  void remember_finished(uint64_t call_id);
  bool recently_finished(uint64_t call_id) const { return finished_set_.count(call_id) != 0; }
  void final_destroy();  // runs the plugin's destroy() once
  void abandon();        // create() failed: drop host resources without calling destroy()
  bool substitute_secrets(std::string& value, std::string& missing) const;

  EventLoop& loop_;
  std::shared_ptr<PluginLibrary> library_;
  const troupe_plugin_descriptor_t& desc_;
  InstanceConfig config_;
  std::string component_;  // "plugin:<instance name>", the log component
  std::unique_ptr<nlohmann::json> settings_;
  std::thread::id loop_thread_;

  void* instance_ = nullptr;  // the plugin's own instance pointer
  bool created_ = false;
  bool destroyed_ = false;
  bool owner_gone_ = false;

  std::map<uint64_t, CallRecord> calls_;  // calls the plugin has not completed yet
  // Recently finished call ids, to tell "completed twice" from "unknown id" (bounded).
  std::deque<uint64_t> finished_order_;
  std::unordered_set<uint64_t> finished_set_;
  std::map<EventLoop::Id, uint64_t> transfers_;  // active transfer -> owning call (0 = none)
  std::set<EventLoop::Id> timers_;               // timers the plugin started

  std::mutex mutex_;  // guards config_cache_ and warned_ (touched from any thread)
  std::map<std::string, std::string> config_cache_;
  std::unordered_set<uint64_t> warned_;
  std::atomic<size_t> violations_{0};
};

// The one static C table handed to every plugin's create() (host_services.cpp).
const troupe_host_api_t* host_services_table();

}  // namespace troupe
