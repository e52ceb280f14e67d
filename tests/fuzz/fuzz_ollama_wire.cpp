// fuzz_ollama_wire.cpp: libFuzzer target for the ollama plugin's response decoding
// (plugins/providers/ollama/ollama_wire.cpp): non-streamed bodies and streams (wire_fuzz.h).
#include "ollama_wire.h"

#include "fuzz/wire_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const troupe::fuzz::WireTarget target{
      "ollama", true, &troupe::ollama::parse_response,
      [] { return std::make_unique<troupe::ollama::StreamDecoder>(); }};
  return troupe::fuzz::run_wire_input(target, data, size);
}
