// process.h: runs a child process for end-to-end tests — args, env, cwd, timeout, captured output.
//
// The child gets /dev/null as stdin and pipes (or, on request, a pseudo-terminal for stderr)
// as stdout/stderr. Both are drained with poll() so a child that fills one pipe while we wait
// on the other cannot deadlock. A child still running at its deadline is killed (SIGKILL).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

namespace troupe::test {

struct ProcessOptions {
  std::vector<std::string> args;              // args[0] is the program's path
  std::string cwd;                            // empty: the test's own working directory
  std::map<std::string, std::string> env;     // set (or override) in the inherited environment
  std::vector<std::string> unset_env;         // removed from the inherited environment
  std::chrono::milliseconds timeout{60'000};  // from start to exit; then SIGKILL
  bool stderr_is_tty = false;                 // stderr on a pseudo-terminal instead of a pipe
};

struct ProcessResult {
  int exit_code = -1;   // -1 when the child did not exit normally
  int term_signal = 0;  // the signal that ended it, if any
  bool timed_out = false;
  std::string out;
  std::string err;
  std::chrono::milliseconds elapsed{0};
  // One paragraph for assertion messages: how it ended, and both outputs.
  std::string describe() const;
};

// A running child. Not copyable; the destructor kills and reaps a child still running.
class Process {
 public:
  // Starts the child; throws std::runtime_error when it cannot be started.
  explicit Process(const ProcessOptions& options);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void send_signal(int sig);

  // Reads output until `needle` shows up on stderr (or stdout when from_stdout), the child
  // closes its outputs, or `timeout` passes. True when the needle was seen.
  bool wait_for_output(const std::string& needle, std::chrono::milliseconds timeout,
                       bool from_stdout = false);

  // Waits for the child to end (killing it at the deadline) and returns what happened.
  ProcessResult wait();

 private:
  // One poll() round of at most timeout_ms; appends what arrived.
  void pump(int timeout_ms);
  bool reap(bool block);

  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  bool exited_ = false;
  int status_ = 0;
  std::chrono::steady_clock::time_point started_;
  std::chrono::steady_clock::time_point deadline_;
  ProcessResult result_;
};

// Starts a child and waits for it.
ProcessResult run_process(const ProcessOptions& options);

}  // namespace troupe::test
