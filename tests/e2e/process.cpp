// process.cpp: posix_spawn with pipes (or a pty), drained by poll(), killed at a deadline.
#include "e2e/process.h"

#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>

extern char** environ;

namespace troupe::test {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

[[noreturn]] void fail(const std::string& what, int err) {
  throw std::runtime_error(what + ": " + std::strerror(err));
}

void close_fd(int* fd) {
  if (*fd >= 0) ::close(*fd);
  *fd = -1;
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(left);
}

// The inherited environment with the requested removals and overrides, as KEY=VALUE strings.
std::vector<std::string> child_environment(const ProcessOptions& o) {
  std::set<std::string> drop(o.unset_env.begin(), o.unset_env.end());
  // A developer's real keys must not send the tests to the network (config.h: keys in the
  // environment select real vendors); a test that wants one passes it in o.env.
  for (const char* key : {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY",
                          "OLLAMA_HOST", "TROUPE_MODEL", "TROUPE_CONFIG"})
    drop.insert(key);
  for (const auto& [key, value] : o.env)
    drop.insert(key);
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) {
    std::string entry = *e;
    std::string key = entry.substr(0, entry.find('='));
    if (!drop.count(key)) out.push_back(entry);
  }
  for (const auto& [key, value] : o.env)
    out.push_back(key + "=" + value);
  return out;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v)
    out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

std::string ProcessResult::describe() const {
  std::string how;
  if (timed_out) {
    how = "timed out after " + std::to_string(elapsed.count()) + " ms";
  } else if (term_signal) {
    how = "killed by signal " + std::to_string(term_signal);
  } else {
    how = "exit code " + std::to_string(exit_code);
  }
  return how + " (" + std::to_string(elapsed.count()) + " ms)\n--- stdout ---\n" + out +
         "\n--- stderr ---\n" + err + "\n--------------";
}

Process::Process(const ProcessOptions& options) {
  if (options.args.empty()) throw std::runtime_error("Process: no program given");
  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};  // [0] is ours, [1] the child's
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) fail("pipe2", errno);
  if (options.stderr_is_tty) {
    if (::openpty(&err_pipe[0], &err_pipe[1], nullptr, nullptr, nullptr) != 0) {
      int e = errno;
      close_fd(&out_pipe[0]);
      close_fd(&out_pipe[1]);
      fail("openpty", e);
    }
    ::fcntl(err_pipe[0], F_SETFD, FD_CLOEXEC);
    ::fcntl(err_pipe[1], F_SETFD, FD_CLOEXEC);
  } else if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    int e = errno;
    close_fd(&out_pipe[0]);
    close_fd(&out_pipe[1]);
    fail("pipe2", e);
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  if (!options.cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, options.cwd.c_str());

  // The child starts with default dispositions and nothing blocked, whatever the test
  // runner ignores or blocks (ignored signals would otherwise survive exec).
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);

  std::vector<std::string> args = options.args;
  std::vector<std::string> env = child_environment(options);
  std::vector<char*> argv = c_strings(args);
  std::vector<char*> envp = c_strings(env);
  started_ = Clock::now();
  deadline_ = started_ + options.timeout;
  int rc = ::posix_spawn(&pid_, argv[0], &actions, &attr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close_fd(&out_pipe[1]);
  close_fd(&err_pipe[1]);
  out_fd_ = out_pipe[0];
  err_fd_ = err_pipe[0];
  if (rc != 0) {
    close_fd(&out_fd_);
    close_fd(&err_fd_);
    pid_ = -1;
    fail("cannot start " + options.args[0], rc);
  }
}

Process::~Process() {
  if (pid_ > 0 && !exited_) {
    ::kill(pid_, SIGKILL);
    reap(true);
  }
  close_fd(&out_fd_);
  close_fd(&err_fd_);
}

void Process::send_signal(int sig) {
  if (pid_ > 0 && !exited_) ::kill(pid_, sig);
}

void Process::pump(int timeout_ms) {
  pollfd fds[2];
  int* owners[2];
  std::string* sinks[2];
  nfds_t n = 0;
  if (out_fd_ >= 0) {
    fds[n] = {out_fd_, POLLIN, 0};
    owners[n] = &out_fd_;
    sinks[n++] = &result_.out;
  }
  if (err_fd_ >= 0) {
    fds[n] = {err_fd_, POLLIN, 0};
    owners[n] = &err_fd_;
    sinks[n++] = &result_.err;
  }
  if (n == 0) return;
  int ready = ::poll(fds, n, timeout_ms);
  if (ready <= 0) return;  // timeout, or EINTR: the caller loops
  for (nfds_t i = 0; i < n; ++i) {
    if (fds[i].revents == 0) continue;
    char buf[65536];
    ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
    if (got > 0) {
      sinks[i]->append(buf, static_cast<size_t>(got));
    } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
      close_fd(owners[i]);  // EOF; a pty reports EIO once the child side is closed
    }
  }
}

bool Process::reap(bool block) {
  if (exited_) return true;
  while (true) {
    pid_t r = ::waitpid(pid_, &status_, block ? 0 : WNOHANG);
    if (r == pid_) {
      exited_ = true;
      return true;
    }
    if (r == 0) return false;
    if (errno != EINTR) {  // not our child any more: nothing to wait for
      exited_ = true;
      status_ = 0;
      return true;
    }
  }
}

bool Process::wait_for_output(const std::string& needle, std::chrono::milliseconds timeout,
                              bool from_stdout) {
  auto until = std::min(Clock::now() + timeout, deadline_);
  const std::string& text = from_stdout ? result_.out : result_.err;
  while (text.find(needle) == std::string::npos) {
    if (out_fd_ < 0 && err_fd_ < 0) return false;
    int left = remaining_ms(until);
    if (left == 0) return false;
    pump(left);
  }
  return true;
}

ProcessResult Process::wait() {
  while ((out_fd_ >= 0 || err_fd_ >= 0) && remaining_ms(deadline_) > 0) {
    pump(remaining_ms(deadline_));
  }
  // The outputs are closed; the exit itself follows within moments.
  while (!reap(false) && remaining_ms(deadline_) > 0)
    ::poll(nullptr, 0, 5);
  if (!exited_) {
    result_.timed_out = true;
    ::kill(pid_, SIGKILL);
    reap(true);
    // Whatever the child wrote before it died is still worth showing.
    auto drain_until = Clock::now() + milliseconds(1000);
    while ((out_fd_ >= 0 || err_fd_ >= 0) && remaining_ms(drain_until) > 0) {
      pump(remaining_ms(drain_until));
    }
  }
  close_fd(&out_fd_);
  close_fd(&err_fd_);
  result_.elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - started_);
  if (WIFEXITED(status_)) {
    result_.exit_code = WEXITSTATUS(status_);
  } else if (WIFSIGNALED(status_)) {
    result_.term_signal = WTERMSIG(status_);
  }
  return result_;
}

ProcessResult run_process(const ProcessOptions& options) {
  Process p(options);
  return p.wait();
}

}  // namespace troupe::test
