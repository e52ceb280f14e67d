// host_schema.cpp: host.validate — JSON Schema (draft 7) validation of Lua values with valijson,
// for tool arguments, structured output and troupe.validate.
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#define VALIJSON_USE_EXCEPTIONS 1
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "runtime/host_call_util.h"
#include "runtime/json_lua.h"

namespace troupe::rt {
namespace {

// Parsed schemas by their JSON text: a tool's schema is checked on every call. Bounded; the
// loop thread is the only user, but several hosts may run on several threads.
std::shared_ptr<valijson::Schema> parsed_schema(const nlohmann::json& doc, const std::string& text,
                                                std::string* error) {
  thread_local std::unordered_map<std::string, std::shared_ptr<valijson::Schema>> cache;
  auto it = cache.find(text);
  if (it != cache.end()) return it->second;
  auto schema = std::make_shared<valijson::Schema>();
  try {
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::NlohmannJsonAdapter adapter(doc);
    parser.populateSchema(adapter, *schema);  // no fetcher: remote $refs are refused
  } catch (const std::exception& e) {
    *error = e.what();
    return nullptr;
  }
  if (cache.size() >= 256) cache.clear();
  cache.emplace(text, schema);
  return schema;
}

// "<root>", "[items]", "[0]" -> "/items/0"
std::string pointer(const std::vector<std::string>& context) {
  std::string out;
  for (const std::string& part : context) {
    if (part.size() >= 2 && part.front() == '[' && part.back() == ']') {
      std::string name = part.substr(1, part.size() - 2);
      if (name.size() >= 2 && name.front() == '"' && name.back() == '"')
        name = name.substr(1, name.size() - 2);
      out += "/" + name;
    }
  }
  return out.empty() ? "/" : out;
}

bool is_summary(const std::string& description) {
  // valijson adds a line for every enclosing schema of a failure; the leaf says what is wrong.
  return description.rfind("Failed to validate against schema associated with", 0) == 0 ||
         description.rfind("Failed to validate item #", 0) == 0 ||
         description.rfind("Failed to validate against child schema", 0) == 0;
}

}  // namespace

// host.validate(schema, value) -> true | false, { "path: message", ... }
// Raises when schema is not a table or not a valid JSON Schema.
int host_validate(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  nlohmann::json schema_doc, value;
  std::string error;
  if (!lua::to_json(L, 1, &schema_doc, &error, "schema"))
    return luaL_error(L, "troupe.validate: %s", error.c_str());
  if (!lua::to_json(L, 2, &value, &error, "value"))
    return luaL_error(L, "troupe.validate: %s", error.c_str());
  std::string text = schema_doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::shared_ptr<valijson::Schema> schema = parsed_schema(schema_doc, text, &error);
  if (!schema) return luaL_error(L, "troupe.validate: not a valid JSON Schema: %s", error.c_str());

  std::vector<std::string> messages, summaries;
  bool valid = false;
  try {
    valijson::Validator validator;
    valijson::ValidationResults results;
    valijson::adapters::NlohmannJsonAdapter adapter(value);
    valid = validator.validate(*schema, adapter, &results);
    valijson::ValidationResults::Error e;
    while (results.popError(e)) {
      std::string line = pointer(e.context) + ": " + e.description;
      (is_summary(e.description) ? summaries : messages).push_back(line);
    }
  } catch (const std::exception& e) {  // e.g. a "pattern" that is not a valid regex
    error = e.what();
  }
  if (!error.empty()) return luaL_error(L, "troupe.validate: %s", error.c_str());
  if (valid) {
    lua_pushboolean(L, 1);
    return 1;
  }
  if (messages.empty()) messages = summaries;
  lua_pushboolean(L, 0);
  lua_createtable(L, static_cast<int>(messages.size()), 0);
  lua::push_array_mt(L);
  lua_setmetatable(L, -2);
  for (size_t i = 0; i < messages.size(); ++i) {
    lua_pushlstring(L, messages[i].data(), messages[i].size());
    lua_rawseti(L, -2, static_cast<lua_Integer>(i + 1));
  }
  return 2;
}

}  // namespace troupe::rt
