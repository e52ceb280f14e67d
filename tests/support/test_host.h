// test_host.h: a real Host as the host tests set one up — the journal in the test's scratch
// folder, the plugins of the build tree, the mock plugin as provider "mock" — and the source of a
// workflow around a run function's body.
#pragma once

#include <filesystem>
#include <string>

#include "api/host.h"
#include "support/test_paths.h"

namespace troupe::test {

// default_config() with the journal at <dir>/troupe.db, the build tree's plugins, and these
// settings (JSON text) for the mock provider.
inline Config mock_host_config(const std::filesystem::path& dir,
                               const std::string& mock_settings_json = "{}") {
  Config c = default_config();
  c.store_path = (dir / "troupe.db").string();
  c.plugin_path = {plugins_dir()};
  c.providers["mock"].settings_json = mock_settings_json;
  return c;
}

// A workflow named `name` whose run function (of `input`) is `body`.
inline std::string workflow_source(const std::string& body, const std::string& name = "test") {
  return "local troupe = require('troupe')\n"
         "return troupe.workflow{ name = '" +
         name + "', run = function(input)\n" + body + "\nend }\n";
}

}  // namespace troupe::test
