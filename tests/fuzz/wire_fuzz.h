// wire_fuzz.h: the driver shared by the vendor decoder targets (fuzz_<vendor>_wire.cpp).
//
// An input is one byte and then what a vendor could send back. Bit 0 of the byte picks a
// complete non-streamed body (0) or a stream (1); the whole byte seeds where the stream is cut
// (pieces.h). A stream goes through the framing the plugin uses (SSE or NDJSON) into the
// vendor's StreamDecoder the way the kit's call driver feeds it (common/chat_call.cpp): events
// until the first error or the end marker, blank NDJSON lines skipped, a last NDJSON line
// without its LF still decoded, finish() once the end marker came.
// Checked beyond "no crash, no sanitizer report":
//   - an error starts with "<vendor>: " and has a status other than TROUPE_OK;
//   - a decoded response is valid against sdk/schemas/chat_response.schema.json (what
//     Call::finish() promises the host: non-negative counts, a known finish reason, tool
//     calls with an id, a name and object arguments).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

#define VALIJSON_USE_EXCEPTIONS 1
#include <nlohmann/json.hpp>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "common/call_error.h"
#include "common/chat_call.h"
#include "common/chat_response.h"
#include "common/event_sink.h"
#include "common/line_splitter.h"
#include "common/sse_parser.h"
#include "fuzz/pieces.h"

namespace troupe::fuzz {

struct WireTarget {
  std::string vendor;   // "openai": every error message starts with it
  bool ndjson = false;  // the stream's framing: NDJSON lines, else SSE events
  std::function<std::optional<kit::CallError>(std::string_view body, kit::ChatResponse* out)>
      parse_body;
  std::function<std::unique_ptr<kit::StreamDecoder>()> new_decoder;
};

[[noreturn]] inline void wire_fail(const WireTarget& t, const std::string& what) {
  std::fprintf(stderr, "fuzz_%s_wire: %s\n", t.vendor.c_str(), what.c_str());
  std::abort();
}

// The response contract, parsed once (TROUPE_FUZZ_RESPONSE_SCHEMA: its path, set by CMake).
inline const valijson::Schema& response_schema() {
  static const std::unique_ptr<valijson::Schema> schema = [] {
    std::ifstream in(TROUPE_FUZZ_RESPONSE_SCHEMA);
    std::stringstream text;
    text << in.rdbuf();
    nlohmann::json doc = nlohmann::json::parse(text.str());
    auto s = std::make_unique<valijson::Schema>();
    valijson::SchemaParser parser(valijson::SchemaParser::kDraft7);
    valijson::adapters::NlohmannJsonAdapter adapter(doc);
    parser.populateSchema(adapter, *s);
    return s;
  }();
  return *schema;
}

inline void check_error(const WireTarget& t, const kit::CallError& e) {
  if (e.status == TROUPE_OK) wire_fail(t, "an error with status OK: " + e.message);
  if (e.message.rfind(t.vendor + ": ", 0) != 0)
    wire_fail(t, "an error message without the vendor in front: " + e.message);
}

inline void check_response(const WireTarget& t, const kit::ChatResponse& r) {
  nlohmann::json doc = nlohmann::json::parse(r.to_json_text(), nullptr, false);
  if (doc.is_discarded()) wire_fail(t, "the response's JSON text does not parse");
  valijson::Validator validator;
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter adapter(doc);
  if (!validator.validate(response_schema(), adapter, &results)) {
    std::string why;
    valijson::ValidationResults::Error error;
    while (results.popError(error)) {
      std::string where;
      for (const std::string& p : error.context)
        where += p;
      why += "\n  " + where + ": " + error.description;
    }
    wire_fail(t, "the response breaks chat_response.schema.json:" + why + "\n  " + doc.dump());
  }
}

inline void decode_stream(const WireTarget& t, std::string_view bytes, uint8_t seed) {
  std::unique_ptr<kit::StreamDecoder> decoder = t.new_decoder();
  kit::RecordingSink sink;
  std::optional<kit::CallError> error;
  auto on_event = [&](const kit::SseEvent& e) {
    if (error || decoder->done()) return;
    error = decoder->on_sse(e, sink);
  };
  auto on_line = [&](std::string_view line) {
    if (error || decoder->done()) return;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) return;
    error = decoder->on_line(line, sink);
  };
  kit::SseParser sse;
  kit::LineSplitter lines;
  for (std::string_view piece : cut_into_pieces(bytes, seed)) {
    if (t.ndjson) {
      lines.feed(piece, on_line);
    } else {
      sse.feed(piece, on_event);
    }
  }
  if (t.ndjson && !lines.pending().empty()) {
    std::string last = lines.pending();
    on_line(last);
  }
  if (!error && decoder->done()) {
    kit::ChatResponse response;
    error = decoder->finish(&response);
    if (!error) check_response(t, response);
  }
  if (error) check_error(t, *error);
}

inline int run_wire_input(const WireTarget& t, const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  if ((data[0] & 1) == 0) {
    kit::ChatResponse response;
    if (std::optional<kit::CallError> e = t.parse_body(bytes, &response)) {
      check_error(t, *e);
    } else {
      check_response(t, response);
    }
  } else {
    decode_stream(t, bytes, data[0]);
  }
  return 0;
}

}  // namespace troupe::fuzz
