// runtime.cpp: the life of a run — start (id, record, compiled script, root task), finish
// (output, error, final record) and settle (announced once its record is durable) — and the
// public Runtime over the Core.
#include "runtime/runtime.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "core/digest.h"
#include "core/json_text.h"
#include "core/log.h"
#include "core/utf8.h"
#include "loop/event_loop.h"
#include "runtime/json_lua.h"
#include "runtime/runtime_internal.h"

namespace troupe {
namespace rt {

namespace {

// The Lua allocator, with the Core as its ud: any coroutine finds its Core in O(1).
void* core_alloc(void* ud, void* ptr, size_t osize, size_t nsize) {
  return lua::MemoryAccounting::alloc(&static_cast<Core*>(ud)->memory, ptr, osize, nsize);
}

}  // namespace

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

int64_t unix_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

Core::Core(EventLoop& loop_, Store* store_, ProviderResolver& providers_, RuntimeOptions options_)
    : loop(loop_), store(store_), providers(providers_), options(options_) {
  owner = options.owner.empty() ? Store::new_owner_id() : options.owner;
  L = lua_newstate(&core_alloc, this);
  if (L == nullptr) throw std::runtime_error("cannot create the Lua state");
  luaL_openlibs(L);
  lua::register_json_markers(L);
  install_meters(L);
  const std::string* src = builtin_script("troupe._runtime");
  if (src == nullptr) throw std::runtime_error("the embedded troupe library is missing");
  if (luaL_loadbufferx(L, src->data(), src->size(), "=[troupe] _runtime", "t") != LUA_OK ||
      (push_primitives(L, this), lua_pcall(L, 1, 1, 0)) != LUA_OK) {
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
    Liveness::Watch token = alive.watch();
    EventLoop* lp = &loop;
    store->set_failure_listener(
        [this, lp, token](const std::string& run_id, const std::string& error) {
          lp->post([this, token, run_id, error] {
            if (!token.gone()) journal_failed(run_id, error);
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
  if (lease_timer_ != 0) loop.cancel_timer(lease_timer_);
  alive.end();
  if (store) {
    store->flush();
    store->set_failure_listener(nullptr);
  }
  ready_.clear();
  lua_close(L);
}

std::string Core::start(const RunSpec& spec, std::function<void(const RunOutcome&)> on_done) {
  auto run = std::make_shared<Run>();
  run->core = this;
  run->id = make_run_id();
  run->created_ms = unix_ms();
  run->on_done = std::move(on_done);
  run->input_json = spec.input_json.empty() ? "{}" : log::redact(spec.input_json);
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
  std::string error;
  int chunk = load_chunk(spec, &run->script_hash, &error);
  if (chunk != LUA_NOREF && spec.source_path.empty()) run->chunk_ref = chunk;  // not cached
  run->epoch = 1;
  if (store) {
    // Durable: the run starts once its record is committed, so that a crash never loses a run
    // that has begun to act (async: at once; a crash may lose the run's whole tail).
    Store::Done on_created;
    if (options.durability == Durability::sync && chunk != LUA_NOREF) {
      run->wait_for_record = true;
      Liveness::Watch token = alive.watch();
      EventLoop* lp = &loop;
      std::string id = run->id;
      on_created = [this, lp, token, id](bool ok) {
        lp->post([this, token, id, ok] {
          if (token.gone() || !ok) return;  // a failed write fails the run (journal_failed)
          auto it = runs.find(id);
          if (it != runs.end() && it->second->root && !it->second->done)
            schedule(it->second->root, nullptr);
        });
      };
    }
    store->create_run(
        {run->id, run->workflow, run->source, run->input_json, "running", "", "", run->created_ms,
         0, run->epoch, owner, unix_ms() + options.lease_ms, 0, run->script_hash, "", ""},
        std::move(on_created));
  }
  nlohmann::json started = {{"workflow", run->workflow}, {"source", run->source}};
  // Names, paths and errors come from the script: not always UTF-8, and the dump must not throw.
  emit(*run, "run.started", "", json_text(started));
  launch(run, chunk, std::move(error));
  return run->id;
}

void Core::launch(const std::shared_ptr<Run>& run, int chunk, std::string error) {
  run->started_ms = unix_ms();
  run->started_ns = EventLoop::now_ns();
  run->durability = options.durability;
  runs[run->id] = run;
  run->mem_slot = memory.open_slot(options.limits.max_memory_bytes);
  bool input_ok = true;
  if (chunk != LUA_NOREF) {
    // runner(chunk, env, input) on the root coroutine's stack; the input (workflow data, as
    // large as the caller likes) is charged to the run and may exhaust its memory.
    std::string failure;
    bool lua_ok = protect(
        run.get(),
        [&](lua_State* s) {
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
        },
        &failure);
    if (!lua_ok) {
      error = "the input does not fit in the run: " +
              (kill_reason(*run).empty() ? failure : run->kill_reason);
      chunk = LUA_NOREF;
    } else if (!input_ok) {
      error = "the input is not valid JSON: " + error;
      chunk = LUA_NOREF;
    }
  }
  if (chunk == LUA_NOREF) {
    Liveness::Watch token = alive.watch();
    std::weak_ptr<Run> weak = run;
    loop.post([this, token, weak, error] {
      if (token.gone()) return;
      if (auto r = weak.lock()) finish_run(*r, "failed", "", error);
    });
    return;
  }
  if (!run->wait_for_record) schedule(run->root, nullptr);
  set_live(run->id, true);
  if (store && lease_timer_ == 0) {
    Liveness::Watch token = alive.watch();
    lease_timer_ = loop.add_timer(std::max<uint32_t>(options.lease_ms / 3, 1), [this, token] {
      if (token.gone()) return;
      lease_timer_ = 0;
      renew_leases();
    });
  }
}

void Core::renew_leases() {
  if (runs.empty()) return;  // the next launch starts the timer again
  const int64_t until = unix_ms() + options.lease_ms;
  for (const auto& [id, run] : runs) {
    if (!run->done) store->renew_lease(id, until);
  }
  Liveness::Watch token = alive.watch();
  lease_timer_ = loop.add_timer(std::max<uint32_t>(options.lease_ms / 3, 1), [this, token] {
    if (token.gone()) return;
    lease_timer_ = 0;
    renew_leases();
  });
}

int Core::load_chunk(const RunSpec& spec, std::string* hash, std::string* error) {
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
      *hash = cached->hash;
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
  *hash = sha256_hex(source);
  if (cached) cached->hash = *hash;
  // The text is kept so that the run can be resumed, replayed or forked even once the file
  // changed or is gone (runs from strings have no file at all).
  if (store && saved_scripts_.insert(*hash).second) store->save_script(*hash, source);
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

void Core::finish_run(Run& run, const std::string& status, const std::string& output_json,
                      const std::string& error) {
  if (run.done) return;
  run.done = true;
  // Whatever Lua of the run still runs (its to-be-closed handlers) stops at its next hook.
  if (run.kill_reason.empty()) run.kill_reason = "the run has ended";
  std::shared_ptr<Run> keep = runs.at(run.id);
  // Valid UTF-8 (an error may quote the script's bytes): the event's JSON, the store and a
  // Python str all take it, and the run always reaches on_done.
  std::string clean_error = utf8::valid(log::redact(error));
  std::string clean_output = log::redact(output_json);
  // The wall-clock end is the start plus the time measured on the monotonic clock: a clock
  // jump during the run cannot make its duration negative.
  int64_t finished_ms =
      run.started_ms + static_cast<int64_t>((EventLoop::now_ns() - run.started_ns) / 1'000'000);
  if (status == "failed") keep_dead_letter(run, clean_error, finished_ms);
  const std::string id = run.id;
  ending_[id] = Ending{keep, {id, run.workflow, status, clean_output, clean_error}, finished_ms};
  release_run(run);
  if (store == nullptr) {
    settle_run(id);
    return;
  }
  // Announced only once the final record is committed (every earlier write of the run is
  // settled by then too): a run whose record is lost must not be reported as recorded.
  Liveness::Watch token = alive.watch();
  EventLoop* lp = &loop;
  store->finish_run(id, status, clean_output, clean_error, finished_ms,
                    [this, lp, token, id](bool) {
                      lp->post([this, token, id] {
                        if (!token.gone()) settle_run(id);
                      });
                    });
}

void Core::keep_dead_letter(Run& run, const std::string& error, int64_t dead_ms) {
  if (store == nullptr || options.dead_letters == DeadLetters::off) return;
  bool exhausted = run.failure_retryable;
  if (!exhausted && options.dead_letters != DeadLetters::all) return;
  DeadLetterRecord dead;
  dead.run_id = run.id;
  dead.reason = exhausted ? "retries_exhausted" : "failed";
  dead.step_key = run.failure_step;
  dead.error = error;
  dead.dead_ms = dead_ms;
  emit(run, "run.dead_letter", dead.step_key,
       json_text(nlohmann::json{{"reason", dead.reason}, {"step_key", dead.step_key}}));
  store->record_dead_letter(dead);
}

void Core::release_run(Run& run) {
  if (run.root) cancel_task(*run.root);
  luaL_unref(L, LUA_REGISTRYINDEX, run.env_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, run.chunk_ref);
  run.env_ref = run.chunk_ref = LUA_NOREF;
  memory.close_slot(run.mem_slot);
  const std::string id = run.id;  // run may go with the map entry
  runs.erase(id);
  set_live(id, false);
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
                         {"cost_usd", run.cost_usd},
                         {"duration_ms", end.finished_ms - run.created_ms}};
  if (run.unpriced > 0) data["unpriced_steps"] = run.unpriced;
  if (!outcome.error.empty()) data["error"] = outcome.error;
  if (run.epoch > 1) {
    data["epoch"] = run.epoch;
    data["served_steps"] = run.served;
  }
  emit(run, "run.finished", "", json_text(data));
  if (store) store->forget_run(run_id);
  auto on_done = std::move(run.on_done);
  if (on_done) on_done(outcome);
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

std::string Runtime::fork(const ForkSpec& spec, std::function<void(const RunOutcome&)> on_done,
                          std::string* error) {
  return core_->fork(spec, std::move(on_done), error);
}

std::string Runtime::submit(const RunSpec& spec, std::string* error) {
  return core_->submit(spec, error);
}

std::string Runtime::resume(const ResumeSpec& spec, std::function<void(const RunOutcome&)> on_done,
                            std::string* error) {
  return core_->resume(spec, std::move(on_done), error);
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
