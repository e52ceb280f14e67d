// mock_schema_sample.cpp: JSON that follows a JSON Schema (see mock_schema_sample.h).
#include "mock_schema_sample.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include <nlohmann/json.hpp>

namespace troupe::mock {

using nlohmann::json;

namespace {

const json* resolve_ref(const json& schema, const json& root) {
  auto ref = schema.find("$ref");
  if (ref == schema.end() || !ref->is_string()) return nullptr;
  std::string target = ref->get<std::string>();
  if (target.rfind("#", 0) != 0) return nullptr;  // only local references
  json::json_pointer pointer(target.substr(1));   // throws on a malformed pointer
  return root.contains(pointer) ? &root.at(pointer) : nullptr;
}

// The first type a schema allows, preferring anything over "null".
std::string schema_type(const json& schema) {
  auto type = schema.find("type");
  if (type != schema.end() && type->is_string()) return type->get<std::string>();
  if (type != schema.end() && type->is_array()) {
    for (const json& t : *type) {
      if (t.is_string() && t != "null") return t.get<std::string>();
    }
    return "null";
  }
  if (schema.contains("properties")) return "object";
  if (schema.contains("items")) return "array";
  return "string";
}

double bound(const json& schema, const char* key, double fallback) {
  auto it = schema.find(key);
  return it != schema.end() && it->is_number() ? it->get<double>() : fallback;
}

json sample_value(const json& schema, const json& root, const std::string& name, int depth) {
  if (depth > 16 || !schema.is_object()) return nullptr;
  if (const json* target = resolve_ref(schema, root)) {
    return sample_value(*target, root, name, depth + 1);
  }
  if (auto c = schema.find("const"); c != schema.end()) return *c;
  if (auto e = schema.find("enum"); e != schema.end() && e->is_array() && !e->empty()) {
    return e->front();
  }
  for (const char* key : {"oneOf", "anyOf", "allOf"}) {
    auto alt = schema.find(key);
    if (alt != schema.end() && alt->is_array() && !alt->empty()) {
      return sample_value(alt->front(), root, name, depth + 1);
    }
  }
  std::string type = schema_type(schema);
  if (type == "object") {
    json out = json::object();
    if (auto props = schema.find("properties"); props != schema.end() && props->is_object()) {
      for (const auto& [key, sub] : props->items()) {
        out[key] = sample_value(sub, root, key, depth + 1);
      }
    }
    if (auto req = schema.find("required"); req != schema.end() && req->is_array()) {
      for (const json& key : *req) {
        if (key.is_string() && !out.contains(key.get<std::string>())) {
          out[key.get<std::string>()] = "sample " + key.get<std::string>();
        }
      }
    }
    return out;
  }
  if (type == "array") {
    json out = json::array();
    auto items = schema.find("items");
    size_t n = static_cast<size_t>(std::max(1.0, std::min(bound(schema, "minItems", 1), 8.0)));
    for (size_t i = 0; i < n; ++i) {
      if (items != schema.end() && items->is_array()) {  // a tuple
        if (i < items->size()) out.push_back(sample_value((*items)[i], root, name, depth + 1));
      } else if (items != schema.end()) {
        out.push_back(sample_value(*items, root, name, depth + 1));
      } else {
        out.push_back("sample " + name);
      }
    }
    return out;
  }
  if (type == "integer" || type == "number") {
    double low = bound(schema, "minimum", -1e300);
    if (schema.contains("exclusiveMinimum")) low = bound(schema, "exclusiveMinimum", low) + 1;
    double high = bound(schema, "maximum", 1e300);
    if (schema.contains("exclusiveMaximum")) high = bound(schema, "exclusiveMaximum", high) - 1;
    double v = type == "integer" ? 1 : 1.5;
    if (v < low) v = low;
    if (v > high) v = high;
    v = std::max(-1e15, std::min(v, 1e15));  // absurd bounds must not overflow the cast
    if (type == "integer") return static_cast<int64_t>(std::ceil(v));
    return v;
  }
  if (type == "boolean") return true;
  if (type == "null") return nullptr;
  std::string text = name.empty() ? "sample" : "sample " + name;
  if (auto f = schema.find("format"); f != schema.end() && f->is_string()) {
    if (*f == "date-time") text = "2024-01-01T00:00:00Z";
    if (*f == "date") text = "2024-01-01";
    if (*f == "time") text = "00:00:00";
    if (*f == "email") text = "user@example.com";
    if (*f == "uri" || *f == "url") text = "https://example.com/";
    if (*f == "uuid") text = "00000000-0000-4000-8000-000000000000";
  }
  size_t min_len = static_cast<size_t>(std::min(bound(schema, "minLength", 0), 4096.0));
  size_t max_len = static_cast<size_t>(std::min(bound(schema, "maxLength", 1e9), 1e9));
  if (text.size() < min_len) text.append(min_len - text.size(), 'x');
  if (text.size() > max_len) text.resize(max_len);
  return text;
}

}  // namespace

std::string sample_json(std::string_view schema_json) {
  try {
    json schema = json::parse(schema_json.begin(), schema_json.end());
    return sample_value(schema, schema, "", 0).dump();
  } catch (const std::exception&) {
    return "{}";
  }
}

}  // namespace troupe::mock
