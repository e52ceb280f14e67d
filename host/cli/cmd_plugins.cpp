// cmd_plugins.cpp: `troupe plugins` and `troupe version`.
#include <curl/curl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <lua.hpp>
#include <nlohmann/json.hpp>

#include "api/host.h"
#include "cli/commands.h"
#include "cli/term.h"
#include "config/config.h"
#include "plugin/plugin_library.h"
#include "troupe/plugin.h"

namespace troupe::cli {

using nlohmann::json;

int cmd_plugins(const Common& common) {
  std::vector<std::string> search;
  try {
    search = plugin_search_path(find_config(common.config_path).plugin_path);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe: %s\n", e.what());
    return kUsage;
  }
  auto entries = scan_plugins(search);
  if (common.json) {
    json out = {{"search_path", search}, {"plugins", json::array()}, {"refused", json::array()}};
    for (const auto& e : entries) {
      if (!e.library) {
        out["refused"].push_back({{"path", e.path}, {"error", e.error}});
        continue;
      }
      const PluginInfo& i = e.library->info();
      out["plugins"].push_back(
          {{"name", i.name},
           {"kind", plugin_kind_name(i.kind)},
           {"version", i.version},
           {"abi", std::to_string(i.abi_major) + "." + std::to_string(i.abi_minor)},
           {"description", i.description},
           {"capabilities", json::parse(i.capabilities_json, nullptr, false)},
           {"path", i.path}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return kOk;
  }
  Style s = style_for(STDOUT_FILENO);
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "KIND", "VERSION", "ABI", "OFFERS", "PATH"}};
  size_t refused = 0;
  for (const auto& e : entries) {
    if (!e.library) {
      ++refused;
      continue;
    }
    const PluginInfo& i = e.library->info();
    json caps = json::parse(i.capabilities_json, nullptr, false);
    std::string offers;
    if (caps.is_object()) {
      for (const auto& [k, v] : caps.items()) {
        if (v.is_boolean() && !v.get<bool>()) continue;
        offers += (offers.empty() ? "" : ", ") + k;
        if (v.is_array()) {
          std::string items;
          for (const auto& x : v)
            items += (items.empty() ? "" : " ") + (x.is_string() ? x.get<std::string>() : x.dump());
          offers += "=" + items;
        }
      }
    }
    rows.push_back({i.name, plugin_kind_name(i.kind), i.version,
                    std::to_string(i.abi_major) + "." + std::to_string(i.abi_minor),
                    one_line(offers, 48), i.path});
  }
  if (rows.size() == 1) {
    std::printf("no plugins found\n");
  } else {
    print_table(rows, s);
  }
  if (refused) {
    std::printf("\n%s\n", s.yellow("refused:").c_str());
    for (const auto& e : entries) {
      if (!e.library) std::printf("  %s\n", e.error.c_str());
    }
  }
  std::printf("\n%s %s\n", s.dim("searched:").c_str(),
              [&] {
                std::string p;
                for (const auto& d : search)
                  p += (p.empty() ? "" : ":") + d;
                return p.empty() ? std::string("(nothing)") : p;
              }()
                  .c_str());
  return kOk;
}

int cmd_version(const Common& common) {
  std::string abi = std::to_string(TROUPE_ABI_MAJOR) + "." + std::to_string(TROUPE_ABI_MINOR);
  const char* lua = LUA_RELEASE;
  std::string curl = curl_version_info(CURLVERSION_NOW)->version;
  if (common.json) {
    json out = {{"troupe", TROUPE_VERSION_STRING},
                {"plugin_abi", abi},
                {"lua", lua},
                {"sqlite", sqlite3_libversion()},
                {"libcurl", curl}};
    std::printf("%s\n", out.dump(2).c_str());
  } else {
    std::printf("troupe %s (plugin ABI %s; %s, SQLite %s, libcurl %s)\n", TROUPE_VERSION_STRING,
                abi.c_str(), lua, sqlite3_libversion(), curl.c_str());
  }
  return kOk;
}

}  // namespace troupe::cli
