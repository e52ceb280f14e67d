// scheduler.cpp: tasks and joins — creating coroutines, resuming ready tasks in batches,
// a branch's end into its join (parallel, map), failures and cancels of branches, and
// Core::protect for the host's own Lua calls on a run's behalf.
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "loop/event_loop.h"
#include "runtime/json_lua.h"
#include "runtime/runtime_internal.h"

namespace troupe::rt {

namespace {

constexpr size_t kMaxErrorBytes = 16384;  // of an error message, before its traceback

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

std::shared_ptr<Task> Core::shared(Task* t) {
  if (t->parent == nullptr) return t->run->root;
  return t->parent->join->children[t->branch - 1];
}

std::shared_ptr<Task> Core::new_task(Run& run, Task* parent, int branch, const std::string& path,
                                     lua_State* on) {
  auto t = std::make_shared<Task>();
  t->run = &run;
  t->parent = parent;
  t->branch = branch;
  t->path = path;
  seed_rng(t->rng, fnv1a64(run.id + "/" + path));
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

void Core::schedule(const std::shared_ptr<Task>& task, Pusher push) {
  ready_.push_back({task, std::move(push)});
  if (drive_posted_) return;
  drive_posted_ = true;
  Liveness::Watch token = alive.watch();
  loop.post([this, token] {
    if (!token.gone()) drive();
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

bool Core::protect(Run* run, const std::function<void(lua_State*)>& fn, std::string* error) {
  uint32_t previous = memory.current();
  memory.set_current(run ? run->mem_slot : lua::MemoryAccounting::kHostSlot);
  int top = lua_gettop(L);
  lua_pushcfunction(L, [](lua_State* s) -> int {
    (*static_cast<const std::function<void(lua_State*)>*>(lua_touserdata(s, 1)))(s);
    return 0;
  });
  lua_pushlightuserdata(L, const_cast<std::function<void(lua_State*)>*>(&fn));
  int status = lua_pcall(L, 1, 0, 0);
  if (status != LUA_OK) {
    *error = status == LUA_ERRMEM             ? "not enough memory"
             : lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                              : "error";
    if (error->empty()) *error = "error";
  }
  lua_settop(L, top);
  memory.set_current(previous);
  return status == LUA_OK;
}

std::string Core::error_text(Task& task, int status, int* error_ref) {
  Run& run = *task.run;
  kill_reason(run);
  if (run.cancelled) return run.kill_reason;
  // Only raw reads of the error value, on the main thread, never a metamethod: a workflow's
  // __index or __tostring must not run (unhooked) inside the host.
  std::string text;
  std::string failure;
  bool lua_ok = protect(
      nullptr,
      [&](lua_State* s) {
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
          if (task.parent == nullptr) {  // the run's own error: what a dead letter names
            lua_pushliteral(s, "step_key");
            run.failure_step = lua_rawget(s, -2) == LUA_TSTRING ? lua_tostring(s, -1) : "";
            lua_pushliteral(s, "retryable");
            lua_rawget(s, -3);
            run.failure_retryable = lua_toboolean(s, -1) != 0;
            lua_pop(s, 2);
          }
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
      },
      &failure);
  if (!lua_ok && text.empty()) {
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
      std::string failure;
      bool lua_ok = protect(
          &run,
          [&](lua_State* s) {
            lua_xmove(co, s, 1);
            ok = lua::to_json(s, -1, &out, &error, "output");
          },
          &failure);
      if (!lua_ok) {
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
  std::string failure;
  bool lua_ok = protect(
      &run,
      [&](lua_State* s) {
        lua_rawgeti(s, LUA_REGISTRYINDEX, join.results_ref);
        if (nresults > 0) {
          lua_xmove(co, s, 1);
        } else {
          lua_pushnil(s);
        }
        lua_rawseti(s, -2, task->branch);
        if (join.is_map && join.started < join.total) start_map_branch(parent, s);
      },
      &failure);
  lua_settop(co, 0);
  if (!lua_ok) {
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

}  // namespace troupe::rt
