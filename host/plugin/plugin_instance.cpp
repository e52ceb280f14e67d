// plugin_instance.cpp: an instance's life (create, owner drop, destroy) and the host-side
// enforcement of the call contract.
//
// Everything a plugin sends back (events, completions) is copied on the calling thread and
// posted onto the loop (host_services.cpp), where the call table lives; so the caller's
// handlers always run on the loop, in the order the plugin produced them, and never inside
// start_call(). Whatever the plugin does wrong is absorbed here and counted.
#include "plugin/plugin_instance.h"

#include <nlohmann/json.hpp>
#include <set>
#include <utility>
#include <vector>

#include "core/log.h"
#include "plugin/abi_values.h"

namespace troupe {
namespace {

// Call ids are unique across every instance of the process (the ABI promises no reuse).
std::atomic<uint64_t> g_next_call_id{1};

// How many finished call ids an instance remembers to name a double completion precisely.
constexpr size_t kRememberFinished = 4096;

// Instances dropped by their owner while the plugin still had calls running: kept here (not
// in a self-cycle, which leak checkers would report) until the plugin completes them.
struct OrphanRegistry {
  std::mutex mutex;
  std::set<std::shared_ptr<PluginInstance>> instances;
};
OrphanRegistry& orphans() {
  static OrphanRegistry* registry = new OrphanRegistry;  // never destroyed: outlives statics
  return *registry;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Creation and destruction

struct PluginInstance::OwnerToken {
  explicit OwnerToken(std::shared_ptr<PluginInstance> held) : instance(std::move(held)) {}
  ~OwnerToken() { instance->release_owner(); }
  std::shared_ptr<PluginInstance> instance;
};

std::shared_ptr<PluginInstance> PluginInstance::create(EventLoop& loop,
                                                       std::shared_ptr<PluginLibrary> library,
                                                       InstanceConfig config) {
  if (!library) throw PluginError("PluginInstance::create: no library");
  if (config.name.empty()) config.name = library->info().name;
  std::shared_ptr<PluginInstance> instance(
      new PluginInstance(loop, std::move(library), std::move(config)));
  instance->create_plugin();
  // The handle shares ownership of a token, not of the instance itself (the aliasing
  // constructor): the token's end is the owner's drop, while the instance lives on for as
  // long as posted work of the plugin needs it.
  auto token = std::make_shared<OwnerToken>(instance);
  return std::shared_ptr<PluginInstance>(token, instance.get());
}

PluginInstance::PluginInstance(EventLoop& loop, std::shared_ptr<PluginLibrary> library,
                               InstanceConfig config)
    : loop_(loop),
      library_(std::move(library)),
      desc_(library_->descriptor()),
      config_(std::move(config)),
      component_("plugin:" + config_.name),
      loop_thread_(std::this_thread::get_id()) {}

PluginInstance::~PluginInstance() = default;

void PluginInstance::create_plugin() {
  const std::string& name = config_.name;
  // Secrets first: anything below (create's error, a log line) must already be redacted.
  for (const auto& [key, value] : config_.secrets)
    log::add_secret(value);

  std::string settings_text = config_.settings_json.empty() ? "{}" : config_.settings_json;
  auto parsed = nlohmann::json::parse(settings_text, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object())
    throw PluginError(name + ": settings are not a JSON object");
  settings_ = std::make_unique<nlohmann::json>(std::move(parsed));

  troupe_str_t error{};
  void* instance = nullptr;
  troupe_status_t status = TROUPE_INTERNAL;
  std::string failure;
  try {
    status =
        desc_.create(host_services_table(), host_handle(), view(settings_text), &instance, &error);
    if (status != TROUPE_OK) {
      std::string message = text(error);  // borrowed: copy before anything else runs
      failure = message.empty() ? "create failed with status " + std::to_string(status)
                                : "create failed: " + message;
    }
  } catch (const std::exception& e) {
    failure = std::string("create threw: ") + e.what();
  } catch (...) {
    failure = "create threw an unknown exception";
  }
  if (!failure.empty()) {
    abandon();
    throw PluginError(log::redact(name + ": " + failure));
  }
  instance_ = instance;
  created_ = true;
  log::debug(component_, "created instance of plugin '" + info().name + "'");
}

void PluginInstance::abandon() {
  destroyed_ = true;  // posted work and callbacks of the failed instance will not run
  for (EventLoop::Id t : timers_)
    loop_.cancel_timer(t);
  timers_.clear();
  for (const auto& [transfer, call] : transfers_)
    loop_.http_cancel(transfer);
}

void PluginInstance::release_owner() {
  if (owner_gone_) return;
  owner_gone_ = true;
  auto keep = shared_from_this();
  // The owner will not see these calls end any more, but the caller's on_complete still
  // runs exactly once: posted, because we are inside a destructor.
  std::vector<uint64_t> ids;
  for (const auto& [id, record] : calls_)
    if (!record.caller_done) ids.push_back(id);
  for (uint64_t id : ids) {
    auto it = calls_.find(id);
    if (it == calls_.end() || it->second.caller_done) continue;
    CallHandlers handlers = abort_call(id, it->second);
    if (handlers.on_complete) {
      CallResult result;
      result.status = TROUPE_CANCELLED;
      result.error = config_.name + ": instance destroyed while the call was in flight";
      loop_.post([on_complete = std::move(handlers.on_complete), result = std::move(result)]() {
        on_complete(result);
      });
    }
  }
  if (calls_.empty()) {
    final_destroy();
  } else {
    log::debug(component_, "instance dropped with " + std::to_string(calls_.size()) +
                               " call(s) in flight; destroy deferred");
    std::lock_guard lock(orphans().mutex);
    orphans().instances.insert(keep);
  }
}

void PluginInstance::final_destroy() {
  if (destroyed_) return;
  auto keep = shared_from_this();
  destroyed_ = true;
  for (EventLoop::Id t : timers_)
    loop_.cancel_timer(t);
  timers_.clear();
  // Their on_complete still comes from the loop; it is dropped because destroyed_ is set.
  for (const auto& [transfer, call] : transfers_)
    loop_.http_cancel(transfer);
  if (created_) guarded(*this, 0, "destroy", [&] { desc_.destroy(instance_); });
  instance_ = nullptr;
  log::debug(component_, "destroyed instance");
  std::lock_guard lock(orphans().mutex);
  orphans().instances.erase(keep);
}

// ---------------------------------------------------------------------------------------
// Calls

uint64_t PluginInstance::start_call(const std::string& operation, const std::string& request_json,
                                    bool stream, uint32_t timeout_ms, CallHandlers handlers) {
  uint64_t id = g_next_call_id.fetch_add(1);
  CallRecord& record = calls_[id];
  record.handlers = std::move(handlers);
  if (timeout_ms > 0) {
    std::weak_ptr<PluginInstance> weak = weak_from_this();
    record.timer = loop_.add_timer(timeout_ms, [weak, id, timeout_ms] {
      if (auto self = weak.lock()) self->on_timeout(id, timeout_ms);
    });
  }
  troupe_call_t call{};
  call.struct_size = sizeof(call);
  call.id = id;
  call.operation = view(operation);
  call.request = view(request_json);
  call.stream = stream;
  call.timeout_ms = timeout_ms;
  auto keep = shared_from_this();  // a reentrant release must not free us mid-call
  try {
    desc_.invoke(instance_, &call);
  } catch (const std::exception& e) {
    on_invoke_threw(id, std::string("invoke threw: ") + e.what());
  } catch (...) {
    on_invoke_threw(id, "invoke threw an unknown exception");
  }
  return id;
}

void PluginInstance::on_invoke_threw(uint64_t call_id, const std::string& what) {
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return;
  violation(call_id, what);
  CallHandlers handlers;
  // The plugin's state for this call is unknown after a throw: do not call its cancel hook.
  if (!it->second.caller_done) handlers = abort_call(call_id, it->second, false);
  // The plugin will not complete a call whose invoke threw: it is no longer in flight.
  calls_.erase(it);
  remember_finished(call_id);
  if (handlers.on_complete) {
    CallResult result;
    result.status = TROUPE_INTERNAL;
    result.error = log::redact(config_.name + ": " + what);
    // We are inside invoke(): the caller hears about it later, from the loop.
    loop_.post([on_complete = std::move(handlers.on_complete), result = std::move(result)]() {
      on_complete(result);
    });
  }
}

CallHandlers PluginInstance::abort_call(uint64_t call_id, CallRecord& record, bool tell_plugin) {
  record.caller_done = true;
  if (record.timer != 0) loop_.cancel_timer(record.timer);
  record.timer = 0;
  CallHandlers handlers = std::move(record.handlers);
  record.handlers = CallHandlers{};
  std::vector<EventLoop::Id> owned;
  for (const auto& [transfer, owner] : transfers_)
    if (owner == call_id) owned.push_back(transfer);
  for (EventLoop::Id transfer : owned)
    loop_.http_cancel(transfer);
  if (tell_plugin && created_ && !destroyed_)
    guarded(*this, call_id, "cancel", [&] { desc_.cancel(instance_, call_id); });
  return handlers;
}

void PluginInstance::cancel_call(uint64_t call_id) {
  auto keep = shared_from_this();
  auto it = calls_.find(call_id);
  if (it == calls_.end() || it->second.caller_done) return;
  CallHandlers handlers = abort_call(call_id, it->second);
  if (handlers.on_complete) {
    CallResult result;
    result.status = TROUPE_CANCELLED;
    result.error = config_.name + ": call cancelled";
    handlers.on_complete(std::move(result));
  }
}

void PluginInstance::on_timeout(uint64_t call_id, uint32_t timeout_ms) {
  auto keep = shared_from_this();
  auto it = calls_.find(call_id);
  if (it == calls_.end() || it->second.caller_done) return;
  it->second.timer = 0;  // this timer has fired
  CallHandlers handlers = abort_call(call_id, it->second);
  log::warn(component_, "call " + std::to_string(call_id) + " timed out after " +
                            std::to_string(timeout_ms) + " ms; cancelled");
  if (handlers.on_complete) {
    CallResult result;
    result.status = TROUPE_TIMEOUT;
    result.error = config_.name + ": call timed out after " + std::to_string(timeout_ms) + " ms";
    result.retryable = true;
    handlers.on_complete(std::move(result));
  }
}

void PluginInstance::on_plugin_event(uint64_t call_id, StreamEvent event) {
  auto it = calls_.find(call_id);
  if (it == calls_.end()) {
    if (recently_finished(call_id))
      violation(call_id, "emitted an event after completing the call");
    else
      violation(call_id, "emitted an event for an unknown call id");
    return;
  }
  // After a cancel or timeout the caller has its answer; late events are legitimate noise.
  if (it->second.caller_done || !it->second.handlers.on_event) return;
  auto on_event = it->second.handlers.on_event;  // a copy: the handler may end the call
  on_event(event);
}

void PluginInstance::on_plugin_complete(uint64_t call_id, CallResult result) {
  auto it = calls_.find(call_id);
  if (it == calls_.end()) {
    if (recently_finished(call_id))
      violation(call_id, "completed the call a second time");
    else
      violation(call_id, "completed an unknown call id");
    return;
  }
  bool deliver = !it->second.caller_done;
  EventLoop::Id timer = it->second.timer;
  CallHandlers handlers = std::move(it->second.handlers);
  calls_.erase(it);
  remember_finished(call_id);
  if (deliver) {
    if (timer != 0) loop_.cancel_timer(timer);
    if (handlers.on_complete) handlers.on_complete(std::move(result));
  }
  // A completion after cancel/timeout is absorbed silently: it only ends "in flight".
  if (owner_gone_ && calls_.empty()) final_destroy();
}

void PluginInstance::remember_finished(uint64_t call_id) {
  finished_order_.push_back(call_id);
  finished_set_.insert(call_id);
  if (finished_order_.size() > kRememberFinished) {
    finished_set_.erase(finished_order_.front());
    finished_order_.pop_front();
  }
}

void PluginInstance::violation(uint64_t call_id, const std::string& what) {
  violations_.fetch_add(1);
  bool first = true;
  {
    std::lock_guard lock(mutex_);
    if (call_id != 0) {
      if (warned_.size() > kRememberFinished) warned_.clear();  // bound the memory
      first = warned_.insert(call_id).second;
    }
  }
  std::string message = "contract violation by plugin '" + info().name + "' (instance '" +
                        config_.name + "'), call " + std::to_string(call_id) + ": " + what +
                        "; ignored";
  if (first)
    log::warn(component_, message);
  else
    log::debug(component_, message);
}

}  // namespace troupe
