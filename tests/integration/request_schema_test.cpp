// request_schema_test.cpp: the request bodies the openai and anthropic plugins really send
// (captured by the fake vendor server) validate against the vendors' official request schemas.
//
// The schemas are vendored subsets of the official descriptions, so a clean clone can run this:
//   tests/fixtures/specs/openai_chat_request.json        CreateChatCompletionRequest
//   tests/fixtures/specs/anthropic_messages_request.json CreateMessageParams
// each the component plus every component it references, transitively, with $refs rewritten
// to "#/definitions/<name>". When the originals sit beside the project (../shared/specs),
// VendoredSpecs.MatchTheOfficialDescriptions extracts them again and compares; run it with
// TROUPE_UPDATE_SPECS=1 to rewrite the vendored files from the originals.
//
// The originals are OpenAPI 3.1 (JSON Schema 2020-12 dialect, plus OpenAPI's "nullable"); the
// validator speaks draft 7, so to_draft7() adapts them when loading (see there).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include <yaml-cpp/yaml.h>

#define VALIJSON_USE_EXCEPTIONS 1
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "integration/plugin_test_util.h"
#include "plugin/plugin_instance.h"
#include "plugin/plugin_library.h"
#include "support/test_paths.h"
#include "support/vendor_server.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using ojson = nlohmann::ordered_json;  // keeps the descriptions' own key order in the files
using test::Vendor;
using test::VendorServer;

// ---------------------------------------------------------------------------------------------
// Where things are

fs::path vendored_dir() {
  return test::source_dir() / "tests" / "fixtures" / "specs";
}

// The shared design folder beside the project; absent on a clean clone.
fs::path originals_dir() {
  return test::source_dir() / ".." / "shared" / "specs";
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path.string());
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// ---------------------------------------------------------------------------------------------
// YAML (1.2 core schema) -> JSON

ojson yaml_scalar(const YAML::Node& node) {
  const std::string& tag = node.Tag();
  const std::string& text = node.Scalar();
  if (tag == "!" || tag == "tag:yaml.org,2002:str") return text;  // quoted or !!str
  if (text == "null" || text == "Null" || text == "NULL" || text == "~" || text.empty())
    return nullptr;
  if (text == "true" || text == "True" || text == "TRUE") return true;
  if (text == "false" || text == "False" || text == "FALSE") return false;
  static const std::regex integer("[-+]?[0-9]+");
  static const std::regex number("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (std::regex_match(text, integer)) {
    try {
      return std::stoll(text);
    } catch (const std::out_of_range&) {
    }
    try {
      if (text[0] != '-') return std::stoull(text);
    } catch (const std::out_of_range&) {
    }
    return std::stod(text);
  }
  if (std::regex_match(text, number)) return std::stod(text);
  return text;
}

ojson yaml_to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
    case YAML::NodeType::Undefined:
      return nullptr;
    case YAML::NodeType::Scalar:
      return yaml_scalar(node);
    case YAML::NodeType::Sequence: {
      ojson out = ojson::array();
      for (const auto& item : node)
        out.push_back(yaml_to_json(item));
      return out;
    }
    case YAML::NodeType::Map: {
      ojson out = ojson::object();
      for (const auto& item : node)
        out[item.first.as<std::string>()] = yaml_to_json(item.second);
      return out;
    }
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Extraction: one component and everything it references, $refs made local.

const std::string kComponentPrefix = "#/components/schemas/";

void collect_refs(const ojson& node, std::set<std::string>* names) {
  if (node.is_object()) {
    for (const auto& [key, value] : node.items()) {
      if (key == "$ref" && value.is_string()) {
        std::string ref = value.get<std::string>();
        if (ref.rfind(kComponentPrefix, 0) == 0) names->insert(ref.substr(kComponentPrefix.size()));
      } else {
        collect_refs(value, names);
      }
    }
  } else if (node.is_array()) {
    for (const auto& item : node)
      collect_refs(item, names);
  }
}

// Rewrites "$ref" values and discriminator mappings to "#/definitions/<name>".
ojson localize(const ojson& node) {
  if (node.is_object()) {
    ojson out = ojson::object();
    for (const auto& [key, value] : node.items()) {
      if (key == "$ref" && value.is_string() &&
          value.get<std::string>().rfind(kComponentPrefix, 0) == 0) {
        out[key] = "#/definitions/" + value.get<std::string>().substr(kComponentPrefix.size());
      } else if (key == "mapping" && value.is_object()) {
        ojson mapping = ojson::object();
        for (const auto& [k, v] : value.items()) {
          std::string target = v.is_string() ? v.get<std::string>() : "";
          mapping[k] = target.rfind(kComponentPrefix, 0) == 0
                           ? ojson("#/definitions/" + target.substr(kComponentPrefix.size()))
                           : v;
        }
        out[key] = mapping;
      } else {
        out[key] = localize(value);
      }
    }
    return out;
  }
  if (node.is_array()) {
    ojson out = ojson::array();
    for (const auto& item : node)
      out.push_back(localize(item));
    return out;
  }
  return node;
}

struct SpecSource {
  std::string file;       // in ../shared/specs
  std::string component;  // in components.schemas
  std::string vendored;   // in tests/fixtures/specs
  std::string origin;     // where the file itself came from (shared/specs/README.md)
};

const SpecSource kOpenAI = {"openai.openapi.yaml", "CreateChatCompletionRequest",
                            "openai_chat_request.json",
                            "openai/openai-openapi openapi.yaml (2026-08)"};
const SpecSource kAnthropic = {"anthropic.hosted_spec.2024-11.json", "CreateMessageParams",
                               "anthropic_messages_request.json",
                               "laszukdawid/anthropic-openapi-spec hosted_spec.json (2024-11; "
                               "unofficial copy of the description Anthropic's SDK is built from)"};

ojson load_original(const SpecSource& source) {
  fs::path path = originals_dir() / source.file;
  if (source.file.size() > 5 && source.file.substr(source.file.size() - 5) == ".yaml")
    return yaml_to_json(YAML::LoadFile(path.string()));
  return ojson::parse(read_file(path));
}

ojson extract(const ojson& spec, const SpecSource& source) {
  const ojson& schemas = spec.at("components").at("schemas");
  std::set<std::string> done;
  std::vector<std::string> todo = {source.component};
  while (!todo.empty()) {
    std::string name = todo.back();
    todo.pop_back();
    if (!done.insert(name).second) continue;
    std::set<std::string> refs;
    collect_refs(schemas.at(name), &refs);
    for (const auto& r : refs)
      if (done.count(r) == 0) todo.push_back(r);
  }
  ojson definitions = ojson::object();
  for (const auto& name : done)  // sorted: the file does not depend on discovery order
    definitions[name] = localize(schemas.at(name));
  const ojson& info = spec.value("info", ojson::object());
  ojson out = ojson::object();
  out["$comment"] =
      "Vendored subset of " + source.file + " from the shared specs folder (" + source.origin +
      "): components.schemas." + source.component + " and the " + std::to_string(done.size() - 1) +
      " schemas it references, $refs rewritten to #/definitions/<name>. Do not edit: "
      "TROUPE_UPDATE_SPECS=1 build/tests/request_schema_test rewrites it from the original.";
  out["x-source"] = {{"file", source.file},
                     {"component", source.component},
                     {"openapi", spec.value("openapi", "")},
                     {"title", info.value("title", "")},
                     {"version", info.value("version", "")}};
  out["allOf"] = ojson::array({{{"$ref", "#/definitions/" + source.component}}});
  out["definitions"] = definitions;
  return out;
}

// ---------------------------------------------------------------------------------------------
// OpenAPI 3.1 -> what a draft 7 validator understands:
//   - "nullable": true (OpenAPI 3.0, still used) adds "null" to the type, or wraps the schema
//     in anyOf [schema, {"type": "null"}] when it has no type of its own;
//   - "type": null (a generator's artifact, meaning "no type constraint") is dropped;
//   - "$ref" with sibling constraints (allowed since 2019-09, ignored by draft 7) becomes
//     allOf [{"$ref"}, {siblings}];
//   - type arrays and "const" are draft 7 already.

const std::set<std::string> kAnnotations = {"description", "title",    "default",
                                            "example",     "examples", "deprecated"};

json to_draft7(const json& node) {
  if (node.is_array()) {
    json out = json::array();
    for (const auto& item : node)
      out.push_back(to_draft7(item));
    return out;
  }
  if (!node.is_object()) return node;
  json out = json::object();
  for (const auto& [key, value] : node.items()) {
    if (key == "properties" || key == "definitions" || key == "$defs" ||
        key == "patternProperties") {
      json map = json::object();
      for (const auto& [name, schema] : value.items())
        map[name] = to_draft7(schema);
      out[key] = map;
    } else if (key == "enum" || key == "const" || key == "example" || key == "examples" ||
               key == "default" || key == "required") {
      out[key] = value;  // data, not schemas
    } else {
      out[key] = to_draft7(value);
    }
  }
  if (out.contains("type") && out["type"].is_null()) out.erase("type");
  bool nullable = out.value("nullable", false);
  out.erase("nullable");
  if (out.contains("$ref")) {
    json siblings = json::object();
    for (const auto& [key, value] : out.items())
      if (key != "$ref" && kAnnotations.count(key) == 0 && key.rfind("x-", 0) != 0)
        siblings[key] = value;
    if (!siblings.empty()) out = {{"allOf", json::array({{{"$ref", out["$ref"]}}, siblings})}};
  }
  if (nullable) {
    if (out.contains("type") && out["type"].is_string()) {
      out["type"] = json::array({out["type"], "null"});
      if (out.contains("enum") && out["enum"].is_array()) out["enum"].push_back(nullptr);
    } else if (out.contains("type") && out["type"].is_array()) {
      out["type"].push_back("null");
    } else {
      out = {{"anyOf", json::array({out, {{"type", "null"}}})}};
    }
  }
  return out;
}

struct LoadedSchema {
  json document;
  valijson::Schema schema;
};

const LoadedSchema& vendored_schema(const SpecSource& source) {
  static std::map<std::string, std::unique_ptr<LoadedSchema>> cache;
  auto& slot = cache[source.vendored];
  if (!slot) {
    slot = std::make_unique<LoadedSchema>();
    slot->document = to_draft7(json::parse(read_file(vendored_dir() / source.vendored)));
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::NlohmannJsonAdapter adapter(slot->document);
    parser.populateSchema(adapter, slot->schema);
  }
  return *slot;
}

// "" when the body is valid, else the validator's complaints (one per line).
std::string violations(const SpecSource& source, const json& body) {
  valijson::Validator validator;
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter target(body);
  if (validator.validate(vendored_schema(source).schema, target, &results)) return "";
  std::string all;
  valijson::ValidationResults::Error error;
  while (results.popError(error)) {
    std::string where;
    for (const auto& p : error.context)
      where += p;
    all += where + ": " + error.description + "\n";
  }
  return all.empty() ? "invalid" : all;
}

// ---------------------------------------------------------------------------------------------
// The vendored subsets

TEST(VendoredSpecs, CarryTheirOriginInAHeader) {
  for (const SpecSource* source : {&kOpenAI, &kAnthropic}) {
    json doc = json::parse(read_file(vendored_dir() / source->vendored));
    EXPECT_NE(doc.value("$comment", "").find(source->file), std::string::npos) << source->vendored;
    EXPECT_EQ(doc["x-source"].value("component", ""), source->component);
    EXPECT_TRUE(doc["definitions"].contains(source->component));
    // Every $ref is local and resolves.
    std::set<std::string> refs;
    std::function<void(const json&)> walk = [&](const json& node) {
      if (node.is_object()) {
        for (const auto& [key, value] : node.items()) {
          if (key == "$ref")
            refs.insert(value.get<std::string>());
          else
            walk(value);
        }
      } else if (node.is_array()) {
        for (const auto& item : node)
          walk(item);
      }
    };
    walk(doc);
    for (const auto& ref : refs) {
      ASSERT_EQ(ref.rfind("#/definitions/", 0), 0u) << ref;
      EXPECT_TRUE(doc["definitions"].contains(ref.substr(14))) << ref;
    }
  }
}

TEST(VendoredSpecs, MatchTheOfficialDescriptions) {
  if (!fs::exists(originals_dir()))
    GTEST_SKIP() << "no ../shared/specs beside the project (a clean clone): nothing to compare";
  const bool update = std::getenv("TROUPE_UPDATE_SPECS") != nullptr;
  for (const SpecSource* source : {&kOpenAI, &kAnthropic}) {
    SCOPED_TRACE(source->file);
    ojson extracted = extract(load_original(*source), *source);
    fs::path target = vendored_dir() / source->vendored;
    if (update) {
      fs::create_directories(vendored_dir());
      std::ofstream out(target, std::ios::binary);
      out << extracted.dump(2) << "\n";
      ASSERT_TRUE(out.good()) << "cannot write " << target;
      continue;
    }
    ASSERT_TRUE(fs::exists(target)) << target << " is missing: run with TROUPE_UPDATE_SPECS=1";
    json vendored = json::parse(read_file(target));
    json fresh = json::parse(extracted.dump());
    EXPECT_TRUE(vendored == fresh) << source->vendored << " no longer matches " << source->file
                                   << ": rerun with TROUPE_UPDATE_SPECS=1 and review the diff";
  }
}

TEST(VendoredSpecs, AdaptationKeepsNullableAndRefSiblings) {
  json adapted = to_draft7(json::parse(R"({
    "properties": {
      "a": {"type": "integer", "nullable": true},
      "b": {"$ref": "#/definitions/X", "description": "d", "nullable": true},
      "c": {"$ref": "#/definitions/X", "maxLength": 3},
      "d": {"type": null, "anyOf": [{"type": "string"}]},
      "e": {"type": "string", "enum": ["x"], "nullable": true}}})"));
  const json& p = adapted["properties"];
  EXPECT_EQ(p["a"]["type"], json::parse(R"(["integer","null"])"));
  EXPECT_EQ(p["b"]["anyOf"][1], json::parse(R"({"type":"null"})"));
  EXPECT_EQ(p["c"]["allOf"][1], json::parse(R"({"maxLength":3})"));
  EXPECT_FALSE(p["d"].contains("type"));
  EXPECT_EQ(p["e"]["enum"], json::parse(R"(["x",null])"));
}

// ---------------------------------------------------------------------------------------------
// What the plugins send

json tools() {
  return json::array({{{"name", "get_weather"},
                       {"description", "Current weather in a city"},
                       {"parameters",
                        {{"type", "object"},
                         {"properties", {{"city", {{"type", "string"}}}}},
                         {"required", json::array({"city"})}}}},
                      {{"name", "get_time"},
                       {"description", "Current time"},
                       {"parameters", {{"type", "object"}, {"properties", json::object()}}}}});
}

// Representative normalized requests: name -> (request, stream).
std::vector<std::tuple<std::string, json, bool>> representative_requests(const std::string& model) {
  auto user = [&](const std::string& text) {
    return json{{"model", model},
                {"messages", json::array({{{"role", "user"}, {"content", text}}})}};
  };
  std::vector<std::tuple<std::string, json, bool>> cases;
  cases.emplace_back("plain", user("hello"), false);
  json system = user("hello");
  json system_message = {{"role", "system"}, {"content", "You are terse."}};
  system["messages"].insert(system["messages"].begin(), system_message);
  cases.emplace_back("system prompt", system, false);
  json tuned = user("tuned");
  tuned["temperature"] = 0.2;
  tuned["max_tokens"] = 50;
  tuned["stop"] = json::array({"END", "STOP"});
  cases.emplace_back("temperature, max tokens, stop", tuned, false);
  for (const json& choice :
       {json("auto"), json("none"), json("required"), json{{"name", "get_weather"}}}) {
    json t = user("weather?");
    t["tools"] = tools();
    t["tool_choice"] = choice;
    cases.emplace_back("tools, tool_choice " + choice.dump(), t, false);
  }
  json plain_tools = user("weather?");
  plain_tools["tools"] = tools();
  cases.emplace_back("tools without tool_choice", plain_tools, false);
  json round_trip = {
      {"model", model},
      {"tools", tools()},
      {"messages",
       json::array(
           {{{"role", "system"}, {"content", "Use tools."}},
            {{"role", "user"}, {"content", "weather and time?"}},
            {{"role", "assistant"},
             {"content", "Let me check."},
             {"tool_calls",
              json::array(
                  {{{"id", "call_a"}, {"name", "get_weather"}, {"arguments", {{"city", "Oslo"}}}},
                   {{"id", "call_b"}, {"name", "get_time"}, {"arguments", json::object()}}})}},
            {{"role", "tool"}, {"tool_call_id", "call_a"}, {"content", "sunny"}},
            {{"role", "tool"}, {"tool_call_id", "call_b"}, {"content", "14:05"}}})}};
  cases.emplace_back("assistant tool calls and tool results", round_trip, false);
  json structured = user("review");
  structured["response_format"] = {{"type", "json_schema"},
                                   {"name", "review"},
                                   {"schema",
                                    {{"type", "object"},
                                     {"properties", {{"verdict", {{"type", "string"}}}}},
                                     {"required", json::array({"verdict"})}}}};
  cases.emplace_back("structured output", structured, false);
  json meta = user("with metadata");
  meta["metadata"] = {{"agent", "a"}, {"role", "coder"}, {"run_id", "r"}, {"step_key", "1"}};
  cases.emplace_back("metadata (never sent)", meta, false);
  cases.emplace_back("stream", user("stream it"), true);
  json stream_tools = user("weather?");
  stream_tools["tools"] = tools();
  cases.emplace_back("stream with tools", stream_tools, true);
  return cases;
}

class RequestSchema : public ::testing::Test {
 protected:
  // Sends every representative request through the plugin; returns the bodies it sent.
  std::vector<std::pair<std::string, json>> capture(Vendor vendor, const std::string& model) {
    std::string name = test::vendor_name(vendor);
    std::string path = test::plugins_dir() + "/" + name + ".so";
    EXPECT_TRUE(fs::exists(path)) << path << " is missing: build the troupe_" << name << " target";
    if (!fs::exists(path)) return {};
    InstanceConfig config;
    config.name = name;
    config.settings_json = json{{"base_url", server_.base_url(vendor)}}.dump();
    config.secrets["api_key"] = "sk-test-schema-0000";
    auto plugin = PluginInstance::create(loop_, PluginLibrary::load(path), config);
    std::vector<std::pair<std::string, json>> bodies;
    for (const auto& [label, request, stream] : representative_requests(model)) {
      size_t before = server_.chat_count();
      bool done = false;
      CallHandlers handlers;
      handlers.on_complete = [&](CallResult r) {
        done = true;
        EXPECT_EQ(r.status, TROUPE_OK) << label << ": " << r.error;
      };
      plugin->start_call("chat", request.dump(), stream, 0, std::move(handlers));
      EXPECT_TRUE(test::run_until(
          loop_, [&] { return done; }, 20000))
          << label;
      auto chats = server_.chats();
      if (chats.size() != before + 1) {
        ADD_FAILURE() << label << ": the plugin sent no request";
        continue;
      }
      bodies.emplace_back(label, chats.back().body);
    }
    test::run_until(
        loop_, [&] { return plugin->calls_in_flight() == 0; }, 5000);
    return bodies;
  }

  test::LogCapture logs_;
  VendorServer server_;
  EventLoop loop_;
};

TEST_F(RequestSchema, OpenAIRequestsFollowCreateChatCompletionRequest) {
  auto bodies = capture(Vendor::openai, "gpt-4o");
  EXPECT_EQ(bodies.size(), representative_requests("m").size());
  for (const auto& [label, body] : bodies)
    EXPECT_EQ(violations(kOpenAI, body), "") << label << ": " << body.dump();
}

TEST_F(RequestSchema, AnthropicRequestsFollowCreateMessageParams) {
  auto bodies = capture(Vendor::anthropic, "claude-sonnet-4-5");
  EXPECT_EQ(bodies.size(), representative_requests("m").size());
  for (const auto& [label, body] : bodies)
    EXPECT_EQ(violations(kAnthropic, body), "") << label << ": " << body.dump();
}

TEST(RequestSchemaValidator, AcceptsTheDocumentedExamplesAndRejectsBadBodies) {
  // The validator bites: near misses of real requests fail, the vendors' examples pass.
  json openai_ok = json::parse(R"({"model":"gpt-4o","messages":[
    {"role":"developer","content":"Be brief."},{"role":"user","content":"Hello!"}],
    "temperature":1,"stream":true,"stream_options":{"include_usage":true}})");
  EXPECT_EQ(violations(kOpenAI, openai_ok), "");
  for (const char* bad :
       {R"({"model":"gpt-4o"})",                                               // no messages
        R"({"model":"gpt-4o","messages":[]})",                                 // empty
        R"({"model":"gpt-4o","messages":[{"role":"robot","content":"hi"}]})",  // role
        R"({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"temperature":3})",
        R"({"model":"gpt-4o","messages":[{"role":"tool","content":"x"}]})",  // no tool_call_id
        R"({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],
               "tools":[{"type":"function","function":{"description":"no name"}}]})",
        R"({"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],
               "response_format":{"type":"json_schema"}})"}) {
    EXPECT_NE(violations(kOpenAI, json::parse(bad)), "") << bad;
  }

  json anthropic_ok = json::parse(R"({"model":"claude-3-5-sonnet-20241022","max_tokens":1024,
    "messages":[{"role":"user","content":"Hello, world"}]})");
  EXPECT_EQ(violations(kAnthropic, anthropic_ok), "");
  for (const char* bad :
       {R"({"model":"claude","messages":[{"role":"user","content":"hi"}]})",  // no max_tokens
        R"({"model":"claude","max_tokens":10,"messages":[{"role":"system","content":"x"}]})",
        R"({"model":"claude","max_tokens":"many","messages":[{"role":"user","content":"hi"}]})",
        R"({"model":"claude","max_tokens":10,"messages":[{"role":"user","content":"hi"}],
               "temperature":1.5})",
        R"({"model":"claude","max_tokens":10,"messages":[{"role":"user","content":"hi"}],
               "tool_choice":{"type":"function","name":"x"}})",
        R"({"model":"claude","max_tokens":10,"messages":[{"role":"user","content":[
               {"type":"tool_result","content":"no id"}]}]})",
        R"({"model":"claude","max_tokens":10,"messages":[{"role":"user","content":"hi"}],
               "unknown_field":true})"}) {
    EXPECT_NE(violations(kAnthropic, json::parse(bad)), "") << bad;
  }
}

}  // namespace
}  // namespace troupe
