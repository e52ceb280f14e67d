// host.cpp: wiring one troupe host together — config, store, loop, providers, runtime.
#include "api/host.h"

#include "api/provider_registry.h"
#include "loop/event_loop.h"
#include "store/store.h"

namespace troupe {

struct Host::Impl {
  Config config;
  std::unique_ptr<EventLoop> loop;
  std::unique_ptr<Store> store;
  std::unique_ptr<ProviderRegistry> providers;
  std::unique_ptr<Runtime> runtime;
};

Host::Host(Config config, bool open_store) : impl_(std::make_unique<Impl>()) {
  impl_->config = std::move(config);
  if (!impl_->config.runtime.pricing) impl_->config.runtime.pricing = make_pricing(impl_->config);
  impl_->loop = std::make_unique<EventLoop>();
  if (open_store) impl_->store = Store::open(impl_->config.store_path, impl_->config.store_options);
  impl_->providers =
      std::make_unique<ProviderRegistry>(*impl_->loop, impl_->config, plugin_search_path());
  impl_->runtime = std::make_unique<Runtime>(*impl_->loop, impl_->store.get(), *impl_->providers,
                                             impl_->config.runtime);
  impl_->runtime->set_default_model(impl_->config.default_model);
}

Host::~Host() {
  // Runs first (they cancel calls into plugins), then plugins, then the journal, then I/O.
  impl_->runtime.reset();
  impl_->providers.reset();
  if (impl_->store) impl_->store->flush();
  impl_->store.reset();
  impl_->loop.reset();
}

const Config& Host::config() const {
  return impl_->config;
}
EventLoop& Host::loop() {
  return *impl_->loop;
}
Runtime& Host::runtime() {
  return *impl_->runtime;
}
Store* Host::store() {
  return impl_->store.get();
}

namespace {

// Drives the loop until the run `begin` starts ends; `begin` returns its id ("" when it could
// not start, with *error set). Events of other runs do not reach listener.
RunOutcome drive_to_completion(
    Runtime& runtime, EventLoop& loop, Store* store,
    const std::function<std::string(std::function<void(const RunOutcome&)>, std::string*)>& begin,
    const std::function<void(const RunEvent&)>& listener) {
  RunOutcome outcome;
  bool done = false;
  std::string id;
  runtime.set_listener([&](const RunEvent& ev) {
    if (listener && (id.empty() || ev.run_id == id)) listener(ev);  // id is empty while starting
  });
  std::string error;
  id = begin(
      [&](const RunOutcome& o) {
        outcome = o;
        done = true;
      },
      &error);
  if (id.empty()) {
    runtime.set_listener(nullptr);
    throw ResumeError(error);
  }
  while (!done)
    loop.run_once(1000);
  runtime.set_listener(nullptr);
  if (store) store->flush();
  return outcome;
}

}  // namespace

RunOutcome Host::run_to_completion(const RunSpec& spec,
                                   std::function<void(const RunEvent&)> listener) {
  Runtime& rt = *impl_->runtime;
  return drive_to_completion(
      rt, *impl_->loop, impl_->store.get(),
      [&](std::function<void(const RunOutcome&)> on_done, std::string*) {
        return rt.start(spec, std::move(on_done));
      },
      listener);
}

RunOutcome Host::resume_to_completion(const ResumeSpec& spec,
                                      std::function<void(const RunEvent&)> listener) {
  Runtime& rt = *impl_->runtime;
  return drive_to_completion(
      rt, *impl_->loop, impl_->store.get(),
      [&](std::function<void(const RunOutcome&)> on_done, std::string* error) {
        return rt.resume(spec, std::move(on_done), error);
      },
      listener);
}

std::vector<std::string> Host::plugin_search_path() const {
  return troupe::plugin_search_path(impl_->config.plugin_path);
}

std::vector<PluginScanEntry> Host::scan_plugins() const {
  return troupe::scan_plugins(plugin_search_path());
}

}  // namespace troupe
