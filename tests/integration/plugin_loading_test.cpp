// plugin_loading_test.cpp: loading real .so files — each refusal's message, search path, scan.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <string>

#include "integration/plugin_test_util.h"
#include "plugin/plugin_instance.h"
#include "plugin/plugin_library.h"

namespace troupe {
namespace {

namespace fs = std::filesystem;
using test::fixture_path;

// The PluginError message for loading path, or "" when it loaded.
std::string load_error(const std::string& path) {
  try {
    PluginLibrary::load(path);
  } catch (const PluginError& e) {
    return e.what();
  }
  return "";
}

std::string abi() {
  return std::to_string(TROUPE_ABI_MAJOR) + "." + std::to_string(TROUPE_ABI_MINOR);
}

// A fresh folder under the system temp dir, removed afterwards.
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("troupe-plugin-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
  static inline int counter_ = 0;
};

// Sets an environment variable for the scope of a test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_)
      ::setenv(name_, old_.c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

TEST(PluginLoading, LoadsAWellFormedPluginAndReportsItsInfo) {
  auto lib = PluginLibrary::load(fixture_path("sync_complete"));
  const PluginInfo& info = lib->info();
  EXPECT_EQ(info.name, "sync_complete");
  EXPECT_EQ(info.version, "0.0.1");
  EXPECT_EQ(info.description, "troupe test fixture: sync_complete");
  EXPECT_EQ(info.kind, TROUPE_PLUGIN_PROVIDER);
  EXPECT_STREQ(plugin_kind_name(info.kind), "provider");
  EXPECT_EQ(info.abi_major, TROUPE_ABI_MAJOR);
  EXPECT_EQ(info.abi_minor, TROUPE_ABI_MINOR);
  EXPECT_NE(info.capabilities_json.find("\"fixture\":true"), std::string::npos);
  EXPECT_TRUE(fs::path(info.path).is_absolute());
  EXPECT_TRUE(fs::equivalent(info.path, fixture_path("sync_complete")));
  EXPECT_EQ(lib->descriptor().struct_size, sizeof(troupe_plugin_descriptor_t));
  EXPECT_NE(lib->descriptor().invoke, nullptr);
}

TEST(PluginLoading, NamesPluginKinds) {
  EXPECT_STREQ(plugin_kind_name(TROUPE_PLUGIN_PROVIDER), "provider");
  EXPECT_STREQ(plugin_kind_name(TROUPE_PLUGIN_INTEGRATION), "integration");
  EXPECT_STREQ(plugin_kind_name(99), "unknown");
}

TEST(PluginLoading, RefusesAnotherAbiMajorNamingBothVersions) {
  std::string path = fixture_path("abi_major");
  EXPECT_EQ(load_error(path), path + ": built for troupe ABI 2." +
                                  std::to_string(TROUPE_ABI_MINOR) + ", this host speaks " + abi());
}

TEST(PluginLoading, RefusesANewerAbiMinorAndAsksForAnUpgrade) {
  std::string path = fixture_path("abi_minor_newer");
  std::string plugin_abi =
      std::to_string(TROUPE_ABI_MAJOR) + "." + std::to_string(TROUPE_ABI_MINOR + 1);
  EXPECT_EQ(load_error(path), path + ": built against a newer ABI " + plugin_abi +
                                  " than this host's " + abi() + "; upgrade troupe");
}

TEST(PluginLoading, RefusesADescribeThatReturnsNull) {
  std::string path = fixture_path("describe_null");
  EXPECT_EQ(load_error(path),
            path +
                ": troupe_plugin_describe returned NULL (the plugin cannot work with troupe "
                "ABI " +
                abi() + ")");
}

TEST(PluginLoading, RefusesAnInvalidPluginName) {
  std::string path = fixture_path("bad_name");
  EXPECT_EQ(load_error(path),
            path + ": invalid plugin name \"Bad Name!\" (must be non-empty [a-z0-9_-]+)");
}

TEST(PluginLoading, RefusesADescriptorWithAMissingHook) {
  std::string path = fixture_path("missing_hook");
  EXPECT_EQ(load_error(path), path + ": descriptor has no invoke hook");
}

TEST(PluginLoading, RefusesADescriptorShorterThanVersionOne) {
  std::string path = fixture_path("short_descriptor");
  std::string error = load_error(path);
  EXPECT_EQ(error.rfind(path + ": descriptor too small (struct_size " +
                            std::to_string(offsetof(troupe_plugin_descriptor_t, create)),
                        0),
            0u)
      << error;
  EXPECT_NE(error.find("at least " + std::to_string(sizeof(troupe_plugin_descriptor_t))),
            std::string::npos)
      << error;
}

TEST(PluginLoading, RefusesALibraryWithoutTheEntrySymbol) {
  std::string path = fixture_path("no_entry");
  EXPECT_EQ(load_error(path), path + ": no troupe_plugin_describe symbol (not a troupe plugin?)");
}

TEST(PluginLoading, RefusesAFileThatIsNotASharedLibraryWithTheLoadersReason) {
  std::string path = fixture_path("not_a_library");
  std::string error = load_error(path);
  EXPECT_EQ(error.rfind(path + ": not a shared library (", 0), 0u) << error;
  // dlerror's own words ("invalid ELF header" or "file too short") are kept.
  EXPECT_TRUE(error.find("ELF") != std::string::npos ||
              error.find("file too short") != std::string::npos)
      << error;
}

TEST(PluginLoading, RefusesAMissingFileOrAFolder) {
  std::string missing = test::fixtures_dir() + "/does_not_exist.so";
  EXPECT_EQ(load_error(missing), missing + ": no such file");
  EXPECT_EQ(load_error(test::fixtures_dir()), test::fixtures_dir() + ": not a regular file");
}

TEST(PluginLoading, TheHostSurvivesEveryRefusalAndStillRunsAGoodPlugin) {
  for (const char* bad : {"abi_major", "abi_minor_newer", "describe_null", "bad_name",
                          "missing_hook", "short_descriptor", "no_entry", "not_a_library"}) {
    EXPECT_THROW(PluginLibrary::load(fixture_path(bad)), PluginError) << bad;
    EXPECT_THROW(PluginLibrary::load(fixture_path(bad)), PluginError) << bad << " (again)";
  }
  EventLoop loop;
  auto instance =
      PluginInstance::create(loop, PluginLibrary::load(fixture_path("sync_complete")), {});
  test::CallProbe probe;
  instance->start_call("ping", "{}", false, 0, probe.handlers());
  ASSERT_TRUE(test::run_until(loop, [&] { return probe.done(); }));
  EXPECT_EQ(probe.results[0].status, TROUPE_OK);
  EXPECT_EQ(probe.results[0].result_json, "{\"pong\":true}");
}

TEST(PluginLoading, CreateFailureBecomesAPluginErrorWithThePluginsMessage) {
  EventLoop loop;
  auto lib = PluginLibrary::load(fixture_path("create_fails"));
  InstanceConfig config;
  config.name = "strict";
  try {
    PluginInstance::create(loop, lib, config);
    FAIL() << "create should have failed";
  } catch (const PluginError& e) {
    EXPECT_STREQ(e.what(), "strict: create failed: missing required setting 'model'");
  }
}

TEST(PluginLoading, CreateThatThrowsBecomesAPluginError) {
  EventLoop loop;
  auto lib = PluginLibrary::load(fixture_path("create_throws"));
  try {
    PluginInstance::create(loop, lib, {});  // unnamed: the plugin's name stands in
    FAIL() << "create should have failed";
  } catch (const PluginError& e) {
    EXPECT_STREQ(e.what(), "create_throws: create threw: fixture create exploded");
  }
  // The library is unharmed: a second attempt fails the same way.
  EXPECT_THROW(PluginInstance::create(loop, lib, {}), PluginError);
}

TEST(PluginLoading, SettingsThatAreNotAJsonObjectAreRefused) {
  EventLoop loop;
  auto lib = PluginLibrary::load(fixture_path("sync_complete"));
  InstanceConfig config;
  config.name = "picky";
  config.settings_json = "[1,2]";
  try {
    PluginInstance::create(loop, lib, config);
    FAIL() << "create should have failed";
  } catch (const PluginError& e) {
    EXPECT_STREQ(e.what(), "picky: settings are not a JSON object");
  }
}

TEST(PluginLoading, TheLibraryStaysLoadedWhileAnInstanceLives) {
  EventLoop loop;
  auto lib = PluginLibrary::load(fixture_path("sync_complete"));
  std::weak_ptr<PluginLibrary> weak = lib;
  auto instance = PluginInstance::create(loop, std::move(lib), {});
  EXPECT_FALSE(weak.expired());
  test::CallProbe probe;
  instance->start_call("chat", "{}", true, 0, probe.handlers());
  ASSERT_TRUE(test::run_until(loop, [&] { return probe.done(); }));
  EXPECT_EQ(probe.text, "sync");
  instance.reset();
  EXPECT_TRUE(weak.expired());
}

TEST(PluginSearch, SearchPathIsConfiguredThenEnvironmentThenExecutableFolder) {
  TempDir a, b, c;
  ScopedEnv env("TROUPE_PLUGIN_PATH", b.str() + ":/nonexistent/troupe/plugins:" + c.str());
  auto path = plugin_search_path({a.str(), "/nonexistent/configured", a.str()});
  ASSERT_GE(path.size(), 3u);
  EXPECT_EQ(path[0], a.str());  // listed twice, kept once
  EXPECT_EQ(path[1], b.str());
  EXPECT_EQ(path[2], c.str());
  for (const auto& dir : path)
    EXPECT_EQ(dir.find("nonexistent"), std::string::npos) << dir;
  // The executable's own plugins folder comes last, when it exists.
  fs::path exe_plugins = fs::read_symlink("/proc/self/exe").parent_path() / "plugins";
  if (fs::is_directory(exe_plugins)) {
    EXPECT_EQ(path.size(), 4u);
    EXPECT_EQ(path.back(), exe_plugins.string());
  } else {
    EXPECT_EQ(path.size(), 3u);
  }
}

TEST(PluginSearch, FindPluginLooksNamesUpAlongThePathAndTakesPathsAsGiven) {
  TempDir empty;
  std::vector<std::string> search = {empty.str(), test::fixtures_dir()};
  EXPECT_EQ(find_plugin("sync_complete", search), test::fixtures_dir() + "/sync_complete.so");
  EXPECT_EQ(find_plugin("./x/y.so", search), "./x/y.so");
  EXPECT_EQ(find_plugin("custom.so", search), "custom.so");
  try {
    find_plugin("nope", search);
    FAIL() << "nope should not be found";
  } catch (const PluginError& e) {
    EXPECT_EQ(std::string(e.what()), "nope: plugin not found (searched " + empty.str() + ", " +
                                         test::fixtures_dir() + ")");
  }
  EXPECT_THROW(find_plugin("nope", {}), PluginError);
}

TEST(PluginSearch, ScanListsEveryLibraryWithEitherInfoOrAnError) {
  TempDir shadow;
  fs::copy_file(fixture_path("sync_complete"), shadow.str() + "/again.so");
  auto entries = scan_plugins({test::fixtures_dir(), shadow.str()});
  std::map<std::string, const PluginScanEntry*> by_file;
  for (const auto& e : entries)
    by_file[fs::path(e.path).filename().string()] = &e;

  for (const char* good : {"sync_complete.so", "foreign_thread.so", "complete_twice.so"}) {
    ASSERT_TRUE(by_file.count(good)) << good;
    EXPECT_TRUE(by_file[good]->library) << good << ": " << by_file[good]->error;
    EXPECT_TRUE(by_file[good]->error.empty());
  }
  for (const char* bad : {"abi_major.so", "describe_null.so", "no_entry.so", "not_a_library.so",
                          "bad_name.so", "missing_hook.so", "short_descriptor.so"}) {
    ASSERT_TRUE(by_file.count(bad)) << bad;
    EXPECT_FALSE(by_file[bad]->library) << bad;
    EXPECT_EQ(by_file[bad]->error.rfind(by_file[bad]->path + ": ", 0), 0u) << by_file[bad]->error;
  }
  // The copy in the later folder claims a name the first folder already provides.
  ASSERT_TRUE(by_file.count("again.so"));
  EXPECT_FALSE(by_file["again.so"]->library);
  EXPECT_NE(by_file["again.so"]->error.find("\"sync_complete\" is already provided by"),
            std::string::npos)
      << by_file["again.so"]->error;
}

}  // namespace
}  // namespace troupe
