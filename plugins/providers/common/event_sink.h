// event_sink.h: where a stream decoder sends normalized stream events.
//
// Decoders call it for every piece they decode, whether or not the caller streams: the kit's
// call driver forwards to the sdk::Call only when the caller asked for a stream (and counts
// the bytes against max_response_bytes). Unit tests of a decoder use RecordingSink.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace troupe::kit {

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void text_delta(std::string_view text) = 0;
  virtual void reasoning_delta(std::string_view text) = 0;
  // Tool call number `index` of this turn: id and name on its first piece, then arguments
  // JSON pieces (either may be empty).
  virtual void tool_call_delta(int32_t index, std::string_view id, std::string_view name,
                               std::string_view arguments) = 0;
  // Token usage so far: an object with any of input_tokens, output_tokens,
  // cached_input_tokens, reasoning_tokens, cache_write_tokens, total_tokens (absent = not known
  // yet).
  virtual void usage(const nlohmann::json& usage) = 0;
};

// Keeps every event, for tests.
class RecordingSink : public EventSink {
 public:
  struct ToolDelta {
    int32_t index;
    std::string id;
    std::string name;
    std::string arguments;
  };

  std::string text;       // all text deltas, concatenated
  std::string reasoning;  // all reasoning deltas, concatenated
  std::vector<std::string> text_pieces;
  std::vector<ToolDelta> tool_deltas;
  std::vector<nlohmann::json> usages;

  void text_delta(std::string_view t) override {
    text.append(t);
    text_pieces.emplace_back(t);
  }
  void reasoning_delta(std::string_view t) override { reasoning.append(t); }
  void tool_call_delta(int32_t index, std::string_view id, std::string_view name,
                       std::string_view arguments) override {
    tool_deltas.push_back({index, std::string(id), std::string(name), std::string(arguments)});
  }
  void usage(const nlohmann::json& u) override { usages.push_back(u); }
};

}  // namespace troupe::kit
