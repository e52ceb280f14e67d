// host_context.h: the per-instance state behind troupe_host_t (internal to host/plugin).
//
// One HostContext per plugin instance. The plugin sees it as its opaque troupe_host_t*; the
// C function table in host_api.cpp forwards every host callback to the api_* members here.
// It is shared_ptr-owned: the PluginInstance, every posted closure and (after the instance is
// dropped with calls still running) the orphan registry hold it, so the plugin's host pointer
// and its library stay valid until the plugin's destroy() has run.
//
// Threading: members marked "any thread" may be called from plugin threads; everything else
// runs on the loop thread (the thread that called create()).
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <set>
#include <string>
#include <thread>
#include <unordered_set>

#include "loop/event_loop.h"
#include "plugin/plugin_instance.h"
#include "troupe/plugin.h"

namespace troupe {

// The one static C table handed to every plugin's create().
const troupe_host_api_t* host_api_table();

class HostContext : public std::enable_shared_from_this<HostContext> {
 public:
  HostContext(EventLoop& loop, std::shared_ptr<PluginLibrary> library, InstanceConfig config);
  ~HostContext();
  HostContext(const HostContext&) = delete;
  HostContext& operator=(const HostContext&) = delete;

  troupe_host_t* host() { return reinterpret_cast<troupe_host_t*>(this); }
  static HostContext* from(troupe_host_t* host) { return reinterpret_cast<HostContext*>(host); }

  // Parses the settings, registers the secrets and runs the plugin's create(). Throws
  // PluginError. Loop thread.
  void create_plugin();

  // The PluginInstance side (loop thread).
  uint64_t start_call(const std::string& operation, const std::string& request_json, bool stream,
                      uint32_t timeout_ms, CallHandlers handlers);
  void cancel_call(uint64_t call_id);
  void release_owner();  // the PluginInstance is gone
  size_t calls_in_flight() const { return calls_.size(); }
  size_t contract_violations() const { return violations_.load(); }
  const InstanceConfig& config() const { return config_; }
  const PluginInfo& info() const { return library_->info(); }

  // Host services (see troupe_host_api_t for the contract of each).
  void api_log(troupe_log_level_t level, troupe_str_t message);                 // any thread
  troupe_status_t api_config_get(troupe_str_t key, troupe_str_t* out);          // any thread
  troupe_status_t api_secret_get(troupe_str_t name, troupe_str_t* out);         // any thread
  void api_emit(troupe_call_id_t call, const troupe_event_t* event);            // any thread
  void api_complete(troupe_call_id_t call, const troupe_completion_t* result);  // any thread
  troupe_status_t api_http_start(troupe_call_id_t call, const troupe_http_request_t* request,
                                 const troupe_http_callbacks_t* callbacks,
                                 troupe_handle_t* out_handle);
  void api_http_cancel(troupe_handle_t transfer);
  troupe_handle_t api_timer_start(uint64_t delay_ms, void (*fn)(void*), void* user_data);
  bool api_timer_cancel(troupe_handle_t timer);
  troupe_status_t api_post(void (*fn)(void*), void* user_data);  // any thread

  // Counts a broken promise of the plugin and warns (once per call id). Any thread.
  void violation(uint64_t call_id, const std::string& what);

 private:
  struct CallRecord {
    CallHandlers handlers;
    EventLoop::Id timer = 0;   // the deadline timer, 0 = none
    bool caller_done = false;  // on_complete delivered (or posted) to the caller
  };

  bool on_loop_thread() const { return std::this_thread::get_id() == loop_thread_; }
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
  void final_destroy();  // runs the plugin's destroy() once; loop thread
  void abandon();        // create() failed: drop host resources without calling destroy()
  bool substitute_secrets(std::string& value, std::string& missing) const;

  EventLoop& loop_;
  std::shared_ptr<PluginLibrary> library_;
  const troupe_plugin_descriptor_t& desc_;
  InstanceConfig config_;
  std::string component_;  // "plugin:<instance name>", the log component
  std::unique_ptr<nlohmann::json> settings_;
  std::thread::id loop_thread_;

  void* instance_ = nullptr;
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

}  // namespace troupe
