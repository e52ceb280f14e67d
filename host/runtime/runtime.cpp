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

constexpr int kHookEvery = 10000;  // instructions between two count-hook calls

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

int64_t unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

Core::Core(EventLoop& loop_, Store* store_, ProviderResolver& providers_, RuntimeOptions options_)
    : loop(loop_), store(store_), providers(providers_), options(options_) {
  L = lua_newstate(&lua::MemoryAccounting::alloc, &memory);
  if (L == nullptr) throw std::runtime_error("cannot create the Lua state");
  luaL_openlibs(L);
  lua::register_json_markers(L);
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
}

Core::~Core() {
  std::vector<std::shared_ptr<Run>> live;
  for (auto& [id, run] : runs)
    live.push_back(run);
  for (auto& run : live)
    cancel_now(run->id, "the host shut down");
  alive.reset();
  if (store) store->flush();
  ready_.clear();
  lua_close(L);
}

std::shared_ptr<Task> Core::shared(Task* t) {
  if (t->parent == nullptr) return t->run->root;
  return t->parent->join->children[t->branch - 1];
}

void Core::emit(Run& run, const char* type, const std::string& step_key, std::string data_json,
                bool persistent) {
  RunEvent ev{run.id, type, step_key, std::move(data_json), unix_ms()};
  if (persistent && store) store->append_event({0, run.id, ev.ts_ms, type, step_key, ev.data_json});
  if (listener) listener(ev);
}

std::string Core::start(const RunSpec& spec, std::function<void(const RunOutcome&)> on_done) {
  auto run = std::make_shared<Run>();
  run->core = this;
  run->id = make_run_id();
  run->created_ms = unix_ms();
  run->on_done = std::move(on_done);
  run->input_json = spec.input_json.empty() ? "{}" : spec.input_json;
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
  if (chunk == LUA_NOREF) {
    std::weak_ptr<bool> token = alive;
    std::weak_ptr<Run> weak = run;
    loop.post([this, token, weak, error] {
      if (token.expired()) return;
      if (auto r = weak.lock()) finish_run(*r, "failed", "", error);
    });
    return run->id;
  }
  if (spec.source_path.empty()) run->chunk_ref = chunk;  // string sources are not cached

  memory.set_current(run->mem_slot);
  auto root = new_task(*run, nullptr, 0, "", L);
  lua_State* co = root->co;
  lua_rawgeti(co, LUA_REGISTRYINDEX, runner_ref_);
  lua_rawgeti(co, LUA_REGISTRYINDEX, chunk);
  lua_rawgeti(co, LUA_REGISTRYINDEX, new_env_ref_);
  lua_call(co, 0, 1);  // new_env() cannot fail short of memory, and the host slot is unlimited
  lua_pushvalue(co, -1);
  run->env_ref = luaL_ref(co, LUA_REGISTRYINDEX);
  bool input_ok = lua::push_json(co, run->input_json, &error);
  memory.set_current(lua::MemoryAccounting::kHostSlot);
  run->root = root;
  if (!input_ok) {
    std::weak_ptr<bool> token = alive;
    std::weak_ptr<Run> weak = run;
    loop.post([this, token, weak, error] {
      if (token.expired()) return;
      if (auto r = weak.lock())
        finish_run(*r, "failed", "", "the input is not valid JSON: " + error);
    });
    return run->id;
  }
  schedule(root, [](lua_State*) { return 3; });  // runner(chunk, env, input) is on the stack
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
  t->co = lua_newthread(on);
  t->thread_ref = luaL_ref(on, LUA_REGISTRYINDEX);
  memory.set_current(previous);
  task_slot(t->co) = t.get();
  lua_sethook(t->co, &Core::count_hook, LUA_MASKCOUNT, kHookEvery);
  return t;
}

void Core::count_hook(lua_State* co, lua_Debug*) {
  Task* t = task_slot(co);
  if (t == nullptr) return;
  Run& run = *t->run;
  const RuntimeLimits& limits = run.core->options.limits;
  run.instructions += kHookEvery;
  run.slice += kHookEvery;
  if (run.kill_reason.empty() && run.instructions > limits.max_instructions) {
    run.kill_reason = "instruction limit exceeded: the run executed more than " +
                      std::to_string(limits.max_instructions) +
                      " Lua instructions (limits.max_instructions)";
  }
  if (!run.kill_reason.empty()) {
    luaL_error(co, "%s", run.kill_reason.c_str());
    return;
  }
  if (run.slice >= limits.slice_instructions && lua_isyieldable(co)) {
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

void Core::resume(const std::shared_ptr<Task>& task, const Pusher& push) {
  Run& run = *task->run;
  if (task->finished || run.done) return;
  std::shared_ptr<Run> keep = runs.at(run.id);  // finish_run may drop the run from the table
  memory.set_current(run.mem_slot);
  int nargs = push ? push(task->co) : 0;
  task->host_yield = task->preempted = false;
  task->cancel_op = nullptr;
  run.slice = 0;
  int nresults = 0;
  int status = lua_resume(task->co, L, nargs, &nresults);
  memory.set_current(lua::MemoryAccounting::kHostSlot);
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
  std::string message = error_text(*task, status);
  int error_ref = LUA_NOREF;
  if (task->parent && run.kill_reason.empty() && lua_type(task->co, -1) == LUA_TTABLE) {
    // A troupe error table (status, retryable, ...) travels to the join intact.
    lua_pushvalue(task->co, -1);
    error_ref = luaL_ref(task->co, LUA_REGISTRYINDEX);
  }
  task_failed(task, message, error_ref);
}

const std::string& Core::kill_reason(Run& run) {
  if (run.kill_reason.empty() && memory.exhausted(run.mem_slot)) {
    run.kill_reason = "memory limit exceeded: the run used more than " +
                      std::to_string(options.limits.max_memory_bytes >> 20) +
                      " MiB of Lua memory (limits.max_memory_mb)";
  }
  return run.kill_reason;
}

std::string Core::error_text(Task& task, int status) {
  Run& run = *task.run;
  kill_reason(run);
  std::string message;
  lua_State* co = task.co;
  if (!run.kill_reason.empty()) {
    message = run.kill_reason;
  } else if (status == LUA_ERRMEM) {
    message = "out of memory";
  } else if (lua_type(co, -1) == LUA_TSTRING) {
    message = lua_tostring(co, -1);
  } else if (lua_type(co, -1) == LUA_TTABLE &&
             lua_getfield(co, -1, "text") == LUA_TSTRING) {  // troupe errors
    message = lua_tostring(co, -1);
    lua_pop(co, 1);
  } else {
    message = std::string("(error object is a ") + luaL_typename(co, -1) + " value)";
  }
  // The coroutine's stack is still intact after the error: its traceback shows where.
  luaL_traceback(L, co, message.c_str(), 0);
  std::string text = lua_tostring(L, -1);
  lua_pop(L, 1);
  return text;
}

void Core::task_done(const std::shared_ptr<Task>& task, int nresults) {
  Run& run = *task->run;
  lua_State* co = task->co;
  if (task->parent == nullptr) {
    std::string out = "null", error;
    bool ok = nresults == 0 || lua::to_json(co, -nresults, &out, &error, "output");
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
  memory.set_current(run.mem_slot);
  lua_rawgeti(co, LUA_REGISTRYINDEX, join.results_ref);
  if (nresults > 0) {
    lua_pushvalue(co, -nresults - 1);
  } else {
    lua_pushnil(co);
  }
  lua_rawseti(co, -2, task->branch);
  lua_settop(co, 0);
  memory.set_current(lua::MemoryAccounting::kHostSlot);
  release(*task);
  ++join.done;
  if (join.is_map && join.started < join.total) start_map_branch(parent, L);
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
    lua_pushlstring(c, text.data(), text.size());
    lua_setfield(c, -2, "text");
    lua_pushinteger(c, branch);
    lua_setfield(c, -2, "branch");
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
  schedule(child, [](lua_State*) { return 2; });  // fn(item, index)
}

void Core::record_step(Run& run, StepRecord step, std::function<void()> on_recorded) {
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
  // Durable: go on only once the step's record is committed.
  std::weak_ptr<bool> token = alive;
  EventLoop* lp = &loop;
  std::string key = step.step_key, run_id = run.id;
  store->record_step(step, [lp, token, key, run_id, on_recorded = std::move(on_recorded)](bool ok) {
    lp->post([token, key, run_id, ok, on_recorded] {
      if (token.expired()) return;
      if (!ok)
        log::error("runtime", "the journal could not record step " + key + " of run " + run_id +
                                  "; continuing without it");
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
  memory.set_current(task.run->mem_slot);
  lua_resetthread(task.co);  // runs pending to-be-closed variables, frees the stack
  memory.set_current(lua::MemoryAccounting::kHostSlot);
  task_slot(task.co) = nullptr;
  luaL_unref(L, LUA_REGISTRYINDEX, task.thread_ref);
  task.thread_ref = LUA_NOREF;
  task.co = nullptr;
}

void Core::finish_run(Run& run, const std::string& status, const std::string& output_json,
                      const std::string& error) {
  if (run.done) return;
  run.done = true;
  std::shared_ptr<Run> keep = runs.at(run.id);
  if (run.root) cancel_task(*run.root);
  // Valid UTF-8 (an error may quote the script's bytes): the event's JSON, the store and a
  // Python str all take it, and the run always reaches on_done.
  std::string clean_error = utf8::valid(log::redact(error));
  int64_t now = unix_ms();
  if (store) store->finish_run(run.id, status, output_json, clean_error, now);
  nlohmann::json data = {{"status", status},
                         {"workflow", run.workflow},
                         {"steps", run.steps},
                         {"input_tokens", run.input_tokens},
                         {"output_tokens", run.output_tokens},
                         {"duration_ms", now - run.created_ms}};
  if (!clean_error.empty()) data["error"] = clean_error;
  emit(run, "run.finished", "",
       data.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  luaL_unref(L, LUA_REGISTRYINDEX, run.env_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, run.chunk_ref);
  run.env_ref = run.chunk_ref = LUA_NOREF;
  memory.close_slot(run.mem_slot);
  RunOutcome outcome{run.id, run.workflow, status, output_json, clean_error};
  auto on_done = std::move(run.on_done);
  runs.erase(run.id);
  if (on_done) on_done(outcome);
}

void Core::cancel(const std::string& run_id, const std::string& reason) {
  std::weak_ptr<bool> token = alive;
  loop.post([this, token, run_id, reason] {
    if (!token.expired()) cancel_now(run_id, reason);
  });
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
