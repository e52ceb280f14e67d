// fuzz_config.cpp: libFuzzer target for the config loader (host/config/config.cpp) on a file.
//
// Input: byte 0 picks the file's extension (even: troupe.yaml, odd: troupe.json), the rest is
// the file. load_config() reads it from a scratch folder of its own. Checked beyond "no crash,
// no sanitizer report": it returns a Config or throws ConfigError whose message starts with the
// file's path; nothing else escapes.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <string>

#include "config/config.h"

namespace {

namespace fs = std::filesystem;

const fs::path& scratch_dir() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("troupe-fuzz-config-" + std::to_string(getpid()));
    fs::create_directories(d);
    return d;
  }();
  return dir;
}

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz_config: %s\n", what.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string path = (scratch_dir() / ((data[0] & 1) ? "troupe.json" : "troupe.yaml")).string();
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data + 1), static_cast<std::streamsize>(size - 1));
  }
  try {
    troupe::Config config = troupe::load_config(path);
    if (config.path != path) fail("the Config does not name its file");
  } catch (const troupe::ConfigError& e) {
    if (std::string(e.what()).rfind(path, 0) != 0)
      fail(std::string("a ConfigError that does not start with the file: ") + e.what());
  } catch (const std::exception& e) {
    fail(std::string("load_config threw other than ConfigError: ") + e.what());
  }
  return 0;
}
