// fake_vendor_main.cpp: troupe-fake-vendor, the fake LLM vendor server as a process (e2e tests).
//
//   troupe-fake-vendor [--port N] [--scenario file.json] [--verbose]
//
// Prints exactly one line, "listening on http://127.0.0.1:<port>", to stdout, then serves until
// SIGTERM or SIGINT, or until stdin closes when stdin is a pipe or a terminal (a parent that
// dies takes the server with it; /dev/null as stdin is not watched). --verbose prints one line
// per chat request to stderr.
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "support/vendor_server.h"

namespace {

int usage(const char* message) {
  if (message != nullptr) std::fprintf(stderr, "troupe-fake-vendor: %s\n", message);
  std::fprintf(stderr, "usage: troupe-fake-vendor [--port N] [--scenario file.json] [--verbose]\n");
  return 2;
}

// stdin is worth watching for EOF only when something can close it.
bool stdin_is_watchable() {
  struct stat st {};
  if (fstat(STDIN_FILENO, &st) != 0) return false;
  return S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || isatty(STDIN_FILENO) != 0;
}

}  // namespace

int main(int argc, char** argv) {
  long port = 0;
  std::string scenario;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--port" && i + 1 < argc) {
      char* end = nullptr;
      port = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || port < 0 || port > 65535) return usage("--port: not a port number");
    } else if (arg == "--scenario" && i + 1 < argc) {
      scenario = argv[++i];
    } else if (arg == "--verbose") {
      verbose = true;
    } else if (arg == "--help" || arg == "-h") {
      usage(nullptr);
      return 0;
    } else {
      return usage(("unknown argument " + arg).c_str());
    }
  }

  // Block the signals before any thread starts, so they all inherit the mask and the signals
  // arrive only through the signalfd below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  int signal_fd = signalfd(-1, &signals, SFD_CLOEXEC);
  if (signal_fd < 0) {
    std::fprintf(stderr, "troupe-fake-vendor: signalfd: %s\n", std::strerror(errno));
    return 1;
  }

  try {
    troupe::test::VendorServer server(static_cast<uint16_t>(port));
    server.set_verbose(verbose);
    if (!scenario.empty()) server.load_scenario_file(scenario);
    std::printf("listening on %s\n", server.url().c_str());
    std::fflush(stdout);

    const bool watch_stdin = stdin_is_watchable();
    for (;;) {
      pollfd fds[2] = {{signal_fd, POLLIN, 0}, {STDIN_FILENO, POLLIN, 0}};
      int n = poll(fds, watch_stdin ? 2 : 1, -1);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      if ((fds[0].revents & POLLIN) != 0) break;
      if (watch_stdin && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        char buf[4096];
        ssize_t got = read(STDIN_FILENO, buf, sizeof buf);
        if (got <= 0 && !(got < 0 && errno == EINTR)) break;  // EOF: the parent is gone
      }
    }
    server.stop();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "troupe-fake-vendor: %s\n", e.what());
    return 1;
  }
  close(signal_fd);
  return 0;
}
