// config.cpp: parsing and validating troupe.yaml / troupe.json.
#include "config/config.h"

#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/utf8.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A scalar's text; a YAML error at the node when it is not valid UTF-8 (yaml-cpp passes raw
// bytes and "\uD800" escapes through, which no JSON string can hold).
const std::string& utf8_scalar(const YAML::Node& node) {
  const std::string& s = node.Scalar();
  if (utf8::first_invalid(s) != std::string::npos)
    throw YAML::ParserException(node.Mark(), "a string that is not valid UTF-8");
  return s;
}

// YAML -> JSON, with plain scalars typed the way YAML 1.2's core schema types them.
json yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Sequence: {
      json out = json::array();
      for (const auto& item : node)
        out.push_back(yaml_to_json(item));
      return out;
    }
    case YAML::NodeType::Map: {
      json out = json::object();
      for (const auto& kv : node) {
        if (!kv.first.IsScalar())
          throw YAML::ParserException(kv.first.Mark(), "a key that is not a string");
        out[utf8_scalar(kv.first)] = yaml_to_json(kv.second);
      }
      return out;
    }
    case YAML::NodeType::Scalar:
      break;
  }
  const std::string& s = utf8_scalar(node);
  if (node.Tag() == "!") return s;  // quoted: always a string
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  char* end = nullptr;
  long long i = std::strtoll(s.c_str(), &end, 10);
  if (end && *end == '\0') return i;
  double d = std::strtod(s.c_str(), &end);
  if (end && *end == '\0') return d;
  return s;
}

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const std::string& where, const std::string& what) const {
    throw ConfigError(file_ + ": " + (where.empty() ? "" : where + ": ") + what);
  }

  static const char* type_name(const json& v) {
    switch (v.type()) {
      case json::value_t::null:
        return "null";
      case json::value_t::object:
        return "a mapping";
      case json::value_t::array:
        return "a list";
      case json::value_t::string:
        return "a string";
      case json::value_t::boolean:
        return "a boolean";
      case json::value_t::number_float:
        return "a number";
      default:
        return "an integer";
    }
  }

  void check_keys(const json& obj, const std::string& where,
                  const std::set<std::string>& known) const {
    for (const auto& [key, value] : obj.items()) {
      if (known.count(key)) continue;
      std::string list;
      for (const auto& k : known)
        list += (list.empty() ? "" : ", ") + k;
      fail(where.empty() ? key : where + "." + key, "unknown setting (known here: " + list + ")");
    }
  }

  std::string string(const json& v, const std::string& where) const {
    if (!v.is_string()) fail(where, std::string("expected a string, got ") + type_name(v));
    return v.get<std::string>();
  }

  uint64_t positive(const json& v, const std::string& where) const {
    if (!v.is_number_integer()) {
      fail(where, std::string("expected a positive integer, got ") + type_name(v));
    }
    if (v.get<int64_t>() <= 0) fail(where, "expected a positive integer, got " + v.dump());
    return v.get<uint64_t>();
  }

  const json& object(const json& v, const std::string& where) const {
    if (!v.is_object()) fail(where, std::string("expected a mapping, got ") + type_name(v));
    return v;
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

std::string relative_to(const std::string& base_dir, const std::string& p) {
  if (p.empty() || fs::path(p).is_absolute() || base_dir.empty()) return p;
  return (fs::path(base_dir) / p).lexically_normal().string();
}

bool valid_provider_name(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.'))
      return false;
  }
  return true;
}

Config from_json(const json& doc, const std::string& file) {
  Reader r(file);
  Config c;
  c.path = file;
  std::string dir = fs::path(file).parent_path().string();
  if (doc.is_null()) return c;
  r.object(doc, "");
  r.check_keys(doc, "",
               {"store", "plugin_path", "providers", "fallback_provider", "default_model",
                "durability", "limits"});
  if (doc.contains("store")) c.store_path = relative_to(dir, r.string(doc["store"], "store"));
  if (doc.contains("plugin_path")) {
    const json& pp = doc["plugin_path"];
    if (pp.is_string()) {
      c.plugin_path.push_back(relative_to(dir, pp.get<std::string>()));
    } else if (pp.is_array()) {
      for (size_t i = 0; i < pp.size(); ++i) {
        c.plugin_path.push_back(
            relative_to(dir, r.string(pp[i], "plugin_path[" + std::to_string(i) + "]")));
      }
    } else {
      r.fail("plugin_path",
             std::string("expected a folder or a list of folders, got ") + Reader::type_name(pp));
    }
  }
  if (doc.contains("default_model")) {
    c.default_model = r.string(doc["default_model"], "default_model");
    if (c.default_model.find('/') == std::string::npos) {
      r.fail("default_model", "'" + c.default_model + "' must be written as provider/model");
    }
  }
  if (doc.contains("durability")) {
    std::string d = r.string(doc["durability"], "durability");
    if (d == "sync") {
      c.runtime.durability = Durability::sync;
    } else if (d == "async") {
      c.runtime.durability = Durability::async;
    } else {
      r.fail("durability", "expected 'sync' or 'async', got '" + d + "'");
    }
  }
  if (doc.contains("limits")) {
    const json& l = r.object(doc["limits"], "limits");
    r.check_keys(l, "limits",
                 {"max_instructions", "max_memory_mb", "call_timeout_s", "slice_instructions"});
    auto& lim = c.runtime.limits;
    if (l.contains("max_instructions"))
      lim.max_instructions = r.positive(l["max_instructions"], "limits.max_instructions");
    if (l.contains("max_memory_mb"))
      lim.max_memory_bytes = r.positive(l["max_memory_mb"], "limits.max_memory_mb") << 20;
    if (l.contains("call_timeout_s"))
      lim.call_timeout_ms =
          static_cast<uint32_t>(r.positive(l["call_timeout_s"], "limits.call_timeout_s") * 1000);
    if (l.contains("slice_instructions"))
      lim.slice_instructions = r.positive(l["slice_instructions"], "limits.slice_instructions");
  }
  if (doc.contains("providers")) {
    const json& ps = r.object(doc["providers"], "providers");
    for (const auto& [name, spec] : ps.items()) {
      std::string where = "providers." + name;
      if (!valid_provider_name(name))
        r.fail(where, "provider names may contain letters, digits, '_', '-' and '.'");
      r.object(spec, where);
      r.check_keys(spec, where, {"plugin", "settings", "secrets"});
      ProviderConfig p;
      p.name = name;
      if (!spec.contains("plugin"))
        r.fail(where, "missing 'plugin' (a plugin name such as 'mock', or a path to a .so)");
      p.plugin = r.string(spec["plugin"], where + ".plugin");
      if (p.plugin.find('/') != std::string::npos) p.plugin = relative_to(dir, p.plugin);
      if (spec.contains("settings"))
        p.settings_json = r.object(spec["settings"], where + ".settings").dump();
      if (spec.contains("secrets")) {
        const json& s = r.object(spec["secrets"], where + ".secrets");
        for (const auto& [secret, env] : s.items()) {
          p.secret_env[secret] = r.string(
              env, where + ".secrets." + secret + " (the name of an environment variable)");
        }
      }
      c.providers[name] = std::move(p);
    }
  }
  if (!doc.contains("providers")) {  // nothing about providers: serve them all offline
    c.providers = default_config().providers;
    if (!doc.contains("fallback_provider")) c.fallback_provider = "mock";
  }
  if (doc.contains("fallback_provider")) {
    c.fallback_provider = r.string(doc["fallback_provider"], "fallback_provider");
    if (!c.providers.count(c.fallback_provider)) {
      r.fail("fallback_provider",
             "'" + c.fallback_provider + "' is not one of the configured providers");
    }
  }
  return c;
}

}  // namespace

Config default_config() {
  Config c;
  ProviderConfig mock;
  mock.name = "mock";
  mock.plugin = "mock";
  c.providers["mock"] = mock;
  c.fallback_provider = "mock";
  return c;
}

Config load_config(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(path + ": cannot open the configuration file");
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  json doc;
  std::string ext = fs::path(path).extension().string();
  if (ext == ".json") {
    try {
      doc = json::parse(text);
    } catch (const json::exception& e) {  // parse_error, and out_of_range for 1e999
      throw ConfigError(path + ": not valid JSON: " + e.what());
    }
  } else {
    try {
      doc = yaml_to_json(YAML::Load(text));
    } catch (const YAML::Exception& e) {
      throw ConfigError(path + ":" + std::to_string(e.mark.line + 1) + ":" +
                        std::to_string(e.mark.column + 1) + ": not valid YAML: " + e.msg);
    }
  }
  return from_json(doc, path);
}

namespace {

std::string env_value(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? std::string(v) : std::string();
}

// Adds a real vendor provider when its key variable is set: the name models use, the plugin,
// and the variable the key comes from (the key itself stays in the environment). base_var
// names the variable the vendor's own SDK reads a different endpoint from.
void add_keyed_provider(Config& c, const std::string& name, const std::vector<const char*>& vars,
                        const char* base_var) {
  for (const char* var : vars) {
    if (env_value(var).empty()) continue;
    ProviderConfig p;
    p.name = name;
    p.plugin = name;
    p.secret_env["api_key"] = var;
    if (std::string base = env_value(base_var); !base.empty())
      p.settings_json = json{{"base_url", base}}.dump();
    c.providers[name] = std::move(p);
    return;
  }
}

}  // namespace

void add_environment_providers(Config& c) {
  if (!env_value("TROUPE_OFFLINE").empty() && env_value("TROUPE_OFFLINE") != "0") return;
  add_keyed_provider(c, "openai", {"OPENAI_API_KEY"}, "OPENAI_BASE_URL");
  add_keyed_provider(c, "anthropic", {"ANTHROPIC_API_KEY"}, "ANTHROPIC_BASE_URL");
  add_keyed_provider(c, "gemini", {"GEMINI_API_KEY", "GOOGLE_API_KEY"}, "GEMINI_BASE_URL");
  std::string ollama = env_value("OLLAMA_HOST");
  if (!ollama.empty()) {
    // Ollama's own clients accept "host:port" without a scheme.
    if (ollama.find("://") == std::string::npos) ollama = "http://" + ollama;
    ProviderConfig p;
    p.name = "ollama";
    p.plugin = "ollama";
    p.settings_json = json{{"base_url", ollama}}.dump();
    c.providers["ollama"] = std::move(p);
  }
}

Config find_config(const std::string& explicit_path) {
  Config c;
  bool found = false;
  if (!explicit_path.empty()) {
    c = load_config(explicit_path);
    found = true;
  } else if (std::string env = env_value("TROUPE_CONFIG"); !env.empty()) {
    c = load_config(env);
    found = true;
  } else {
    for (const char* name : {"troupe.yaml", "troupe.yml", "troupe.json"}) {
      std::error_code ec;
      if (fs::is_regular_file(name, ec)) {
        c = load_config(name);
        found = true;
        break;
      }
    }
  }
  if (!found) {
    c = default_config();
    add_environment_providers(c);
  }
  if (std::string model = env_value("TROUPE_MODEL"); !model.empty()) {
    if (model.find('/') == std::string::npos || model.front() == '/' || model.back() == '/')
      throw ConfigError("TROUPE_MODEL: '" + model + "' must be written as provider/model");
    c.default_model = model;
  }
  return c;
}

}  // namespace troupe
