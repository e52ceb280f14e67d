// host.h: libtroupe's embedding API — one troupe host: config, store, loop, plugins, runtime.
//
// The troupe CLI and the Python module are both thin layers over this class. A Host is
// driven from one thread (the loop thread): run_to_completion() drives the loop until the
// run ends; embedders that keep the loop on a thread of their own use loop()/runtime().
#pragma once

#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.h"
#include "plugin/plugin_library.h"
#include "runtime/runtime.h"

namespace troupe {

class EventLoop;
class Store;

// A run that cannot be resumed: no such run, it runs elsewhere, it ended, its script changed.
struct ResumeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Host {
 public:
  // Opens the store (creating it) unless open_store is false. Throws ConfigError,
  // StoreError with a clear message.
  explicit Host(Config config, bool open_store = true);
  ~Host();
  Host(const Host&) = delete;
  Host& operator=(const Host&) = delete;

  const Config& config() const;
  EventLoop& loop();
  Runtime& runtime();
  Store* store();  // null when opened without a store

  // Starts a run and drives the loop on the calling thread until it ends.
  RunOutcome run_to_completion(const RunSpec& spec,
                               std::function<void(const RunEvent&)> listener = {});
  // Resumes a run (Runtime::resume) and drives the loop until it ends. Throws ResumeError,
  // saying why, when the run cannot be resumed; the run is then untouched.
  RunOutcome resume_to_completion(const ResumeSpec& spec,
                                  std::function<void(const RunEvent&)> listener = {});

  // The plugin search path of this host, and every plugin found on it.
  std::vector<std::string> plugin_search_path() const;
  std::vector<PluginScanEntry> scan_plugins() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace troupe
