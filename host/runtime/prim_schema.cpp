// prim_schema.cpp: host.validate — JSON Schema (draft 7) validation of Lua values with valijson,
// for tool arguments, structured output and troupe.validate.
//
// valijson runs regular expressions with std::regex, which backtracks exponentially
// (`^(a+)+$`) and recurses once per character (a stack overflow on a long string). Here no
// regular expression of a schema reaches std::regex (decision 0014): before valijson sees the
// schema, "pattern" and the formats date, time and date-time become custom constraints run by
// RE2 (linear in the string's length), and "patternProperties" is resolved with RE2 against
// the property names of the value being validated. RE2 has no backreferences or lookaround: a
// schema using them is refused when it is compiled, saying so.
#include <re2/re2.h>

#include <map>
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#define VALIJSON_USE_EXCEPTIONS 1
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/constraint_builder.hpp>
#include <valijson/constraints/concrete_constraints.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "core/json_text.h"
#include "runtime/json_lua.h"
#include "runtime/primitives.h"

namespace troupe::rt {
namespace {

using nlohmann::json;

// RE2's memory per regular expression: its compiled program may use about two thirds of it,
// the rest is the DFA's cache (when that fills, RE2 falls back to its NFA: slower, still linear).
// A larger expression is refused when the schema is compiled.
constexpr int64_t kRegexMaxMemory = int64_t{4} << 20;
// Property names added to resolve patternProperties against one value, at most.
constexpr size_t kMaxPatternPropertyEntries = 100000;
// valijson checks "id", "$id" and "$ref" against a URN grammar with std::regex (recursing once per
// character); longer ones are refused.
constexpr size_t kMaxReferenceLength = 4096;

// The keywords valijson sees instead of "pattern" and "format" (taken out of user schemas).
constexpr const char* kPatternKeyword = "$troupe-pattern";
constexpr const char* kFormatKeyword = "$troupe-format";
// Definitions holding the subschemas of patternProperties once resolved.
constexpr const char* kPatternDefinition = "$troupe-pattern-properties-";

std::string pointer_token(const std::string& key) {  // RFC 6901 escaping
  std::string out;
  for (char c : key) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

// The RE2 for an ECMA 262 regular expression of a schema (unanchored, like a search), cached;
// throws with `where` (a JSON pointer) in the message when RE2 cannot run it.
std::shared_ptr<const RE2> regex(const std::string& pattern, const std::string& where) {
  thread_local std::unordered_map<std::string, std::shared_ptr<const RE2>> cache;
  auto it = cache.find(pattern);
  if (it != cache.end()) return it->second;
  RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(kRegexMaxMemory);
  auto re = std::make_shared<const RE2>(pattern, options);
  if (!re->ok()) {
    std::string detail = re->error();
    switch (re->error_code()) {
      case RE2::ErrorBadEscape:
      case RE2::ErrorBadPerlOp:
      case RE2::ErrorBadNamedCapture:
        throw std::runtime_error(where +
                                 ": not supported by the linear-time engine (no backreferences "
                                 "or lookaround): " +
                                 detail);
      case RE2::ErrorPatternTooLarge:
        throw std::runtime_error(where + ": too large for the linear-time engine (" +
                                 std::to_string(kRegexMaxMemory >> 20) + " MiB): " + detail);
      default:
        throw std::runtime_error(where + ": not a valid regular expression: " + detail);
    }
  }
  if (cache.size() >= 256) cache.clear();
  cache.emplace(pattern, re);
  return re;
}

// "pattern", run by RE2.
class PatternConstraint : public valijson::constraints::PolyConstraint {
 public:
  explicit PatternConstraint(std::shared_ptr<const RE2> re) : re_(std::move(re)) {}

  bool validate(const valijson::adapters::Adapter& target, const std::vector<std::string>& context,
                valijson::ValidationResults* results) const override {
    if (!target.isString() || RE2::PartialMatch(target.asString(), *re_)) return true;
    if (results)
      results->pushError(context, "Failed to match regex specified by 'pattern' constraint.");
    return false;
  }

 private:
  Constraint* cloneInto(void* at) const override { return new (at) PatternConstraint(*this); }
  size_t sizeOf() const override { return sizeof(PatternConstraint); }

  std::shared_ptr<const RE2> re_;
};

// "format": date, time and date-time, with valijson's grammar, range check and messages.
class FormatConstraint : public valijson::constraints::PolyConstraint {
 public:
  explicit FormatConstraint(std::string format) : format_(std::move(format)) {}

  bool validate(const valijson::adapters::Adapter& target, const std::vector<std::string>& context,
                valijson::ValidationResults* results) const override {
    if (!target.isString()) return true;
    static const RE2 date("[0-9]+-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])");
    static const RE2 time(
        "(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\\.[0-9]+)?"
        "(?:[Zz]|[\\+|\\-](?:[01][0-9]|2[0-3]):[0-5][0-9])");
    static const RE2 date_time(
        "[0-9]+-(0[1-9]|1[012])-(0[1-9]|[12][0-9]|3[01])[Tt]"
        "(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\\.[0-9]+)?"
        "(?:[Zz]|[\\+|\\-](?:[01][0-9]|2[0-3]):[0-5][0-9])");
    const std::string s = target.asString();
    int month = 0, day = 0;
    if (format_ == "time") {
      if (RE2::FullMatch(s, time)) return true;
      return fail(results, context, "String should be a valid time");
    }
    const RE2& grammar = format_ == "date" ? date : date_time;
    if (!RE2::FullMatch(s, grammar, &month, &day))
      return fail(results, context,
                  format_ == "date" ? "String should be a valid date"
                                    : "String should be a valid date-time");
    int last = month == 2 ? 29 : (month <= 7) == (month % 2 == 0) ? 30 : 31;
    if (day > last) return fail(results, context, "String should be a valid date-time");
    return true;
  }

 private:
  static bool fail(valijson::ValidationResults* results, const std::vector<std::string>& context,
                   const char* message) {
    if (results) results->pushError(context, message);
    return false;
  }
  Constraint* cloneInto(void* at) const override { return new (at) FormatConstraint(*this); }
  size_t sizeOf() const override { return sizeof(FormatConstraint); }

  std::string format_;
};

class PatternBuilder : public valijson::ConstraintBuilder {
 public:
  valijson::constraints::Constraint* make(const valijson::adapters::Adapter& node) const override {
    return new PatternConstraint(regex(node.asString(), "pattern"));
  }
};

class FormatBuilder : public valijson::ConstraintBuilder {
 public:
  valijson::constraints::Constraint* make(const valijson::adapters::Adapter& node) const override {
    return new FormatConstraint(node.asString());
  }
};

// Rewrites the schema at `node` (JSON pointer `path`) and its subschemas for the constraints
// above, checking every regular expression with RE2; collects the schemas that have
// patternProperties, inner ones first.
void rewrite_schema(json& node, const std::string& path, std::vector<json*>* pattern_nodes) {
  if (!node.is_object()) return;
  node.erase(kPatternKeyword);
  node.erase(kFormatKeyword);
  for (const char* key : {"id", "$id", "$ref"}) {
    auto it = node.find(key);
    if (it != node.end() && it->is_string() &&
        it->get_ref<const std::string&>().size() > kMaxReferenceLength)
      throw std::runtime_error(path + "/" + key + ": longer than " +
                               std::to_string(kMaxReferenceLength) + " bytes");
  }
  auto child = [&](const std::string& suffix, json& sub) {  // suffix: JSON pointer tokens
    rewrite_schema(sub, path + "/" + suffix, pattern_nodes);
  };
  for (auto& [key, value] : node.items()) {
    if (key == "additionalItems" || key == "additionalProperties" || key == "contains" ||
        key == "propertyNames" || key == "if" || key == "then" || key == "else" || key == "not" ||
        (key == "items" && value.is_object())) {
      child(key, value);
    } else if ((key == "items" || key == "allOf" || key == "anyOf" || key == "oneOf") &&
               value.is_array()) {
      for (size_t i = 0; i < value.size(); ++i)
        child(key + "/" + std::to_string(i), value[i]);
    } else if ((key == "properties" || key == "patternProperties" || key == "definitions" ||
                key == "dependencies") &&
               value.is_object()) {
      for (auto& [name, sub] : value.items())
        child(key + "/" + pointer_token(name), sub);
    }
  }
  auto pattern = node.find("pattern");
  if (pattern != node.end() && pattern->is_string()) {
    regex(pattern->get<std::string>(), path + "/pattern");
    node[kPatternKeyword] = std::move(*pattern);
    node.erase("pattern");
  }
  auto format = node.find("format");
  if (format != node.end() && format->is_string() &&
      (*format == "date" || *format == "time" || *format == "date-time")) {
    node[kFormatKeyword] = std::move(*format);
    node.erase("format");
  }
  auto properties = node.find("patternProperties");
  if (properties != node.end() && properties->is_object()) {
    for (const auto& [key, sub] : properties->items())
      regex(key, path + "/patternProperties/" + pointer_token(key));
    pattern_nodes->push_back(&node);
  }
}

void collect_names(const json& value, std::set<std::string>* names) {
  if (value.is_object()) {
    for (const auto& [name, member] : value.items()) {
      names->insert(name);
      collect_names(member, names);
    }
  } else if (value.is_array()) {
    for (const json& item : value)
      collect_names(item, names);
  }
}

// Resolves patternProperties against the property names that occur in `value`: each subschema
// moves to /definitions, and each name that its pattern matches (RE2) gets it under
// "properties" (all of them, with the name's own "properties" schema, in an allOf). valijson
// then applies additionalProperties to the other names, as patternProperties would have.
void resolve_pattern_properties(json& root, const std::vector<json*>& pattern_nodes,
                                const json& value) {
  std::set<std::string> names;
  collect_names(value, &names);
  json& definitions = root["definitions"];
  if (definitions.is_null()) definitions = json::object();
  if (!definitions.is_object()) throw std::runtime_error("/definitions: not an object");
  size_t entries = 0, next = 0;
  for (json* node : pattern_nodes) {
    json patterns = std::move((*node)["patternProperties"]);
    node->erase("patternProperties");
    std::map<std::string, json> refs;  // name -> the subschemas it must match
    for (auto& [pattern, sub] : patterns.items()) {
      std::string key;
      do
        key = kPatternDefinition + std::to_string(next++);
      while (definitions.contains(key));
      definitions[key] = std::move(sub);
      json ref = {{"$ref", "#/definitions/" + key}};
      std::shared_ptr<const RE2> re = regex(pattern, "patternProperties");
      for (const std::string& name : names) {
        if (!RE2::PartialMatch(name, *re)) continue;
        if (++entries > kMaxPatternPropertyEntries)
          throw std::runtime_error("patternProperties: more than " +
                                   std::to_string(kMaxPatternPropertyEntries) +
                                   " matches of property names in this value");
        refs[name].push_back(ref);
      }
    }
    json& properties = (*node)["properties"];
    if (properties.is_null()) properties = json::object();
    if (!properties.is_object()) throw std::runtime_error("properties: not an object");
    for (auto& [name, list] : refs) {
      auto own = properties.find(name);
      if (own != properties.end()) list.insert(list.begin(), std::move(*own));
      properties[name] = {{"allOf", std::move(list)}};
    }
  }
}

std::shared_ptr<valijson::Schema> parse(const json& doc) {
  auto schema = std::make_shared<valijson::Schema>();
  valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
  parser.addConstraintBuilder(kPatternKeyword, new PatternBuilder);
  parser.addConstraintBuilder(kFormatKeyword, new FormatBuilder);
  valijson::adapters::NlohmannJsonAdapter adapter(doc);
  parser.populateSchema(adapter, *schema);  // no fetcher: remote $refs are refused
  return schema;
}

// The parsed schema for validating `value`. Cached by the schema's text (a tool's schema is
// checked on every call) unless it has patternProperties, which depend on the value. Bounded;
// the loop thread is the only user, but several hosts may run on several threads.
std::shared_ptr<valijson::Schema> parsed_schema(const json& doc, const std::string& text,
                                                const json& value, std::string* error) {
  thread_local std::unordered_map<std::string, std::shared_ptr<valijson::Schema>> cache;
  auto it = cache.find(text);
  if (it != cache.end()) return it->second;
  std::shared_ptr<valijson::Schema> schema;
  try {
    json rewritten = doc;
    std::vector<json*> pattern_nodes;
    rewrite_schema(rewritten, "", &pattern_nodes);
    if (!pattern_nodes.empty()) {
      resolve_pattern_properties(rewritten, pattern_nodes, value);
      return parse(rewritten);
    }
    schema = parse(rewritten);
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
int prim_validate(lua_State* L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checkany(L, 2);
  nlohmann::json schema_doc, value;
  std::string error;
  if (!lua::to_json(L, 1, &schema_doc, &error, "schema"))
    return luaL_error(L, "troupe.validate: %s", error.c_str());
  if (!lua::to_json(L, 2, &value, &error, "value"))
    return luaL_error(L, "troupe.validate: %s", error.c_str());
  std::string text = json_text(schema_doc);
  std::shared_ptr<valijson::Schema> schema = parsed_schema(schema_doc, text, value, &error);
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
  } catch (const std::exception& e) {
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
