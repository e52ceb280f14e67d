// plugin_instance.cpp: plugin instances and the host-side enforcement of the call contract.
//
// Everything a plugin sends back (events, completions) is copied on the calling thread and
// posted onto the loop, where the call table lives; so the caller's handlers always run on the
// loop, in the order the plugin produced them, and never inside invoke(). Whatever the plugin
// does wrong is absorbed here and counted.
#include "plugin/plugin_instance.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>
#include <vector>

#include "core/log.h"
#include "plugin/host_context.h"

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
  std::set<std::shared_ptr<HostContext>> contexts;
};
OrphanRegistry& orphans() {
  static OrphanRegistry* registry = new OrphanRegistry;  // never destroyed: outlives statics
  return *registry;
}

std::string text(troupe_str_t s) {
  if (s.ptr == nullptr || s.len == 0) return std::string();
  return std::string(s.ptr, s.len);
}

troupe_str_t view(const std::string& s) {
  return troupe_str_t{s.data(), s.size()};
}

// Size-prefix rule for structs the plugin hands in: copy what it declared, zero the rest.
template <typename T>
T read_struct(const T* in) {
  T out{};
  std::memcpy(&out, in, std::min<size_t>(in->struct_size, sizeof(T)));
  return out;
}

// Runs a plugin callback, turning an escaping exception into a contract violation.
template <typename Fn>
void guarded(HostContext& ctx, uint64_t call_id, const char* what, Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    ctx.violation(call_id, std::string(what) + " threw: " + e.what());
  } catch (...) {
    ctx.violation(call_id, std::string(what) + " threw an unknown exception");
  }
}

class PluginInstanceImpl final : public PluginInstance {
 public:
  explicit PluginInstanceImpl(std::shared_ptr<HostContext> ctx) : ctx_(std::move(ctx)) {}
  ~PluginInstanceImpl() override { ctx_->release_owner(); }

  const InstanceConfig& config() const override { return ctx_->config(); }
  const PluginInfo& info() const override { return ctx_->info(); }
  uint64_t invoke(const std::string& operation, const std::string& request_json, bool stream,
                  uint32_t timeout_ms, CallHandlers handlers) override {
    return ctx_->start_call(operation, request_json, stream, timeout_ms, std::move(handlers));
  }
  void cancel(uint64_t call_id) override { ctx_->cancel_call(call_id); }
  size_t calls_in_flight() const override { return ctx_->calls_in_flight(); }
  size_t contract_violations() const override { return ctx_->contract_violations(); }

 private:
  std::shared_ptr<HostContext> ctx_;
};

}  // namespace

// ---------------------------------------------------------------------------------------
// Creation and destruction

std::shared_ptr<PluginInstance> PluginInstance::create(EventLoop& loop,
                                                       std::shared_ptr<PluginLibrary> library,
                                                       InstanceConfig config) {
  if (!library) throw PluginError("PluginInstance::create: no library");
  if (config.name.empty()) config.name = library->info().name;
  auto ctx = std::make_shared<HostContext>(loop, std::move(library), std::move(config));
  ctx->create_plugin();
  return std::make_shared<PluginInstanceImpl>(std::move(ctx));
}

HostContext::HostContext(EventLoop& loop, std::shared_ptr<PluginLibrary> library,
                         InstanceConfig config)
    : loop_(loop),
      library_(std::move(library)),
      desc_(library_->descriptor()),
      config_(std::move(config)),
      component_("plugin:" + config_.name),
      loop_thread_(std::this_thread::get_id()) {}

HostContext::~HostContext() = default;

void HostContext::create_plugin() {
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
    status = desc_.create(host_api_table(), host(), view(settings_text), &instance, &error);
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

void HostContext::abandon() {
  destroyed_ = true;  // posted work and callbacks of the failed instance will not run
  for (EventLoop::Id t : timers_)
    loop_.cancel_timer(t);
  timers_.clear();
  for (const auto& [transfer, call] : transfers_)
    loop_.http_cancel(transfer);
}

void HostContext::release_owner() {
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
    orphans().contexts.insert(keep);
  }
}

void HostContext::final_destroy() {
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
  orphans().contexts.erase(keep);
}

// ---------------------------------------------------------------------------------------
// Calls

uint64_t HostContext::start_call(const std::string& operation, const std::string& request_json,
                                 bool stream, uint32_t timeout_ms, CallHandlers handlers) {
  uint64_t id = g_next_call_id.fetch_add(1);
  CallRecord& record = calls_[id];
  record.handlers = std::move(handlers);
  if (timeout_ms > 0) {
    std::weak_ptr<HostContext> weak = weak_from_this();
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

void HostContext::on_invoke_threw(uint64_t call_id, const std::string& what) {
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

CallHandlers HostContext::abort_call(uint64_t call_id, CallRecord& record, bool tell_plugin) {
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

void HostContext::cancel_call(uint64_t call_id) {
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

void HostContext::on_timeout(uint64_t call_id, uint32_t timeout_ms) {
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

void HostContext::on_plugin_event(uint64_t call_id, StreamEvent event) {
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

void HostContext::on_plugin_complete(uint64_t call_id, CallResult result) {
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

void HostContext::remember_finished(uint64_t call_id) {
  finished_order_.push_back(call_id);
  finished_set_.insert(call_id);
  if (finished_order_.size() > kRememberFinished) {
    finished_set_.erase(finished_order_.front());
    finished_order_.pop_front();
  }
}

void HostContext::violation(uint64_t call_id, const std::string& what) {
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

// ---------------------------------------------------------------------------------------
// Host services: any thread

void HostContext::api_log(troupe_log_level_t level, troupe_str_t message) {
  log::Level lvl = log::Level::info;
  switch (level) {
    case TROUPE_LOG_DEBUG:
      lvl = log::Level::debug;
      break;
    case TROUPE_LOG_INFO:
      lvl = log::Level::info;
      break;
    case TROUPE_LOG_WARN:
      lvl = log::Level::warn;
      break;
    case TROUPE_LOG_ERROR:
      lvl = log::Level::error;
      break;
    default:
      lvl = log::Level::warn;
      break;
  }
  log::write(lvl, component_, text(message));  // write() redacts registered secrets
}

troupe_status_t HostContext::api_config_get(troupe_str_t key, troupe_str_t* out) {
  if (out == nullptr) return TROUPE_INVALID_ARGUMENT;
  std::string k = text(key);
  std::lock_guard lock(mutex_);
  auto cached = config_cache_.find(k);
  if (cached == config_cache_.end()) {
    const nlohmann::json* value = nullptr;
    auto found = settings_->find(k);
    if (found != settings_->end()) {
      value = &*found;
    } else if (!k.empty() && k[0] == '/') {  // a JSON pointer reaches nested settings
      try {
        value = &settings_->at(nlohmann::json::json_pointer(k));
      } catch (const nlohmann::json::exception&) {
        value = nullptr;
      }
    }
    if (value == nullptr || value->is_null()) return TROUPE_NOT_FOUND;
    std::string rendered = value->is_string() ? value->get<std::string>() : value->dump();
    // std::map nodes never move: the string stays put until the context dies (after destroy).
    cached = config_cache_.emplace(k, std::move(rendered)).first;
  }
  *out = view(cached->second);
  return TROUPE_OK;
}

troupe_status_t HostContext::api_secret_get(troupe_str_t name, troupe_str_t* out) {
  if (out == nullptr) return TROUPE_INVALID_ARGUMENT;
  auto it = config_.secrets.find(text(name));  // never modified after create: no lock
  if (it == config_.secrets.end()) return TROUPE_NOT_FOUND;
  *out = view(it->second);
  return TROUPE_OK;
}

void HostContext::api_emit(troupe_call_id_t call, const troupe_event_t* event) {
  if (event == nullptr) {
    violation(call, "emit with a NULL event");
    return;
  }
  troupe_event_t e = read_struct(event);
  StreamEvent copy;
  copy.type = e.type;
  copy.index = e.index;
  copy.text = text(e.text);
  copy.tool_id = text(e.tool_id);
  copy.tool_name = text(e.tool_name);
  copy.json = text(e.json);
  loop_.post([self = shared_from_this(), call, copy = std::move(copy)]() mutable {
    self->on_plugin_event(call, std::move(copy));
  });
}

void HostContext::api_complete(troupe_call_id_t call, const troupe_completion_t* completion) {
  CallResult result;
  if (completion == nullptr) {
    violation(call, "complete with a NULL completion");
    result.status = TROUPE_INTERNAL;
    result.error = config_.name + ": plugin completed the call without a completion";
  } else {
    troupe_completion_t c = read_struct(completion);
    result.status = c.status;
    result.result_json = text(c.result);
    result.error = log::redact(text(c.error_message));
    result.retryable = c.retryable;
    result.retry_after_ms = c.retry_after_ms;
    if (c.status < TROUPE_OK || c.status > TROUPE_INTERNAL) {
      violation(call, "completed with unknown status " + std::to_string(c.status));
      result.status = TROUPE_INTERNAL;
    }
    if (result.status != TROUPE_OK && result.error.empty())
      result.error = config_.name + ": call failed with status " + std::to_string(c.status);
    if (result.status == TROUPE_OK) result.error.clear();
  }
  loop_.post([self = shared_from_this(), call, result = std::move(result)]() mutable {
    self->on_plugin_complete(call, std::move(result));
  });
}

troupe_status_t HostContext::api_post(void (*fn)(void*), void* user_data) {
  if (fn == nullptr) {
    violation(0, "post with a NULL function");
    return TROUPE_INVALID_ARGUMENT;
  }
  bool queued = loop_.post([self = shared_from_this(), fn, user_data] {
    if (self->destroyed_) return;
    guarded(*self, 0, "posted function", [&] { fn(user_data); });
  });
  return queued ? TROUPE_OK : TROUPE_UNAVAILABLE;
}

// ---------------------------------------------------------------------------------------
// Host services: loop thread only

bool HostContext::substitute_secrets(std::string& value, std::string& missing) const {
  static const std::string open = "${secret:";
  size_t pos = 0;
  while ((pos = value.find(open, pos)) != std::string::npos) {
    size_t close = value.find('}', pos + open.size());
    if (close == std::string::npos) return true;  // not a reference: leave the text alone
    std::string name = value.substr(pos + open.size(), close - pos - open.size());
    auto it = config_.secrets.find(name);
    if (it == config_.secrets.end()) {
      missing = name;
      return false;
    }
    value.replace(pos, close + 1 - pos, it->second);
    pos += it->second.size();
  }
  return true;
}

troupe_status_t HostContext::api_http_start(troupe_call_id_t call,
                                            const troupe_http_request_t* request,
                                            const troupe_http_callbacks_t* callbacks,
                                            troupe_handle_t* out_handle) {
  if (!on_loop_thread()) {
    violation(call, "http_start called off the loop thread");
    return TROUPE_INTERNAL;
  }
  if (request == nullptr || callbacks == nullptr || out_handle == nullptr) {
    violation(call, "http_start with a NULL argument");
    return TROUPE_INVALID_ARGUMENT;
  }
  if (destroyed_) return TROUPE_UNAVAILABLE;
  if (call != 0) {
    auto it = calls_.find(call);
    if (it == calls_.end()) {
      violation(call, "http_start for an unknown or finished call id");
      return TROUPE_INVALID_ARGUMENT;
    }
    if (it->second.caller_done) return TROUPE_CANCELLED;  // cancelled or timed out already
  }
  troupe_http_request_t r = read_struct(request);
  troupe_http_callbacks_t cb = read_struct(callbacks);

  HttpRequest req;
  req.method = r.method.len ? text(r.method) : "GET";
  req.url = text(r.url);
  for (size_t i = 0; i < r.header_count && r.headers != nullptr; ++i) {
    std::string name = text(r.headers[i].name);
    std::string value = text(r.headers[i].value);
    std::string missing;
    if (!substitute_secrets(value, missing)) {
      log::warn(component_,
                "http_start: header '" + name + "' refers to unknown secret '" + missing + "'");
      return TROUPE_NOT_FOUND;
    }
    req.headers.emplace_back(std::move(name), std::move(value));
  }
  req.body = text(r.body);
  req.timeout_ms = r.timeout_ms;
  req.connect_timeout_ms = r.connect_timeout_ms;
  req.idle_timeout_ms = r.idle_timeout_ms;

  // The loop never calls handlers from inside http_start, so the id is known by then.
  auto id_cell = std::make_shared<EventLoop::Id>(0);
  auto self = shared_from_this();
  HttpHandlers handlers;
  handlers.on_headers = [self, cb, call](int status, const Headers& headers) {
    if (self->destroyed_ || cb.on_headers == nullptr) return;
    std::vector<troupe_http_header_t> list;
    list.reserve(headers.size());
    for (const auto& [name, value] : headers)
      list.push_back({view(name), view(value)});
    guarded(*self, call, "http on_headers",
            [&] { cb.on_headers(cb.user_data, status, list.data(), list.size()); });
  };
  handlers.on_chunk = [self, cb, call](std::string_view chunk) {
    if (self->destroyed_ || cb.on_chunk == nullptr) return;
    guarded(*self, call, "http on_chunk", [&] {
      cb.on_chunk(cb.user_data, troupe_str_t{chunk.data(), chunk.size()});
    });
  };
  handlers.on_complete = [self, cb, call, id_cell](troupe_status_t status,
                                                   const std::string& error) {
    self->transfers_.erase(*id_cell);
    if (self->destroyed_ || cb.on_complete == nullptr) return;
    guarded(*self, call, "http on_complete",
            [&] { cb.on_complete(cb.user_data, status, view(error)); });
  };
  EventLoop::Id id = loop_.http_start(std::move(req), std::move(handlers));
  *id_cell = id;
  transfers_[id] = call;
  *out_handle = id;
  return TROUPE_OK;
}

void HostContext::api_http_cancel(troupe_handle_t transfer) {
  if (!on_loop_thread()) {
    violation(0, "http_cancel called off the loop thread");
    return;
  }
  // Only this instance's own transfers; unknown or finished ones are ignored.
  if (transfers_.count(transfer) != 0) loop_.http_cancel(transfer);
}

troupe_handle_t HostContext::api_timer_start(uint64_t delay_ms, void (*fn)(void*),
                                             void* user_data) {
  if (!on_loop_thread()) {
    violation(0, "timer_start called off the loop thread");
    return 0;
  }
  if (fn == nullptr) {
    violation(0, "timer_start with a NULL function");
    return 0;
  }
  if (destroyed_) return 0;
  auto id_cell = std::make_shared<EventLoop::Id>(0);
  EventLoop::Id id = loop_.add_timer(delay_ms, [self = shared_from_this(), fn, user_data, id_cell] {
    self->timers_.erase(*id_cell);
    if (self->destroyed_) return;
    guarded(*self, 0, "timer function", [&] { fn(user_data); });
  });
  *id_cell = id;
  timers_.insert(id);
  return id;
}

bool HostContext::api_timer_cancel(troupe_handle_t timer) {
  if (!on_loop_thread()) {
    violation(0, "timer_cancel called off the loop thread");
    return false;
  }
  if (timers_.erase(timer) == 0) return false;
  return loop_.cancel_timer(timer);
}

}  // namespace troupe
