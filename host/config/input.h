// input.h: checking what a user hands a run — its input JSON and its workflow file.
//
// The CLI (`--input`, `troupe run <file>`) and the Python binding (Host.run(input=...)) check
// here before anything runs, so bad input is a usage error (exit 2, a ValueError) naming the
// file, line, column and key, never a crash or a half-started run.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace troupe {

// Says what is wrong and where: "input.json:3:12: input.items[0].n: the number ... ".
struct InputError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The largest input a run accepts (the journal keeps it, the run gets it as a Lua table).
inline constexpr uint64_t kMaxInputBytes = 16u << 20;
// The largest workflow script `troupe run` accepts.
inline constexpr uint64_t kMaxWorkflowBytes = 16u << 20;

// Checks workflow input JSON: at most kMaxInputBytes, valid JSON, nested at most
// lua::kMaxJsonDepth deep (what the runtime turns into Lua tables), no duplicate keys, numbers
// that fit a double. `source` names it in errors ("--input", a file name, "input").
// Throws InputError.
void check_input_json(std::string_view text, const std::string& source);

// The input of `troupe run --input ARG`: JSON text, or @FILE (a file, pipe or fifo; read up to
// kMaxInputBytes). Checked as above; empty input is "{}". Throws InputError.
std::string read_input_argument(const std::string& arg);

// Checks that a workflow path names a regular file (not a fifo, device or folder) of at most
// kMaxWorkflowBytes. Throws InputError.
void check_workflow_file(const std::string& path);

}  // namespace troupe
