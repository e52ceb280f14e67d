// vendor_server.cpp: the fake LLM vendor's server — its routes, state (queue, rules, pages,
// recorded chats), control endpoints, and the handling of one chat request from routing to the
// Script (vendor_wire.h shows which file does which step).
#include "support/vendor_server.h"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <utility>

#include "support/vendor_wire.h"

namespace troupe::test {
namespace {

Script json_script(int status, const json& body) {
  return Script::text(status, body.dump() + "\n", "application/json");
}

}  // namespace

struct VendorServer::State {
  mutable std::mutex mutex;
  mutable std::condition_variable changed;
  std::deque<FakeReply> queue;
  std::vector<Rule> rules;
  std::map<std::string, Page> pages;
  std::vector<SeenChat> chats;
  uint64_t counter = 0;
  bool verbose = false;
};

VendorServer::VendorServer(uint16_t port)
    : server_(std::make_unique<HttpTestServer>(port)), state_(std::make_shared<State>()) {
  server_->route("/v1/chat/completions",
                 [this](const TestRequest& r) { return handle_chat(Vendor::openai, r); });
  server_->route("/v1/messages",
                 [this](const TestRequest& r) { return handle_chat(Vendor::anthropic, r); });
  server_->route_prefix("/v1beta/models/",
                        [this](const TestRequest& r) { return handle_chat(Vendor::gemini, r); });
  server_->route_prefix("/v1/models/",
                        [this](const TestRequest& r) { return handle_chat(Vendor::gemini, r); });
  server_->route("/api/chat",
                 [this](const TestRequest& r) { return handle_chat(Vendor::ollama, r); });
  server_->route("/health", [](const TestRequest&) {
    return Script::text(200, "{\"status\":\"ok\"}\n", "application/json");
  });
  server_->route_prefix("/pages/", [state = state_](const TestRequest& r) {
    std::string name = percent_decode(r.path.substr(7));
    std::lock_guard lock(state->mutex);
    auto it = state->pages.find(name);
    if (r.method != "GET" && r.method != "HEAD") return Script::text(405, "method not allowed\n");
    if (it == state->pages.end()) return Script::text(404, "no page named " + name + "\n");
    return Script::text(200, it->second.content, it->second.content_type);
  });
  server_->route_prefix("/_fake/", [this](const TestRequest& r) { return handle_control(r); });
}

VendorServer::~VendorServer() {
  stop();
}

uint16_t VendorServer::port() const {
  return server_->port();
}

std::string VendorServer::url(std::string_view path) const {
  return server_->url(path);
}

std::string VendorServer::base_url(Vendor vendor) const {
  return vendor == Vendor::openai ? url("/v1") : url("");
}

std::string VendorServer::providers_config(const std::string& key_env) const {
  std::string cfg = "providers:\n";
  for (Vendor v : {Vendor::openai, Vendor::anthropic, Vendor::gemini, Vendor::ollama}) {
    cfg += std::string("  ") + vendor_name(v) + ":\n    plugin: " + vendor_name(v) +
           "\n    settings: {base_url: \"" + base_url(v) +
           "\"}\n    secrets: {api_key: " + key_env + "}\n";
  }
  return cfg;
}

void VendorServer::push(FakeReply reply) {
  std::lock_guard lock(state_->mutex);
  state_->queue.push_back(std::move(reply));
}

size_t VendorServer::queued() const {
  std::lock_guard lock(state_->mutex);
  return state_->queue.size();
}

void VendorServer::load_scenario(const json& scenario) {
  std::vector<Rule> rules;
  std::map<std::string, Page> pages;
  parse_scenario(scenario, &rules, &pages);
  std::lock_guard lock(state_->mutex);
  state_->rules = std::move(rules);
  for (auto& [name, page] : pages)
    state_->pages[name] = std::move(page);
}

void VendorServer::load_scenario_text(std::string_view json_text) {
  json scenario;
  try {
    scenario = json::parse(json_text);
  } catch (const json::parse_error& e) {
    throw std::invalid_argument(std::string("scenario: not JSON: ") + e.what());
  }
  load_scenario(scenario);
}

void VendorServer::load_scenario_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("scenario: cannot open " + path);
  std::stringstream text;
  text << in.rdbuf();
  try {
    load_scenario_text(text.str());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + ": " + e.what());
  }
}

void VendorServer::add_page(const std::string& name, std::string content,
                            std::string content_type) {
  if (content_type.empty()) content_type = default_page_type(content);
  std::lock_guard lock(state_->mutex);
  state_->pages[name] = Page{std::move(content), std::move(content_type)};
}

std::vector<TestRequest> VendorServer::requests() const {
  return server_->requests();
}

std::vector<SeenChat> VendorServer::chats() const {
  std::lock_guard lock(state_->mutex);
  return state_->chats;
}

size_t VendorServer::chat_count() const {
  std::lock_guard lock(state_->mutex);
  return state_->chats.size();
}

bool VendorServer::wait_for_chats(size_t n, uint32_t timeout_ms) const {
  std::unique_lock lock(state_->mutex);
  return state_->changed.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                                  [&] { return state_->chats.size() >= n; });
}

void VendorServer::reset() {
  std::lock_guard lock(state_->mutex);
  state_->queue.clear();
  state_->chats.clear();
  for (auto& rule : state_->rules)
    rule.used = 0;
}

void VendorServer::set_verbose(bool verbose) {
  std::lock_guard lock(state_->mutex);
  state_->verbose = verbose;
}

HttpTestServer& VendorServer::http() {
  return *server_;
}

void VendorServer::stop() {
  server_->stop();
}

Script VendorServer::handle_control(const TestRequest& request) {
  try {
    if (request.path == "/_fake/push" && request.method == "POST") {
      json body = json::parse(request.body);
      std::vector<FakeReply> replies;
      if (body.is_array()) {
        for (const auto& r : body)
          replies.push_back(FakeReply::from_json(r));
      } else {
        replies.push_back(FakeReply::from_json(body));
      }
      for (auto& r : replies)
        push(std::move(r));
      return json_script(200, {{"queued", queued()}});
    }
    if (request.path == "/_fake/scenario" && request.method == "POST") {
      load_scenario_text(request.body);
      return json_script(200, {{"ok", true}});
    }
    if (request.path == "/_fake/reset" && request.method == "POST") {
      reset();
      return json_script(200, {{"ok", true}});
    }
    if (request.path == "/_fake/chats" && request.method == "GET") {
      json all = json::array();
      for (const auto& c : chats())
        all.push_back(seen_to_json(c));
      return json_script(200, all);
    }
  } catch (const std::exception& e) {
    return json_script(400, {{"error", e.what()}});
  }
  return json_script(
      404, {{"error", "unknown control endpoint " + request.method + " " + request.path}});
}

Script VendorServer::handle_chat(Vendor vendor, const TestRequest& request) {
  const VendorWire& wire = vendor_wire(vendor);
  Chat chat;
  SeenChat& seen = chat.seen;
  seen.vendor = vendor;
  seen.request = request;
  uint64_t number;
  {
    std::lock_guard lock(state_->mutex);
    number = ++state_->counter;
  }

  // The key as the vendor's auth header carries it (only to mask it in openai's 401 message).
  std::string key = request.header(wire.key_header);
  if (key.starts_with("Bearer ")) key = key.substr(7);
  std::string request_id = wire.request_id(number);

  auto record = [&](const std::string& answer, const std::string& fault) {
    seen.answer = answer;
    seen.fault = fault;
    bool verbose;
    {
      std::lock_guard lock(state_->mutex);
      state_->chats.push_back(seen);
      verbose = state_->verbose;
    }
    state_->changed.notify_all();
    if (verbose)
      std::fprintf(stderr, "fake-vendor: %s %s %s model=%s stream=%d -> %s%s%s\n",
                   vendor_name(vendor), request.method.c_str(), request.path.c_str(),
                   seen.model.c_str(), seen.stream ? 1 : 0, answer.c_str(),
                   fault.empty() ? "" : " fault=", fault.c_str());
  };
  // The vendor's error with what was actually wrong instead of the canned message.
  auto refuse = [&](int status, const std::string& message) {
    record("refused", "");
    Rendered r = render_error(wire, status, "", seen.model, request_id, key);
    r.events = {wire.refusal(status, message, request_id)};
    return plain_script(r);
  };

  if (request.method != "POST") return refuse(405, "use POST for " + request.path);

  // Gemini: the model and the method are in the path.
  if (vendor == Vendor::gemini) {
    std::string rest = request.path.substr(request.path.find("/models/") + 8);
    size_t colon = rest.rfind(':');
    if (colon == std::string::npos) return refuse(404, "no method in " + request.path);
    seen.model = percent_decode(rest.substr(0, colon));
    std::string method = rest.substr(colon + 1);
    if (method == "generateContent") {
      seen.stream = false;
    } else if (method == "streamGenerateContent") {
      seen.stream = true;
      chat.gemini_sse = query_param(request.target, "alt") == "sse";
    } else {
      return refuse(404, "unknown method " + method);
    }
  }

  try {
    seen.body = json::parse(request.body);
  } catch (const json::parse_error& e) {
    return refuse(400,
                  std::string("We could not parse the JSON body of your request: ") + e.what());
  }
  if (!seen.body.is_object()) return refuse(400, "the request body must be a JSON object");
  wire.parse(seen.body, chat);

  // The reply: the queue, a model-named fault, the first rule that applies, else the default.
  FakeReply reply;
  std::string answer;
  {
    std::lock_guard lock(state_->mutex);
    if (!state_->queue.empty()) {
      reply = std::move(state_->queue.front());
      state_->queue.pop_front();
      answer = "queue";
    } else if (seen.model.starts_with("fault-")) {
      reply.fault = seen.model.substr(6);
      answer = "model";
    } else {
      for (size_t i = 0; i < state_->rules.size(); ++i) {
        Rule& rule = state_->rules[i];
        if (!rule_applies(rule, seen)) continue;
        ++rule.used;
        reply = rule.reply;
        answer = "rule " + std::to_string(i);
        break;
      }
      if (answer.empty()) answer = "default";
    }
  }

  if (!reply.fault.empty() && !is_fault(reply.fault)) {
    std::string known;
    for (const auto& f : fault_names())
      known += (known.empty() ? "" : ", ") + f;
    return refuse(400, "fake vendor: unknown fault \"" + reply.fault + "\" (known: " + known + ")");
  }
  complete_reply(reply, chat, wire, answer);

  const std::string fault = reply.fault;
  if (!reply.request_id.empty()) request_id = reply.request_id;

  // Error faults.
  int status = fault_status(wire, fault);
  if (fault == "stream-error" && !seen.stream) status = wire.stream_error_status;
  if (status != 0) {
    if (vendor != Vendor::gemini) seen.request_id = request_id;
    record(answer, fault);
    return plain_script(
        render_error(wire, status, fault, seen.model, request_id, key, reply.error_message));
  }
  if (fault == "hang") {
    record(answer, fault);
    Script s;
    s.never_respond = true;
    return s;
  }

  Material m = material_for(reply, chat, wire, number, request_id);
  seen.request_id = request_id;
  record(answer, fault);
  return faulty_script(wire, wire.render(m, seen.stream), fault, seen.stream);
}

}  // namespace troupe::test
