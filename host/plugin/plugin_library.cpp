// plugin_library.cpp: loads a plugin .so with Boost.DLL, validates its descriptor, finds plugins.
#include "plugin/plugin_library.h"

#include <algorithm>
#include <boost/dll/runtime_symbol_info.hpp>
#include <boost/dll/shared_library.hpp>
#include <boost/system/system_error.hpp>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <system_error>

namespace troupe {
namespace {

namespace fs = std::filesystem;

// Every field of the v1 descriptor; a plugin must declare at least this much.
constexpr uint32_t kDescriptorV1Size = sizeof(troupe_plugin_descriptor_t);
// struct_size, abi_major and abi_minor: the part every ABI major agrees on, so the version
// can be checked before anything else of the descriptor is trusted.
constexpr uint32_t kDescriptorHeadSize =
    offsetof(troupe_plugin_descriptor_t, abi_minor) + sizeof(uint16_t);

std::string abi_text(unsigned major, unsigned minor) {
  return std::to_string(major) + "." + std::to_string(minor);
}

[[noreturn]] void fail(const std::string& path, const std::string& reason) {
  throw PluginError(path + ": " + reason);
}

bool valid_name(const char* name) {
  if (name == nullptr || *name == '\0') return false;
  for (const char* p = name; *p != '\0'; ++p) {
    char c = *p;
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// Boost.DLL puts dlerror() into what() as "(dlerror system message: TEXT)"; pull TEXT out
// and drop its leading "<path>: " (we print the path ourselves).
std::string dlerror_text(const std::string& what, const std::string& abs_path) {
  static const std::string marker = "(dlerror system message: ";
  std::string text = what;
  size_t start = what.find(marker);
  if (start != std::string::npos) {
    start += marker.size();
    size_t end = what.rfind(')');
    if (end == std::string::npos || end < start) end = what.size();
    text = what.substr(start, end - start);
  }
  std::string prefix = abs_path + ": ";
  if (text.compare(0, prefix.size(), prefix) == 0) text.erase(0, prefix.size());
  return text;
}

// dlopen's messages for files that are not loadable ELF shared objects.
bool is_format_error(const std::string& dl_text) {
  static const char* const patterns[] = {"ELF",
                                         "file too short",
                                         "not an ELF",
                                         "ET_DYN",
                                         "position-independent executable",
                                         "wrong ELF class"};
  for (const char* p : patterns)
    if (dl_text.find(p) != std::string::npos) return true;
  return false;
}

class PluginLibraryImpl final : public PluginLibrary {
 public:
  const PluginInfo& info() const override { return info_; }
  const troupe_plugin_descriptor_t& descriptor() const override { return descriptor_; }

  // Declared before info_/descriptor_ so it is unloaded last, after nothing refers to it.
  boost::dll::shared_library library;
  PluginInfo info_;
  troupe_plugin_descriptor_t descriptor_{};
};

void validate(const std::string& path, const troupe_plugin_descriptor_t* d,
              troupe_plugin_descriptor_t& out) {
  if (d == nullptr)
    fail(path, "troupe_plugin_describe returned NULL (the plugin cannot work with troupe ABI " +
                   abi_text(TROUPE_ABI_MAJOR, TROUPE_ABI_MINOR) + ")");
  if (d->struct_size < kDescriptorHeadSize)
    fail(path, "descriptor too small (struct_size " + std::to_string(d->struct_size) + ")");
  if (d->abi_major != TROUPE_ABI_MAJOR)
    fail(path, "built for troupe ABI " + abi_text(d->abi_major, d->abi_minor) +
                   ", this host speaks " + abi_text(TROUPE_ABI_MAJOR, TROUPE_ABI_MINOR));
  if (d->abi_minor > TROUPE_ABI_MINOR)
    fail(path, "built against a newer ABI " + abi_text(d->abi_major, d->abi_minor) +
                   " than this host's " + abi_text(TROUPE_ABI_MAJOR, TROUPE_ABI_MINOR) +
                   "; upgrade troupe");
  if (d->struct_size < kDescriptorV1Size)
    fail(path, "descriptor too small (struct_size " + std::to_string(d->struct_size) +
                   ", ABI 1.0 needs at least " + std::to_string(kDescriptorV1Size) + ")");

  // Size-prefix rule: copy what the plugin declared, zero-fill the rest (nothing yet in
  // ABI 1.0, but a later host reading an older plugin relies on it).
  out = troupe_plugin_descriptor_t{};
  std::memcpy(&out, d, std::min<size_t>(d->struct_size, sizeof(out)));
  out.struct_size = sizeof(out);

  if (!valid_name(out.name))
    fail(path, std::string("invalid plugin name \"") + (out.name ? out.name : "(null)") +
                   "\" (must be non-empty [a-z0-9_-]+)");
  if (out.kind != TROUPE_PLUGIN_PROVIDER && out.kind != TROUPE_PLUGIN_INTEGRATION)
    fail(path, "unknown plugin kind " + std::to_string(out.kind) +
                   " (expected 1 = provider or 2 = integration)");
  const char* missing = nullptr;
  if (out.create == nullptr)
    missing = "create";
  else if (out.destroy == nullptr)
    missing = "destroy";
  else if (out.invoke == nullptr)
    missing = "invoke";
  else if (out.cancel == nullptr)
    missing = "cancel";
  if (missing != nullptr) fail(path, std::string("descriptor has no ") + missing + " hook");
  if (out.capabilities != nullptr) {
    nlohmann::json caps = nlohmann::json::parse(out.capabilities, nullptr, false);
    if (caps.is_discarded() || !caps.is_object())
      fail(path, "capabilities are not a JSON object: " + std::string(out.capabilities));
  }
}

}  // namespace

const char* plugin_kind_name(troupe_plugin_kind_t kind) {
  switch (kind) {
    case TROUPE_PLUGIN_PROVIDER:
      return "provider";
    case TROUPE_PLUGIN_INTEGRATION:
      return "integration";
    default:
      return "unknown";
  }
}

std::shared_ptr<PluginLibrary> PluginLibrary::load(const std::string& path) {
  std::error_code ec;
  fs::path abs = fs::absolute(fs::path(path), ec).lexically_normal();
  if (ec) abs = fs::path(path);
  fs::file_status st = fs::status(abs, ec);
  if (!fs::exists(st)) fail(path, "no such file");
  if (!fs::is_regular_file(st)) fail(path, "not a regular file");

  auto lib = std::make_shared<PluginLibraryImpl>();
  try {
    lib->library.load(boost::dll::fs::path(abs.string()),
                      boost::dll::load_mode::rtld_local | boost::dll::load_mode::rtld_now);
  } catch (const boost::system::system_error& e) {
    std::string dl = dlerror_text(e.what(), abs.string());
    if (is_format_error(dl)) fail(path, "not a shared library (" + dl + ")");
    fail(path, "cannot be loaded: " + dl);
  }

  if (!lib->library.has(TROUPE_PLUGIN_ENTRY))
    fail(path, "no troupe_plugin_describe symbol (not a troupe plugin?)");
  troupe_plugin_describe_fn describe =
      &lib->library.get<std::remove_pointer_t<troupe_plugin_describe_fn>>(TROUPE_PLUGIN_ENTRY);

  const troupe_plugin_descriptor_t* d = nullptr;
  try {
    d = describe(TROUPE_ABI_MAJOR, TROUPE_ABI_MINOR);
  } catch (const std::exception& e) {
    fail(path, std::string("troupe_plugin_describe threw: ") + e.what());
  } catch (...) {
    fail(path, "troupe_plugin_describe threw an unknown exception");
  }
  validate(path, d, lib->descriptor_);

  const troupe_plugin_descriptor_t& desc = lib->descriptor_;
  lib->info_.name = desc.name;
  lib->info_.version = desc.version ? desc.version : "";
  lib->info_.description = desc.description ? desc.description : "";
  lib->info_.capabilities_json = desc.capabilities ? desc.capabilities : "{}";
  lib->info_.path = abs.string();
  lib->info_.kind = desc.kind;
  lib->info_.abi_major = desc.abi_major;
  lib->info_.abi_minor = desc.abi_minor;
  return lib;
}

std::vector<std::string> plugin_search_path(const std::vector<std::string>& configured) {
  std::vector<std::string> candidates = configured;
  if (const char* env = std::getenv("TROUPE_PLUGIN_PATH")) {
    std::string list = env;
    size_t start = 0;
    while (start <= list.size()) {
      size_t end = list.find(':', start);
      if (end == std::string::npos) end = list.size();
      if (end > start) candidates.push_back(list.substr(start, end - start));
      start = end + 1;
    }
  }
  boost::system::error_code bec;
  boost::dll::fs::path exe = boost::dll::program_location(bec);
  if (!bec) candidates.push_back((fs::path(exe.string()).parent_path() / "plugins").string());

  // Keep existing folders only, each once (the first occurrence decides its rank).
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto& dir : candidates) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    fs::path canon = fs::canonical(dir, ec);
    std::string key = ec ? dir : canon.string();
    if (seen.insert(key).second) out.push_back(dir);
  }
  return out;
}

std::string find_plugin(const std::string& name_or_path, const std::vector<std::string>& search) {
  bool is_path =
      name_or_path.find('/') != std::string::npos ||
      (name_or_path.size() > 3 && name_or_path.compare(name_or_path.size() - 3, 3, ".so") == 0);
  if (is_path) return name_or_path;

  std::string searched;
  for (const auto& dir : search) {
    fs::path candidate = fs::path(dir) / (name_or_path + ".so");
    std::error_code ec;
    if (fs::is_regular_file(candidate, ec)) return candidate.string();
    if (!searched.empty()) searched += ", ";
    searched += dir;
  }
  if (searched.empty())
    fail(name_or_path,
         "plugin not found (the search path is empty; set TROUPE_PLUGIN_PATH or configure a "
         "plugin folder)");
  fail(name_or_path, "plugin not found (searched " + searched + ")");
}

std::vector<PluginScanEntry> scan_plugins(const std::vector<std::string>& search) {
  std::vector<PluginScanEntry> out;
  std::map<std::string, std::string> first_by_name;  // plugin name -> path that claimed it
  for (const auto& dir : search) {
    std::error_code ec;
    std::vector<fs::path> files;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".so") files.push_back(it->path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      PluginScanEntry entry;
      entry.path = file.string();
      try {
        entry.library = PluginLibrary::load(entry.path);
        const std::string& name = entry.library->info().name;
        auto [it, inserted] = first_by_name.emplace(name, entry.path);
        if (!inserted) {
          // The search path order decides: find_plugin would pick the first one.
          entry.error = entry.path + ": plugin name \"" + name + "\" is already provided by " +
                        it->second + " (earlier on the search path)";
          entry.library.reset();
        }
      } catch (const PluginError& e) {
        entry.error = e.what();
      }
      out.push_back(std::move(entry));
    }
  }
  return out;
}

}  // namespace troupe
