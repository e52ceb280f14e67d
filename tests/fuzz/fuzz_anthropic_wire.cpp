// fuzz_anthropic_wire.cpp: libFuzzer target for the anthropic plugin's response decoding
// (plugins/providers/anthropic/anthropic_wire.cpp): non-streamed bodies and SSE streams
// (wire_fuzz.h). Bit 1 of the first byte decodes as for a request with response_format (a
// forced "structured_output" tool; bit 2: its schema was wrapped as {"value": ...}); every
// input decodes with one renamed tool ("get_weather" on the wire is troupe's "get.weather").
#include "anthropic_wire.h"

#include "fuzz/wire_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  troupe::anthropic::WireContext context;
  context.renamed_tools["get_weather"] = "get.weather";
  if (size > 0 && (data[0] & 2) != 0) {
    context.structured_tool = "structured_output";
    context.structured_wrapped = (data[0] & 4) != 0;
  }
  const troupe::fuzz::WireTarget target{
      "anthropic", false,
      [&context](std::string_view body, troupe::kit::ChatResponse* out) {
        return troupe::anthropic::parse_response(body, context, out);
      },
      [&context] { return std::make_unique<troupe::anthropic::StreamDecoder>(context); }};
  return troupe::fuzz::run_wire_input(target, data, size);
}
