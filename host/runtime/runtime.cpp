// runtime.cpp: runs and their coroutines — start, resume, joins, the journal of steps, finish.
#include "runtime/runtime.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "core/log.h"
#include "core/utf8.h"
#include "loop/event_loop.h"
#include "runtime/json_lua.h"
#include "runtime/runtime_internal.h"

namespace troupe {
namespace rt {

namespace {

constexpr int kHookEvery = 10000;             // instructions between two count-hook calls
constexpr size_t kMaxErrorBytes = 16384;      // of an error message, before its traceback
constexpr uint64_t kStoreCancelPollMs = 250;  // how often live runs look for troupe cancel

// The Lua allocator, with the Core as its ud: any coroutine finds its Core in O(1).
void* core_alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
  return lua::MemoryAccounting::alloc(&static_cast<Core*>(ud)->memory, ptr, osize, nsize);
}

// Error messages are workflow data: a 50 MB message must not travel through events and rows.
std::string cap_message(std::string text) {
  if (text.size() <= kMaxErrorBytes) return text;
  size_t cut = kMaxErrorBytes;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
    --cut;  // not inside a UTF-8 sequence
  std::string more = "... (" + std::to_string(text.size() - cut) + " more bytes)";
  text.resize(cut);
  return text + more;
}

std::string make_run_id() {
  // 10 characters of time (ms, Crockford base32) then 6 random ones: ids sort by creation.
  static const char kAlphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
  uint64_t ms = static_cast<uint64_t>(unix_ms());
  std::string id(16, '0');
  for (int i = 9; i >= 0; --i) {
    id[i] = kAlphabet[ms & 31];
    ms >>= 5;
  }
  thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t r = rng();
  for (int i = 10; i < 16; ++i) {
    id[i] = kAlphabet[r & 31];
    r >>= 5;
  }
  return id;
}

bool read_file(const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  *out = ss.str();
  return true;
}

}  // namespace

uint64_t TaskTable::add(Task* task) {
  uint32_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else {
    index = static_cast<uint32_t>(entries_.size());
    entries_.emplace_back();
  }
  Entry& e = entries_[index];
  e.task = task;
  // Handles are never 0 (no task): the generation counts from 1.
  if (++e.generation == 0) e.generation = 1;
  return (static_cast<uint64_t>(e.generation) << 32) | index;
}

void TaskTable::remove(uint64_t handle) {
  uint32_t index = static_cast<uint32_t>(handle);
  if (handle == 0 || index >= entries_.size()) return;
  Entry& e = entries_[index];
  if (e.task == nullptr || e.generation != static_cast<uint32_t>(handle >> 32)) return;
  e.task = nullptr;
  free_.push_back(index);
}

Task* TaskTable::find(uint64_t handle) const {
  uint32_t index = static_cast<uint32_t>(handle);
  if (handle == 0 || index >= entries_.size()) return nullptr;
  const Entry& e = entries_[index];
  return e.generation == static_cast<uint32_t>(handle >> 32) ? e.task : nullptr;
}

int64_t unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

Core::Core(EventLoop& loop_, Store* store_, ProviderResolver& providers_, RuntimeOptions options_)
    : loop(loop_), store(store_), providers(providers_), options(options_) {
  L = lua_newstate(&core_alloc, this);
  if (L == nullptr) throw std::runtime_error("cannot create the Lua state");
  luaL_openlibs(L);
  lua::register_json_markers(L);
  install_meters(L);
  const std::string* src = builtin_script("troupe._runtime");
  if (src == nullptr) throw std::runtime_error("the embedded troupe library is missing");
  if (luaL_loadbufferx(L, src->data(), src->size(), "=[troupe] _runtime", "t") != LUA_OK ||
      (push_host_api(L, this), lua_pcall(L, 1, 1, 0)) != LUA_OK) {
    std::string msg = lua_tostring(L, -1);
    lua_close(L);
    throw std::runtime_error("cannot start the Lua runtime: " + msg);
  }
  lua_getfield(L, -1, "runner");
  runner_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_getfield(L, -1, "new_env");
  new_env_ref_ = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);
  // Most garbage (messages, responses) dies young; generational mode keeps pauses short.
  lua_gc(L, LUA_GCGEN, 0, 0);
  if (store) {
    // A write the journal could not commit fails its run as soon as the writer knows, whatever
    // the durability: nothing a run did may be silently missing from its record.
    std::weak_ptr<bool> token = alive;
    EventLoop* lp = &loop;
    store->set_failure_listener(
        [this, lp, token](const std::string& run_id, const std::string& error) {
          lp->post([this, token, run_id, error] {
            if (!token.expired()) journal_failed(run_id, error);
          });
        });
  }
}

Core::~Core() {
  {
    std::lock_guard lock(watch_mutex_);
    watch_stop_ = true;
  }
  watch_wake_.notify_all();
  if (watcher_.joinable()) watcher_.join();
  std::vector<std::shared_ptr<Run>> live;
  for (auto& [id, run] : runs)
    live.push_back(run);
  for (auto& run : live)
    cancel_now(run->id, "the host shut down");
  // Ended runs wait for their final record: commit it, then announce them here.
  if (store) store->flush();
  std::vector<std::string> ending;
  for (auto& [id, end] : ending_)
    ending.push_back(id);
  for (auto& id : ending)
    settle_run(id);
  alive.reset();
  if (store) {
    store->flush();
    store->set_failure_listener(nullptr);
  }
  ready_.clear();
  lua_close(L);
}

std::shared_ptr<Task> Core::shared(Task* t) {
  if (t->parent == nullptr) return t->run->root;
  return t->parent->join->children[t->branch - 1];
}

void Core::emit(Run& run, const char* type, const std::string& step_key, std::string data_json,
                bool persistent) {
  // Once a limit stopped the run, what it still causes is not stored (run.finished is).
  if (persistent && !charge_store(run, false, data_json.size() + step_key.size())) return;
  // Every event leaves here (listeners, the store): redacted once, as dumped (decision 0013).
  RunEvent ev{run.id, type, step_key, log::redact(data_json), unix_ms()};
  if (persistent && store) store->append_event({0, run.id, ev.ts_ms, type, step_key, ev.data_json});
  if (listener) listener(ev);
}

bool Core::charge_store(Run& run, bool is_step, uint64_t bytes) {
  if (run.done) return true;  // the run's own end, and steps settled after it, are recorded
  if (!run.kill_reason.empty()) return false;
  const RuntimeLimits& limits = options.limits;
  run.stored_bytes += bytes;
  if (is_step && ++run.recorded_steps > limits.max_steps) {
    run.kill_reason = "step limit exceeded: the run recorded more than " +
                      std::to_string(limits.max_steps) + " steps (limits.max_steps)";
  } else if (!is_step && ++run.events > limits.max_events) {
    run.kill_reason = "event limit exceeded: the run stored more than " +
                      std::to_string(limits.max_events) + " events, logs included " +
                      "(limits.max_events)";
  } else if (run.stored_bytes > limits.max_stored_bytes) {
    run.kill_reason = "store limit exceeded: the run stored more than " +
                      std::to_string(limits.max_stored_bytes >> 20) +
                      " MiB of steps and events (limits.max_stored_mb)";
  } else {
    return true;
  }
  stop_soon(run);
  return false;
}

void Core::charge_host_bytes(Run& run, int64_t delta) {
  run.host_bytes = delta < 0 && static_cast<uint64_t>(-delta) > run.host_bytes
                       ? 0
                       : run.host_bytes + static_cast<uint64_t>(delta);
  memory.set_reserved(run.mem_slot, run.host_bytes);
  if (delta > 0 && !run.done && run.kill_reason.empty() && !kill_reason(run).empty()) {
    stop_soon(run);
  }
}

void Core::stop_soon(Run& run) {
  std::weak_ptr<bool> token = alive;
  loop.post([this, token, id = run.id] {
    if (token.expired()) return;
    auto it = runs.find(id);
    if (it != runs.end()) finish_run(*it->second, "failed", "", it->second->kill_reason);
  });
}

std::string Core::start(const RunSpec& spec, std::function<void(const RunOutcome&)> on_done) {
  auto run = std::make_shared<Run>();
  run->core = this;
  run->id = make_run_id();
  run->created_ms = unix_ms();
  run->started_ns = EventLoop::now_ns();
  run->on_done = std::move(on_done);
  run->input_json = spec.input_json.empty() ? "{}" : log::redact(spec.input_json);
  run->durability = options.durability;
  if (!spec.source_path.empty()) {
    std::error_code ec;
    std::filesystem::path abs = std::filesystem::absolute(spec.source_path, ec);
    run->source = spec.source_path;
    run->dir = abs.parent_path().string();
    run->workflow = abs.stem().string();
  } else {
    run->source = spec.chunk_name;
    run->workflow = spec.chunk_name;
  }
  seed_rng(run->rng, std::hash<std::string>{}(run->id));  // deterministic per run id
  runs[run->id] = run;
  if (store) {
    store->create_run({run->id, run->workflow, run->source, run->input_json, "running", "", "",
                       run->created_ms, 0});
  }
  nlohmann::json started = {{"workflow", run->workflow}, {"source", run->source}};
  // Names, paths and errors come from the script: not always UTF-8, and the dump must not throw.
  emit(*run, "run.started", "",
       started.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));

  run->mem_slot = memory.open_slot(options.limits.max_memory_bytes);
  std::string error;
  int chunk = load_chunk(spec, &error);
  if (chunk != LUA_NOREF && spec.source_path.empty()) run->chunk_ref = chunk;  // not cached
  bool input_ok = true;
  if (chunk != LUA_NOREF) {
    // runner(chunk, env, input) on the root coroutine's stack; the input (workflow data, as
    // large as the caller likes) is charged to the run and may exhaust its memory.
    std::string failure = protect(run.get(), [&](lua_State* s) {
      auto root = new_task(*run, nullptr, 0, "", s);
      run->root = root;
      lua_rawgeti(root->co, LUA_REGISTRYINDEX, runner_ref_);
      lua_rawgeti(root->co, LUA_REGISTRYINDEX, chunk);
      lua_rawgeti(s, LUA_REGISTRYINDEX, new_env_ref_);
      lua_call(s, 0, 1);
      lua_pushvalue(s, -1);
      run->env_ref = luaL_ref(s, LUA_REGISTRYINDEX);
      lua_xmove(s, root->co, 1);
      input_ok = lua::push_json(s, run->input_json, &error);
      if (input_ok) lua_xmove(s, root->co, 1);
      root->start_args = 3;
    });
    if (!failure.empty()) {
      error = "the input does not fit in the run: " +
              (kill_reason(*run).empty() ? failure : run->kill_reason);
      chunk = LUA_NOREF;
    } else if (!input_ok) {
      error = "the input is not valid JSON: " + error;
      chunk = LUA_NOREF;
    }
  }
  if (chunk == LUA_NOREF) {
    std::weak_ptr<bool> token = alive;
    std::weak_ptr<Run> weak = run;
    loop.post([this, token, weak, error] {
      if (token.expired()) return;
      if (auto r = weak.lock()) finish_run(*r, "failed", "", error);
    });
    return run->id;
  }
  schedule(run->root, nullptr);
  set_live(run->id, true);
  return run->id;
}

int Core::load_chunk(const RunSpec& spec, std::string* error) {
  std::string source, chunkname;
  CachedChunk* cached = nullptr;
  if (!spec.source_path.empty()) {
    struct stat st {};
    if (::stat(spec.source_path.c_str(), &st) != 0) {
      *error = spec.source_path + ": cannot open: " + std::strerror(errno);
      return LUA_NOREF;
    }
    if (S_ISDIR(st.st_mode)) {
      *error = spec.source_path + ": is a folder, not a workflow script";
      return LUA_NOREF;
    }
    std::error_code ec;
    std::string key = std::filesystem::absolute(spec.source_path, ec).string();
    int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    cached = &chunks_[key];
    if (cached->ref != LUA_NOREF && cached->mtime_ns == mtime &&
        cached->size == static_cast<uint64_t>(st.st_size)) {
      return cached->ref;
    }
    if (!read_file(spec.source_path, &source, error)) return LUA_NOREF;
    cached->mtime_ns = mtime;
    cached->size = static_cast<uint64_t>(st.st_size);
    chunkname = "@" + spec.source_path;
  } else {
    source = spec.source;
    chunkname = "=" + spec.chunk_name;
  }
  if (!source.empty() && source[0] == '\x1b') {
    *error = spec.source_path + ": precompiled Lua bytecode is not accepted";
    return LUA_NOREF;
  }
  if (!source.empty() && source[0] == '#') source.insert(0, "--");  // a #! line
  // Compiled once, run many times: each run passes its own _ENV as the chunk's argument.
  // The prefix stays on line 1 so error messages keep the script's line numbers.
  source.insert(0, "local _ENV = ...; ");
  if (luaL_loadbufferx(L, source.data(), source.size(), chunkname.c_str(), "t") != LUA_OK) {
    *error = lua_tostring(L, -1);
    lua_pop(L, 1);
    return LUA_NOREF;
  }
  int ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (cached) {
    if (cached->ref != LUA_NOREF) luaL_unref(L, LUA_REGISTRYINDEX, cached->ref);
    cached->ref = ref;
  }
  return ref;
}

std::shared_ptr<Task> Core::new_task(Run& run, Task* parent, int branch, const std::string& path,
                                     lua_State* on) {
  auto t = std::make_shared<Task>();
  t->run = &run;
  t->parent = parent;
  t->branch = branch;
  t->path = path;
  uint32_t previous = memory.current();
  memory.set_current(run.mem_slot);
  lua_State* co = lua_newthread(on);  // these two may raise: nothing is registered yet
  t->thread_ref = luaL_ref(on, LUA_REGISTRYINDEX);
  memory.set_current(previous);
  t->co = co;
  t->handle = tasks_.add(t.get());
  thread_handle(co) = t->handle;
  lua_sethook(co, &Core::count_hook, LUA_MASKCOUNT, kHookEvery);
  return t;
}

void Core::charge_instructions(lua_State* co, uint64_t units) {
  Task* t = task_of_thread(co);
  if (t == nullptr) {
    // A coroutine kept past the end of its branch runs only once adopted by a live task
    // (_runtime.lua); anything else is refused rather than charged to nobody.
    if (thread_handle(co) != 0) luaL_error(co, "troupe: this coroutine's branch has ended");
    return;
  }
  Run& run = *t->run;
  const RuntimeLimits& limits = options.limits;
  run.instructions += units;
  run.slice += units;
  run.unyielding = lua_isyieldable(co) ? 0 : run.unyielding + units;
  if (kill_reason(run).empty()) {
    if (run.instructions > limits.max_instructions) {
      run.kill_reason = "instruction limit exceeded: the run executed more than " +
                        std::to_string(limits.max_instructions) +
                        " Lua instructions (limits.max_instructions)";
    } else if (run.unyielding > limits.max_unyielding_instructions) {
      run.kill_reason =
          "the run computed more than " + std::to_string(limits.max_unyielding_instructions) +
          " instructions where it cannot be suspended (a table.sort comparator, a string.gsub "
          "callback, __tostring, __close, ...), keeping every other run waiting "
          "(limits.max_unyielding_instructions)";
    }
  }
  if (!run.kill_reason.empty()) luaL_error(co, "%s", run.kill_reason.c_str());
}

void Core::count_hook(lua_State* co, lua_Debug*) {
  Core* core = core_of_state(co);
  core->charge_instructions(co, kHookEvery);  // raises once the run is stopped
  Task* t = core->task_of_thread(co);
  if (t != nullptr && t->run->slice >= core->options.limits.slice_instructions &&
      lua_isyieldable(co)) {
    // Let other runs and the loop's I/O go first; the scheduler resumes us right after.
    t->host_yield = t->preempted = true;
    lua_yield(co, 0);
  }
}

void Core::schedule(const std::shared_ptr<Task>& task, Pusher push) {
  ready_.push_back({task, std::move(push)});
  if (drive_posted_) return;
  drive_posted_ = true;
  std::weak_ptr<bool> token = alive;
  loop.post([this, token] {
    if (!token.expired()) drive();
  });
}

void Core::drive() {
  drive_posted_ = false;
  std::deque<Ready> batch;
  batch.swap(ready_);  // work scheduled meanwhile waits for the next loop turn (after I/O)
  for (auto& item : batch) {
    if (auto t = item.task.lock()) resume(t, item.push);
  }
}

void Core::resume(const std::shared_ptr<Task>& task, Pusher push) {
  Run& run = *task->run;
  if (task->finished || run.done) return;
  std::shared_ptr<Run> keep = runs.at(run.id);  // finish_run may drop the run from the table
  int nargs = 0;
  if (task->start_args >= 0) {
    nargs = task->start_args;  // the task's function and arguments are on its stack
    task->start_args = -1;
  } else {
    // Pushed by the primitive's continuation, inside the coroutine: whatever the values cost
    // (a large answer can exhaust the run's memory) raises in the run, not in the host.
    task->pending = std::move(push);
  }
  task->host_yield = task->preempted = false;
  task->cancel_op = nullptr;
  run.slice = 0;
  int nresults = 0;
  memory.set_current(run.mem_slot);
  int status = lua_resume(task->co, L, nargs, &nresults);
  memory.set_current(lua::MemoryAccounting::kHostSlot);
  task->pending = nullptr;
  if (status == LUA_YIELD) {
    lua_pop(task->co, nresults);
    if (task->preempted) {
      schedule(task, nullptr);
    } else if (!task->host_yield) {
      task_failed(task, "coroutine.yield: a workflow cannot yield to the host");
    }
    return;  // otherwise it waits for the host call it started
  }
  if (status == LUA_OK) {
    task_done(task, nresults);
    return;
  }
  int error_ref = LUA_NOREF;
  std::string message = error_text(*task, status, &error_ref);
  task_failed(task, message, error_ref);
}

const std::string& Core::kill_reason(Run& run) {
  if (!run.kill_reason.empty()) return run.kill_reason;
  const RuntimeLimits& limits = options.limits;
  if (memory.exhausted(run.mem_slot) ||
      memory.used(run.mem_slot) + run.host_bytes > limits.max_memory_bytes) {
    run.kill_reason = "memory limit exceeded: the run used more than " +
                      std::to_string(limits.max_memory_bytes >> 20) +
                      " MiB (Lua memory and the host buffers it holds; limits.max_memory_mb)";
  } else if (const char* why = interrupt_reason_.load(std::memory_order_acquire)) {
    run.cancelled = true;
    run.kill_reason = why;
  } else if (cancel_pending_.load(std::memory_order_acquire)) {
    std::lock_guard lock(cancel_mutex_);
    for (const auto& [id, reason] : cancel_requests_) {
      if (id == run.id) {
        run.cancelled = true;
        run.kill_reason = reason;
        break;
      }
    }
  }
  return run.kill_reason;
}

std::string Core::protect(Run* run, const std::function<void(lua_State*)>& fn) {
  uint32_t previous = memory.current();
  memory.set_current(run ? run->mem_slot : lua::MemoryAccounting::kHostSlot);
  int top = lua_gettop(L);
  lua_pushcfunction(L, [](lua_State* s) -> int {
    (*static_cast<const std::function<void(lua_State*)>*>(lua_touserdata(s, 1)))(s);
    return 0;
  });
  lua_pushlightuserdata(L, const_cast<std::function<void(lua_State*)>*>(&fn));
  int status = lua_pcall(L, 1, 0, 0);
  std::string error;
  if (status != LUA_OK) {
    error = status == LUA_ERRMEM             ? "not enough memory"
            : lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                             : "error";
  }
  lua_settop(L, top);
  memory.set_current(previous);
  return error;
}

std::string Core::error_text(Task& task, int status, int* error_ref) {
  Run& run = *task.run;
  kill_reason(run);
  if (run.cancelled) return run.kill_reason;
  // Only raw reads of the error value, on the main thread, never a metamethod: a workflow's
  // __index or __tostring must not run (unhooked) inside the host.
  std::string text;
  std::string failure = protect(nullptr, [&](lua_State* s) {
    lua_xmove(task.co, s, 1);
    std::string message;
    int type = lua_type(s, -1);
    if (!run.kill_reason.empty()) {
      message = run.kill_reason;
    } else if (status == LUA_ERRMEM) {
      message = "out of memory";
    } else if (type == LUA_TSTRING || type == LUA_TNUMBER) {
      size_t len = 0;
      const char* p = lua_tolstring(s, -1, &len);
      message.assign(p, len);
    } else if (type == LUA_TTABLE) {
      lua_pushliteral(s, "text");  // troupe errors
      if (lua_rawget(s, -2) == LUA_TSTRING) message = lua_tostring(s, -1);
      lua_pop(s, 1);
      if (message.empty()) message = "(error object is a table value)";
      if (task.parent != nullptr) {
        // A troupe error table (status, retryable, ...) travels to the join intact.
        lua_pushvalue(s, -1);
        *error_ref = luaL_ref(s, LUA_REGISTRYINDEX);
      }
    } else {
      message = std::string("(error object is a ") + lua_typename(s, type) + " value)";
    }
    message = cap_message(log::redact(message));
    // The coroutine's frames are still intact after the error: its traceback shows where.
    luaL_traceback(s, task.co, message.c_str(), 0);
    text = lua_tostring(s, -1);
  });
  if (!failure.empty() && text.empty()) {
    text = run.kill_reason.empty() ? "the run failed (its error could not be read: " + failure + ")"
                                   : run.kill_reason;
  }
  return text;
}

void Core::task_done(const std::shared_ptr<Task>& task, int nresults) {
  Run& run = *task->run;
  lua_State* co = task->co;
  if (nresults > 0) lua_settop(co, lua_gettop(co) - nresults + 1);  // the first result on top
  if (task->parent == nullptr) {
    std::string out = "null", error;
    bool ok = true;
    if (nresults > 0) {
      std::string failure = protect(&run, [&](lua_State* s) {
        lua_xmove(co, s, 1);
        ok = lua::to_json(s, -1, &out, &error, "output");
      });
      if (!failure.empty()) {
        ok = false;
        error = kill_reason(run).empty() ? failure : run.kill_reason;
      }
    }
    lua_settop(co, 0);
    task->finished = true;
    if (ok) {
      finish_run(run, "succeeded", out, "");
    } else {
      finish_run(run, "failed", "", "the workflow's result cannot be returned as JSON: " + error);
    }
    return;
  }
  Task& parent = *task->parent;
  Join& join = *parent.join;
  std::string failure = protect(&run, [&](lua_State* s) {
    lua_rawgeti(s, LUA_REGISTRYINDEX, join.results_ref);
    if (nresults > 0) {
      lua_xmove(co, s, 1);
    } else {
      lua_pushnil(s);
    }
    lua_rawseti(s, -2, task->branch);
    if (join.is_map && join.started < join.total) start_map_branch(parent, s);
  });
  lua_settop(co, 0);
  if (!failure.empty()) {
    task_failed(task, kill_reason(run).empty() ? failure : run.kill_reason);
    return;
  }
  release(*task);
  ++join.done;
  if (join.done < join.total) return;

  std::shared_ptr<Task> waiting = shared(&parent);
  std::unique_ptr<Join> finished = std::move(parent.join);
  emit(run, "join.finished", finished->step_key,
       nlohmann::json{{"branches", finished->total}, {"status", "succeeded"}}.dump());
  luaL_unref(L, LUA_REGISTRYINDEX, finished->fn_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, finished->list_ref);
  int results = finished->results_ref;
  int total = finished->total;
  bool is_map = finished->is_map;
  schedule(waiting, [results, total, is_map](lua_State* c) {
    lua_pushboolean(c, 1);
    lua_rawgeti(c, LUA_REGISTRYINDEX, results);
    luaL_unref(c, LUA_REGISTRYINDEX, results);
    if (is_map) return 2;
    if (!lua_checkstack(c, total + 2)) {  // cannot return that many values; return the list
      return 2;
    }
    int list = lua_gettop(c);
    for (int i = 1; i <= total; ++i)
      lua_rawgeti(c, list, i);
    lua_remove(c, list);
    return 1 + total;
  });
}

void Core::task_failed(const std::shared_ptr<Task>& task, const std::string& message,
                       int error_ref) {
  Run& run = *task->run;
  if (task->parent == nullptr) {
    release(*task);
    finish_run(run, run.cancelled ? "cancelled" : "failed", "", message);
    return;
  }
  Task& parent = *task->parent;
  std::shared_ptr<Task> waiting = shared(&parent);
  std::unique_ptr<Join> join = std::move(parent.join);
  std::string text = std::string(join->is_map ? "troupe.map: item " : "troupe.parallel: branch ") +
                     std::to_string(task->branch) + " failed: " + message;
  // The other branches are cancelled: their pending calls stop and they never resume.
  for (auto& child : join->children) {
    if (child && child.get() != task.get()) cancel_task(*child);
  }
  release(*task);
  luaL_unref(L, LUA_REGISTRYINDEX, join->results_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, join->fn_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, join->list_ref);
  emit(run, "join.finished", join->step_key,
       nlohmann::json{
           {"branches", join->total}, {"status", "failed"}, {"failed_branch", task->branch}}
           .dump());
  int branch = task->branch;
  schedule(waiting, [text, error_ref, branch](lua_State* c) {
    lua_pushboolean(c, 0);
    if (error_ref == LUA_NOREF) {
      lua_pushlstring(c, text.data(), text.size());
      return 2;
    }
    lua_rawgeti(c, LUA_REGISTRYINDEX, error_ref);
    luaL_unref(c, LUA_REGISTRYINDEX, error_ref);
    // Raw: the table is the workflow's, and its metamethods are not the host's to run.
    lua_pushliteral(c, "text");
    lua_pushlstring(c, text.data(), text.size());
    lua_rawset(c, -3);
    lua_pushliteral(c, "branch");
    lua_pushinteger(c, branch);
    lua_rawset(c, -3);
    return 2;
  });
}

void Core::start_map_branch(Task& parent, lua_State* on) {
  Join& join = *parent.join;
  int i = ++join.started;
  auto child = new_task(*parent.run, &parent, i, join.step_key + "." + std::to_string(i), on);
  lua_State* c = child->co;
  uint32_t previous = memory.current();
  memory.set_current(parent.run->mem_slot);
  lua_rawgeti(c, LUA_REGISTRYINDEX, join.fn_ref);
  lua_rawgeti(c, LUA_REGISTRYINDEX, join.list_ref);
  lua_rawgeti(c, -1, i);
  lua_remove(c, -2);
  lua_pushinteger(c, i);
  memory.set_current(previous);
  join.children.push_back(child);
  child->start_args = 2;  // fn(item, index)
  schedule(child, nullptr);
}

void Core::record_step(Run& run, StepRecord step, std::function<void()> on_recorded) {
  // Over a limit, the step is still journaled (it happened, and may have been paid for); the
  // run is failed soon after.
  charge_store(run, true,
               step.request_json.size() + step.response_json.size() + step.error.size() +
                   step.step_key.size());
  // The end is the start plus the latency measured on the monotonic clock: a wall-clock jump
  // during the step cannot make it end before it started.
  step.finished_ms = step.started_ms + step.latency_us / 1000;
  ++run.steps;
  run.input_tokens += step.input_tokens;
  run.output_tokens += step.output_tokens;
  nlohmann::json data = {{"kind", step.kind},
                         {"status", step.status},
                         {"latency_ms", static_cast<double>(step.latency_us) / 1000.0}};
  if (!step.agent.empty()) data["agent"] = step.agent;
  if (!step.model.empty()) data["model"] = step.model;
  if (step.input_tokens || step.output_tokens) {
    data["input_tokens"] = step.input_tokens;
    data["output_tokens"] = step.output_tokens;
  }
  if (!step.error.empty()) data["error"] = step.error;
  emit(run, "step.finished", step.step_key,
       data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  if (store == nullptr || run.durability == Durability::async || run.done) {
    if (store) store->record_step(step);
    if (on_recorded) on_recorded();
    return;
  }
  // Durable: go on only once the step's record is committed; if it cannot be, the run fails.
  std::weak_ptr<bool> token = alive;
  EventLoop* lp = &loop;
  std::string run_id = run.id;
  store->record_step(step,
                     [this, lp, token, run_id, on_recorded = std::move(on_recorded)](bool ok) {
                       lp->post([this, token, run_id, ok, on_recorded] {
                         if (token.expired()) return;
                         if (!ok) {
                           journal_failed(run_id, store->run_writes(run_id).error);
                           return;
                         }
                         if (on_recorded) on_recorded();
                       });
                     });
}

void Core::finish_step(const std::shared_ptr<Task>& task, StepRecord step, Pusher push) {
  Run& run = *task->run;
  if (task->finished || run.done) {
    record_step(run, std::move(step), nullptr);
    return;
  }
  std::weak_ptr<Task> weak = task;
  record_step(run, std::move(step), [this, weak, push = std::move(push)] {
    if (auto t = weak.lock()) schedule(t, push);
  });
}

void Core::cancel_task(Task& task) {
  if (task.cancel_op) {
    auto op = std::move(task.cancel_op);
    task.cancel_op = nullptr;
    task.finished = true;  // a synchronous completion of the op must not resume it
    op();
  }
  if (task.join) {
    std::unique_ptr<Join> join = std::move(task.join);
    for (auto& child : join->children) {
      if (child) cancel_task(*child);
    }
    luaL_unref(L, LUA_REGISTRYINDEX, join->results_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, join->fn_ref);
    luaL_unref(L, LUA_REGISTRYINDEX, join->list_ref);
  }
  release(task);
}

void Core::release(Task& task) {
  task.finished = true;
  if (task.thread_ref == LUA_NOREF) return;
  uint32_t previous = memory.current();
  memory.set_current(task.run->mem_slot);
  lua_resetthread(task.co);  // runs pending to-be-closed variables (protected), frees the stack
  memory.set_current(previous);
  tasks_.remove(task.handle);
  thread_handle(task.co) = 0;
  task.handle = 0;
  luaL_unref(L, LUA_REGISTRYINDEX, task.thread_ref);
  task.thread_ref = LUA_NOREF;
  task.co = nullptr;
}

void Core::finish_run(Run& run, const std::string& status, const std::string& output_json,
                      const std::string& error) {
  if (run.done) return;
  run.done = true;
  // Whatever Lua of the run still runs (its to-be-closed handlers) stops at its next hook.
  if (run.kill_reason.empty()) run.kill_reason = "the run has ended";
  std::shared_ptr<Run> keep = runs.at(run.id);
  if (run.root) cancel_task(*run.root);
  // Valid UTF-8 (an error may quote the script's bytes): the event's JSON, the store and a
  // Python str all take it, and the run always reaches on_done.
  std::string clean_error = utf8::valid(log::redact(error));
  std::string clean_output = log::redact(output_json);
  // The wall-clock end is the start plus the time measured on the monotonic clock: a clock
  // jump during the run cannot make its duration negative.
  int64_t finished_ms =
      run.created_ms + static_cast<int64_t>((EventLoop::now_ns() - run.started_ns) / 1'000'000);
  luaL_unref(L, LUA_REGISTRYINDEX, run.env_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, run.chunk_ref);
  run.env_ref = run.chunk_ref = LUA_NOREF;
  memory.close_slot(run.mem_slot);
  const std::string id = run.id;
  ending_[id] = Ending{keep, {id, run.workflow, status, clean_output, clean_error}, finished_ms};
  runs.erase(id);
  set_live(id, false);
  if (store == nullptr) {
    settle_run(id);
    return;
  }
  // Announced only once the final record is committed (every earlier write of the run is
  // settled by then too): a run whose record is lost must not be reported as recorded.
  std::weak_ptr<bool> token = alive;
  EventLoop* lp = &loop;
  store->finish_run(id, status, clean_output, clean_error, finished_ms,
                    [this, lp, token, id](bool) {
                      lp->post([this, token, id] {
                        if (!token.expired()) settle_run(id);
                      });
                    });
}

void Core::journal_failed(const std::string& run_id, const std::string& error) {
  auto it = runs.find(run_id);
  if (it == runs.end()) return;  // it ended: settle_run finds the failure in the store
  Run& run = *it->second;
  run.journal_failed = true;
  finish_run(run, "failed", "",
             "the journal could not record this run: " +
                 (error.empty() ? "a write was not committed" : error));
}

void Core::settle_run(const std::string& run_id) {
  auto it = ending_.find(run_id);
  if (it == ending_.end()) return;
  Ending end = std::move(it->second);
  ending_.erase(it);
  Run& run = *end.run;
  RunOutcome& outcome = end.outcome;
  if (store) {
    // Every write of the run was queued before its final record: each one is settled by now.
    RunWriteStats writes = store->run_writes(run_id);
    if (writes.failed > 0 && !run.journal_failed) {
      std::string before = outcome.status == "succeeded" ? ""
                           : outcome.error.empty()
                               ? "; before that it was " + outcome.status
                               : "; before that it was " + outcome.status + ": " + outcome.error;
      outcome.status = "failed";
      outcome.error = "the journal could not record this run: " + writes.error + before;
      // The final record may have committed with the earlier status; correct it if the store
      // takes writes again (a failure here is counted and logged by the store).
      store->finish_run(run_id, outcome.status, "", outcome.error, end.finished_ms);
    }
  }
  nlohmann::json data = {{"status", outcome.status},
                         {"workflow", run.workflow},
                         {"steps", run.steps},
                         {"input_tokens", run.input_tokens},
                         {"output_tokens", run.output_tokens},
                         {"duration_ms", end.finished_ms - run.created_ms}};
  if (!outcome.error.empty()) data["error"] = outcome.error;
  emit(run, "run.finished", "",
       data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  if (store) store->forget_run(run_id);
  auto on_done = std::move(run.on_done);
  if (on_done) on_done(outcome);
}

void Core::cancel(const std::string& run_id, const std::string& reason) {
  {
    std::lock_guard lock(cancel_mutex_);
    cancel_requests_.emplace_back(run_id, reason);
  }
  cancel_pending_.store(true, std::memory_order_release);
  std::weak_ptr<bool> token = alive;
  loop.post([this, token] {
    if (!token.expired()) apply_cancel_requests();
  });
}

void Core::set_live(const std::string& run_id, bool live) {
  if (store == nullptr) return;
  std::lock_guard lock(watch_mutex_);
  if (live) {
    live_ids_.insert(run_id);
  } else {
    live_ids_.erase(run_id);
  }
  if (live && !watcher_.joinable()) watcher_ = std::thread([this] { watch_store_cancels(); });
  if (live) watch_wake_.notify_all();
}

void Core::watch_store_cancels() {
  std::unique_lock lock(watch_mutex_);
  while (!watch_stop_) {
    // Idle (no live run): sleep until one starts or the core goes, instead of polling.
    watch_wake_.wait(lock, [this] { return watch_stop_ || !live_ids_.empty(); });
    watch_wake_.wait_for(lock, std::chrono::milliseconds(kStoreCancelPollMs));
    if (watch_stop_ || live_ids_.empty()) continue;
    lock.unlock();
    std::vector<CancelRequest> requests;
    try {
      requests = store->cancel_requests();
    } catch (const StoreError& e) {
      log::warn("runtime", std::string("cannot read cancel requests: ") + e.what());
    }
    lock.lock();
    std::vector<CancelRequest> ours;
    for (auto& request : requests) {
      // Another process's run (or one already over) is not ours to touch.
      if (live_ids_.count(request.run_id) != 0) ours.push_back(std::move(request));
    }
    lock.unlock();
    for (const auto& request : ours) {
      store->clear_cancel(request.run_id);
      cancel(request.run_id, request.reason);
    }
    lock.lock();
  }
}

void Core::apply_cancel_requests() {
  std::vector<std::pair<std::string, std::string>> requests;
  {
    std::lock_guard lock(cancel_mutex_);
    requests.swap(cancel_requests_);
    cancel_pending_.store(false, std::memory_order_release);
  }
  for (const auto& [run_id, reason] : requests)
    cancel_now(run_id, reason);
}

void Core::cancel_now(const std::string& run_id, const std::string& reason) {
  auto it = runs.find(run_id);
  if (it == runs.end()) return;
  std::shared_ptr<Run> run = it->second;
  run->cancelled = true;
  finish_run(*run, "cancelled", "", reason);
}

}  // namespace rt

// ----------------------------------------------------------------------------------------
// Runtime: the public face of rt::Core.

Runtime::Runtime(EventLoop& loop, Store* store, ProviderResolver& providers, RuntimeOptions options)
    : core_(std::make_unique<rt::Core>(loop, store, providers, options)) {}

Runtime::~Runtime() = default;

std::string Runtime::start(const RunSpec& spec, std::function<void(const RunOutcome&)> on_done) {
  return core_->start(spec, std::move(on_done));
}

void Runtime::cancel(const std::string& run_id, const std::string& reason) {
  core_->cancel(run_id, reason);
}

void Runtime::interrupt(const char* reason) noexcept {
  core_->interrupt_reason_.store(reason, std::memory_order_release);
}

void Runtime::set_listener(std::function<void(const RunEvent&)> listener) {
  core_->listener = std::move(listener);
}

void Runtime::set_default_model(const std::string& model) {
  core_->default_model = model;
}

size_t Runtime::active_runs() const {
  return core_->runs.size();
}

}  // namespace troupe
