// plugin_library.h: finding, loading and validating plugin shared libraries.
//
// A PluginLibrary is one loaded .so (Boost.DLL, RTLD_LOCAL | RTLD_NOW) and its validated
// descriptor. It is shared_ptr-owned: every instance and every in-flight call holds a
// reference, so the library stays mapped while anything of it lives.
#pragma once

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "troupe/plugin.h"

namespace troupe {

// Every loading error names the path and the reason, e.g.
// "plugins/foo.so: built for troupe ABI 2.0, this host speaks 1.0".
struct PluginError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct PluginInfo {
  std::string name;
  std::string version;
  std::string description;
  std::string capabilities_json;  // the descriptor's capabilities, "{}" when absent
  std::string path;               // absolute path of the .so
  troupe_plugin_kind_t kind = 0;
  uint16_t abi_major = 0;
  uint16_t abi_minor = 0;
};

const char* plugin_kind_name(troupe_plugin_kind_t kind);  // "provider", "integration"

class PluginLibrary {
 public:
  // Loads and validates. Throws PluginError for: missing file, not a shared library,
  // missing entry symbol, describe() returning NULL, another ABI major, a newer ABI minor,
  // a descriptor that fails validation (size, name, kind, missing hooks).
  static std::shared_ptr<PluginLibrary> load(const std::string& path);

  virtual ~PluginLibrary() = default;
  virtual const PluginInfo& info() const = 0;
  virtual const troupe_plugin_descriptor_t& descriptor() const = 0;
};

// The plugin search path, in order: configured folders, then TROUPE_PLUGIN_PATH
// (colon-separated), then <folder of the running executable>/plugins. Missing folders are
// skipped silently.
std::vector<std::string> plugin_search_path(const std::vector<std::string>& configured);

// Resolves a plugin reference: a path (contains '/' or ends in .so) is used as is; a name
// is looked up as <dir>/<name>.so along the search path. Throws PluginError listing the
// folders searched when nothing is found.
std::string find_plugin(const std::string& name_or_path, const std::vector<std::string>& search);

// Every *.so on the search path, loaded for inspection: an entry has either info or error.
struct PluginScanEntry {
  std::string path;
  std::shared_ptr<PluginLibrary> library;  // null when loading failed
  std::string error;
};
std::vector<PluginScanEntry> scan_plugins(const std::vector<std::string>& search);

}  // namespace troupe
