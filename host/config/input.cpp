// input.cpp: checking a run's input JSON and workflow file (see input.h).
#include "config/input.h"

#include <cstring>

#include "config/bounded_read.h"
#include "config/document.h"
#include "runtime/json_lua.h"

namespace troupe {

void check_input_json(std::string_view text, const std::string& source) {
  if (text.size() > kMaxInputBytes) {
    throw InputError(source + ": an input may hold at most " + describe_size(kMaxInputBytes) +
                     "; this one holds " + std::to_string(text.size()) + " bytes");
  }
  DocumentLimits limits;
  limits.max_depth = lua::kMaxJsonDepth;
  limits.max_values = kMaxInputBytes;  // each value takes at least one byte of text
  limits.record_marks = false;
  limits.root = "input";
  try {
    read_json_document(text, limits);
  } catch (const DocumentError& e) {
    // Inline text has no file to name: "--input is not valid JSON at line 1, column 3: ...".
    if (source == "--input" && e.what_text.rfind(kNotJson, 0) == 0) {
      throw InputError("--input is not valid JSON at line " + std::to_string(e.mark.line) +
                       ", column " + std::to_string(e.mark.column) + ": " +
                       format_error("", {}, e.path, e.what_text.substr(std::strlen(kNotJson))));
    }
    throw InputError(format_error(source, e.mark, e.path, e.what_text));
  }
}

std::string read_input_argument(const std::string& arg) {
  std::string text = arg;
  std::string source = "--input";
  if (!arg.empty() && arg[0] == '@') {
    source = arg.substr(1);
    std::string error;
    if (!read_bounded(source, kMaxInputBytes, FileKind::stream, "the input file", &text, &error)) {
      throw InputError(error);
    }
  }
  if (text.empty()) return "{}";
  check_input_json(text, source);
  return text;
}

void check_workflow_file(const std::string& path) {
  std::string text, error;
  if (!read_bounded(path, kMaxWorkflowBytes, FileKind::regular, "a workflow script", &text,
                    &error)) {
    throw InputError(error);
  }
}

}  // namespace troupe
