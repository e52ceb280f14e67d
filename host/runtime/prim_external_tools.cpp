// prim_external_tools.cpp: host.external_tool — tools implemented by the embedder (Python
// functions).
//
// The embedder registers tools with Runtime::add_external_tool; the table of them lives in the
// Lua registry (a userdata freed with the lua_State), so the Core needs no field for it. The
// Lua library wraps each one as an ordinary troupe.tool (troupe.host_tool in
// scripts/troupe/tool.lua), so agent:run validates its arguments and records its call as a
// `tool` step like any other; this primitive only describes a tool and carries one call out: it
// hands the arguments to the embedder's call function and suspends the calling branch until
// done() comes back (from any thread, through EventLoop::post).
#include <atomic>
#include <map>
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <string>

#include "core/digest.h"
#include "core/json_text.h"
#include "core/log.h"
#include "loop/event_loop.h"
#include "runtime/json_lua.h"
#include "runtime/primitives.h"
#include "runtime/runtime_internal.h"

namespace troupe {
namespace rt {
namespace {

constexpr const char* kToolsKey = "troupe.external_tools";

struct ExternalTools {
  std::map<std::string, ExternalTool> by_name;
};

int tools_gc(lua_State* L) {
  static_cast<ExternalTools*>(lua_touserdata(L, 1))->~ExternalTools();
  return 0;
}

// The registry's table of tools; null when none was ever added.
ExternalTools* find_tools(lua_State* L) {
  lua_getfield(L, LUA_REGISTRYINDEX, kToolsKey);
  auto* tools = static_cast<ExternalTools*>(lua_touserdata(L, -1));
  lua_pop(L, 1);
  return tools;
}

ExternalTools& tools_of(lua_State* L) {
  if (ExternalTools* tools = find_tools(L)) return *tools;
  auto* tools = static_cast<ExternalTools*>(lua_newuserdatauv(L, sizeof(ExternalTools), 0));
  new (tools) ExternalTools{};
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, tools_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_setfield(L, LUA_REGISTRYINDEX, kToolsKey);
  return *tools;
}

const ExternalTool* find_tool(const ExternalTools* tools, const std::string& name) {
  if (!tools) return nullptr;
  auto it = tools->by_name.find(name);
  return it == tools->by_name.end() ? nullptr : &it->second;
}

std::string available(const ExternalTools* tools) {
  std::string names;
  if (tools) {
    for (const auto& [name, tool] : tools->by_name)
      names += (names.empty() ? "" : ", ") + name;
  }
  return names.empty() ? "none are registered" : "registered: " + names;
}

// host.external_tool(name) -> { name, description, parameters } | nil, why
int describe(lua_State* L, const std::string& name) {
  const ExternalTools* tools = find_tools(L);
  const ExternalTool* found = find_tool(tools, name);
  if (!found) {
    lua_pushnil(L);
    std::string why = "there is no host tool named '" + name + "' (" + available(tools) + ")";
    lua_pushlstring(L, why.data(), why.size());
    return 2;
  }
  const ExternalTool& tool = *found;
  lua_createtable(L, 0, 3);
  lua_pushlstring(L, tool.name.data(), tool.name.size());
  lua_setfield(L, -2, "name");
  lua_pushlstring(L, tool.description.data(), tool.description.size());
  lua_setfield(L, -2, "description");
  std::string error;
  if (!lua::push_json(L, tool.parameters_json, &error)) {
    return luaL_error(L, "host tool '%s': its parameters are not JSON: %s", name.c_str(),
                      error.c_str());
  }
  lua_setfield(L, -2, "parameters");
  return 1;
}

// host.external_tool(name, arguments) -> ok, text: runs the tool, suspending this branch.
int call(lua_State* L, const std::string& name) {
  Core* core = core_of(L);
  Task* t = waiting_task_of(L, "a host tool");
  const ExternalTools* tools = find_tools(L);
  const ExternalTool* tool = find_tool(tools, name);
  if (!tool) {
    return luaL_error(L, "there is no host tool named '%s' (%s)", name.c_str(),
                      available(tools).c_str());
  }
  std::string arguments, error;
  if (!lua::to_json(L, 2, &arguments, &error, "arguments"))
    return luaL_error(L, "%s", error.c_str());

  // The embedder's function is an effect like a model call: a step of its own, served from the
  // journal when a resumed run makes the same call again.
  Run& run = *t->run;
  StepRecord step;
  step.run_id = run.id;
  step.step_key = t->key(++t->ordinal);
  step.kind = "host_tool";
  step.agent = name;
  step.request_json = json_text(nlohmann::json{
      {"tool", name}, {"arguments", nlohmann::json::parse(arguments, nullptr, false)}});
  step.request_hash = sha256_hex(log::redact(step.request_json));
  if (const StepRecord* rec = core->served_step(
          L, run, step.step_key, StepCall{"host_tool", name, "", step.request_hash})) {
    nlohmann::json r = nlohmann::json::parse(rec->response_json, nullptr, false);
    bool ok = rec->status == "succeeded";
    std::string text = r.is_object() ? r.value("text", rec->error) : rec->error;
    core->serve(core->shared(t), step.step_key, [ok, text](lua_State* co) {
      lua_pushboolean(co, ok);
      lua_pushlstring(co, text.data(), text.size());
      return 2;
    });
    return suspend_task(L, t);
  }
  step.started_ms = unix_ms();
  core->emit(run, "step.started", step.step_key,
             json_text(nlohmann::json{{"kind", "host_tool"}, {"tool", name}}));

  // A cancelled branch drops the result; the embedder's function still runs to its end.
  auto abandoned = std::make_shared<std::atomic<bool>>(false);
  std::weak_ptr<Task> weak = core->shared(t);
  Liveness::Watch token = core->alive.watch();
  EventLoop* loop = &core->loop;
  auto once = std::make_shared<std::atomic<bool>>(false);
  uint64_t t0 = EventLoop::now_ns();
  ExternalTool::Done done = [core, loop, weak, token, abandoned, once, step, t0](
                                bool ok, const std::string& text) mutable {
    if (once->exchange(true)) return;  // exactly once, whatever the embedder does
    // The embedder's text reaches the workflow: redacted like every other way in (0013).
    loop->post([core, weak, token, abandoned, ok, text = log::redact(text), step, t0]() mutable {
      if (token.gone() || abandoned->load()) return;
      auto task = weak.lock();
      if (!task) return;
      task->cancel_op = nullptr;
      step.finished_ms = unix_ms();
      step.latency_us = static_cast<int64_t>((EventLoop::now_ns() - t0) / 1000);
      step.status = ok ? "succeeded" : "failed";
      step.response_json = json_text(nlohmann::json{{"text", text}});
      if (!ok) step.error = text;
      core->finish_step(task, std::move(step), [ok, text](lua_State* co) {
        lua_pushboolean(co, ok);
        lua_pushlstring(co, text.data(), text.size());
        return 2;
      });
    });
  };
  t->cancel_op = [abandoned] { abandoned->store(true); };
  tool->call(arguments, std::move(done));
  return suspend_task(L, t);
}

}  // namespace

int prim_external_tool(lua_State* L) {
  std::string name = luaL_checkstring(L, 1);
  if (lua_isnoneornil(L, 2)) return describe(L, name);
  return call(L, name);
}

}  // namespace rt

void Runtime::add_external_tool(ExternalTool tool) {
  lua_State* L = core_->L;
  std::string name = tool.name;
  rt::tools_of(L).by_name[name] = std::move(tool);
}

}  // namespace troupe
