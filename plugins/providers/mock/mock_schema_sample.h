// mock_schema_sample.h: a JSON value that follows a JSON Schema — the mock's answer when a
// request asks for structured output (response_format) and no rule gives a reply.
#pragma once

#include <string>
#include <string_view>

namespace troupe::mock {

// A JSON value that follows a JSON Schema (its text): every declared property, enums and
// consts honoured, one item per array (or minItems), bounds respected, local $refs followed.
// Deterministic; "{}" when the schema cannot be read.
std::string sample_json(std::string_view schema_json);

}  // namespace troupe::mock
