// document.h: strict readers of JSON and YAML text into a JSON value that remembers where
// every key is.
//
// The configuration file and a workflow's input come from outside the host. These readers
// refuse, with the line, column and key path, what the permissive parsers accept silently or
// cannot survive: nesting deeper than a limit (no reader here recurses on the document),
// duplicate keys, numbers out of range (never wrapped or rounded to infinity), YAML aliases
// that refer to themselves or expand past a value budget ("billion laughs"), unknown tags and
// more than one YAML document. YAML scalars are typed by YAML 1.2's core schema.
#pragma once

#include <cstddef>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <string_view>

namespace troupe {

// A place in the text: 1-based line and column; 0 when unknown.
struct TextMark {
  int line = 0;
  int column = 0;
};

struct DocumentLimits {
  int max_depth = 64;           // containers open at once, aliases expanded
  size_t max_values = 100'000;  // values in the document, aliases expanded
  bool record_marks = true;     // keep a mark for every path (the configuration needs them)
  std::string root;             // the first part of every path: "" or "input"
};

struct Document {
  nlohmann::json value;
  // Where each key or value is, by path: "limits.max_memory_mb", "plugin_path[0]"; the
  // root's path is `root` (see DocumentLimits).
  std::map<std::string, TextMark> marks;
};

// What is wrong and where; format_error() writes it as "<file>:<line>:<col>: <path>: <what>".
struct DocumentError : std::runtime_error {
  DocumentError(TextMark mark, std::string path, std::string what);
  TextMark mark;
  std::string path;
  std::string what_text;
};

// "<file>:<line>:<col>: <path>: <what>", leaving out the parts that are unknown or empty.
std::string format_error(const std::string& file, TextMark mark, const std::string& path,
                         const std::string& what);

// A key or path as it may appear in an error: control bytes escaped, at most 200 characters.
std::string printable(std::string_view text);

// What a value is, for messages: "a mapping", "a list", "a string", "an integer", ...
const char* json_type_name(const nlohmann::json& value);

// How the message of a JSON syntax error starts.
inline constexpr const char* kNotJson = "not valid JSON: ";

// Both throw DocumentError.
Document read_json_document(std::string_view text, const DocumentLimits& limits);
Document read_yaml_document(const std::string& text, const DocumentLimits& limits);

}  // namespace troupe
