// fuzz_openai_wire.cpp: libFuzzer target for the openai plugin's response decoding
// (plugins/providers/openai/openai_wire.cpp): non-streamed bodies and streams (wire_fuzz.h).
#include "openai_wire.h"

#include "fuzz/wire_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const troupe::fuzz::WireTarget target{
      "openai", false, &troupe::openai::parse_response,
      [] { return std::make_unique<troupe::openai::StreamDecoder>(); }};
  return troupe::fuzz::run_wire_input(target, data, size);
}
