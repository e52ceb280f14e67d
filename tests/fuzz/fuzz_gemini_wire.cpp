// fuzz_gemini_wire.cpp: libFuzzer target for the gemini plugin's response decoding
// (plugins/providers/gemini/gemini_wire.cpp): non-streamed bodies and alt=sse streams
// (wire_fuzz.h), with a thought-signature handler attached as the plugin attaches one.
#include "gemini_wire.h"

#include "common/json_access.h"
#include "fuzz/wire_fuzz.h"

namespace {

void on_signature(const std::string& name, const nlohmann::json& args,
                  const std::string& signature) {
  // The plugin keys its memory by the call's arguments text: they must serialise.
  (void)name, (void)signature;
  (void)troupe::kit::json_text(args);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const troupe::fuzz::WireTarget target{
      "gemini", false,
      [](std::string_view body, troupe::kit::ChatResponse* out) {
        return troupe::gemini::parse_response(body, out, &on_signature);
      },
      [] { return std::make_unique<troupe::gemini::StreamDecoder>(&on_signature); }};
  return troupe::fuzz::run_wire_input(target, data, size);
}
