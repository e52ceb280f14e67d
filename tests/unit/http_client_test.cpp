// http_client_test.cpp: HTTP transfers of the event loop against the loopback test server.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "loop/event_loop.h"
#include "loop/http_transfer.h"
#include "support/http_test_server.h"

namespace troupe {
namespace {

using test::After;
using test::Chunk;
using test::Framing;
using test::HttpTestServer;
using test::Script;
using test::TestRequest;

constexpr uint64_t kMs = 1'000'000;

// Everything one transfer reported, in order.
struct Outcome {
  std::vector<std::string> events;  // "headers", "chunk", "complete" in call order
  int status = 0;
  Headers headers;
  std::vector<std::string> chunks;
  std::string body;
  int completions = 0;
  troupe_status_t result = -1;
  std::string error;

  bool done() const { return completions > 0; }
};

HttpHandlers record_into(const std::shared_ptr<Outcome>& out) {
  HttpHandlers h;
  h.on_headers = [out](int status, const Headers& headers) {
    out->events.push_back("headers");
    out->status = status;
    out->headers = headers;
  };
  h.on_chunk = [out](std::string_view chunk) {
    out->events.push_back("chunk");
    out->chunks.emplace_back(chunk);
    out->body.append(chunk);
  };
  h.on_complete = [out](troupe_status_t status, const std::string& error) {
    out->events.push_back("complete");
    ++out->completions;
    out->result = status;
    out->error = error;
  };
  return h;
}

bool run_until(EventLoop& loop, const std::function<bool()>& done, uint64_t timeout_ms = 30'000) {
  uint64_t deadline = EventLoop::now_ns() + timeout_ms * kMs;
  while (!done()) {
    if (EventLoop::now_ns() > deadline) return false;
    loop.run_once(50);
  }
  return true;
}

// Keeps the loop turning for ms, to show that nothing else arrives.
void run_for(EventLoop& loop, uint64_t ms) {
  uint64_t deadline = EventLoop::now_ns() + ms * kMs;
  while (EventLoop::now_ns() < deadline)
    loop.run_once(10);
}

HttpRequest get(const std::string& url) {
  HttpRequest r;
  r.url = url;
  return r;
}

// A stream of n pieces, each after delay_ms, with chunked framing.
Script stream(int n, uint32_t delay_ms, const std::string& prefix = "piece-") {
  Script s;
  s.headers = {{"Content-Type", "text/event-stream"}};
  s.framing = Framing::chunked;
  for (int i = 0; i < n; ++i)
    s.chunks.push_back(Chunk{prefix + std::to_string(i) + "\n", delay_ms});
  return s;
}

class HttpClientTest : public ::testing::Test {
 protected:
  HttpTestServer server;
  EventLoop loop;

  std::shared_ptr<Outcome> start(HttpRequest request, EventLoop::Id* id = nullptr) {
    auto out = std::make_shared<Outcome>();
    EventLoop::Id started = loop.http_start(std::move(request), record_into(out));
    EXPECT_NE(started, 0u);
    if (id != nullptr) *id = started;
    return out;
  }

  std::shared_ptr<Outcome> fetch(HttpRequest request) {
    auto out = start(std::move(request));
    EXPECT_TRUE(run_until(loop, [&] { return out->done(); }));
    return out;
  }
};

TEST_F(HttpClientTest, GetRoundTripDeliversStatusHeadersAndBody) {
  server.route("/hello", [](const TestRequest&) {
    Script s = Script::text(200, "hello world", "text/plain");
    s.headers.emplace_back("X-Reply", "yes");
    return s;
  });
  HttpRequest r = get(server.url("/hello?x=1"));
  r.headers = {{"X-Test", "abc"}, {"Accept", "text/plain"}};
  auto out = fetch(r);
  EXPECT_EQ(out->result, TROUPE_OK) << out->error;
  EXPECT_EQ(out->completions, 1);
  EXPECT_EQ(out->status, 200);
  EXPECT_EQ(out->body, "hello world");
  ASSERT_NE(find_header(out->headers, "x-reply"), nullptr);
  EXPECT_EQ(*find_header(out->headers, "X-REPLY"), "yes");
  EXPECT_EQ(*find_header(out->headers, "content-type"), "text/plain");
  EXPECT_EQ(out->events.front(), "headers");
  EXPECT_EQ(out->events.back(), "complete");

  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "GET");
  EXPECT_EQ(reqs[0].target, "/hello?x=1");
  EXPECT_EQ(reqs[0].path, "/hello");
  EXPECT_EQ(reqs[0].header("x-test"), "abc");
  EXPECT_FALSE(reqs[0].has_header("Expect"));
  EXPECT_TRUE(reqs[0].body.empty());
  EXPECT_EQ(loop.active_transfers(), 0u);
}

TEST_F(HttpClientTest, PostSendsBodyAndHeaders) {
  server.route("/echo", [](const TestRequest& req) {
    Script s = Script::text(201, "got " + std::to_string(req.body.size()) + ": " + req.body);
    s.headers.emplace_back("X-Method", req.method);
    return s;
  });
  HttpRequest r = get(server.url("/echo"));
  r.method = "POST";
  r.body = R"({"model":"m","messages":[]})";
  r.headers = {{"Content-Type", "application/json"}, {"Authorization", "Bearer token-1234"}};
  auto out = fetch(r);
  EXPECT_EQ(out->result, TROUPE_OK) << out->error;
  EXPECT_EQ(out->status, 201);
  EXPECT_EQ(out->body, std::string("got 27: ") + R"({"model":"m","messages":[]})");
  EXPECT_EQ(*find_header(out->headers, "X-Method"), "POST");
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].method, "POST");
  EXPECT_EQ(reqs[0].body, R"({"model":"m","messages":[]})");
  EXPECT_EQ(reqs[0].header("Content-Type"), "application/json");
  EXPECT_EQ(reqs[0].header("Authorization"), "Bearer token-1234");
}

TEST_F(HttpClientTest, LargePostBodyIsSentWithoutExpectContinueStall) {
  server.route("/upload", [](const TestRequest& req) {
    return Script::text(200, std::to_string(req.body.size()));
  });
  HttpRequest r = get(server.url("/upload"));
  r.method = "POST";
  r.body = std::string(3 << 20, 'x');  // above curl's 1 MB Expect: 100-continue threshold
  uint64_t start = EventLoop::now_ns();
  auto out = fetch(r);
  EXPECT_EQ(out->result, TROUPE_OK) << out->error;
  EXPECT_EQ(out->body, std::to_string(3 << 20));
  EXPECT_FALSE(server.requests().at(0).has_header("Expect"));
  EXPECT_LT(EventLoop::now_ns() - start, 10'000 * kMs);
}

TEST_F(HttpClientTest, OtherMethodsAndEmptyHeaderValuesAreSent) {
  server.route("/thing", [](const TestRequest&) { return Script::text(204, ""); });
  HttpRequest r = get(server.url("/thing"));
  r.method = "PATCH";
  r.body = "{}";
  r.headers = {{"X-Empty", ""}};
  auto out = fetch(r);
  EXPECT_EQ(out->result, TROUPE_OK) << out->error;
  EXPECT_EQ(out->status, 204);
  EXPECT_TRUE(out->chunks.empty());
  EXPECT_EQ(out->events, (std::vector<std::string>{"headers", "complete"}));
  auto req = server.requests().at(0);
  EXPECT_EQ(req.method, "PATCH");
  EXPECT_EQ(req.body, "{}");
  EXPECT_TRUE(req.has_header("X-Empty"));
  EXPECT_EQ(req.header("X-Empty"), "");

  HttpRequest d = get(server.url("/thing"));
  d.method = "DELETE";
  auto deleted = fetch(d);
  EXPECT_EQ(deleted->result, TROUPE_OK) << deleted->error;
  EXPECT_EQ(server.requests().at(1).method, "DELETE");
}

TEST_F(HttpClientTest, NonSuccessStatusIsStillACompleteResponse) {
  server.route("/missing", [](const TestRequest&) {
    return Script::text(404, R"({"error":"no such model"})", "application/json");
  });
  server.route("/limited", [](const TestRequest&) {
    Script s = Script::text(429, "slow down");
    s.headers.emplace_back("Retry-After", "3");
    return s;
  });
  auto missing = fetch(get(server.url("/missing")));
  EXPECT_EQ(missing->result, TROUPE_OK);
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->body, R"({"error":"no such model"})");
  auto limited = fetch(get(server.url("/limited")));
  EXPECT_EQ(limited->result, TROUPE_OK);
  EXPECT_EQ(limited->status, 429);
  EXPECT_EQ(*find_header(limited->headers, "retry-after"), "3");
}

TEST_F(HttpClientTest, RedirectIsDeliveredNotFollowed) {
  server.route("/old", [&](const TestRequest&) {
    Script s = Script::text(302, "moved");
    s.headers.emplace_back("Location", server.url("/new"));
    return s;
  });
  server.route("/new", [](const TestRequest&) { return Script::text(200, "new"); });
  auto out = fetch(get(server.url("/old")));
  EXPECT_EQ(out->result, TROUPE_OK);
  EXPECT_EQ(out->status, 302);
  EXPECT_EQ(out->body, "moved");
  EXPECT_EQ(server.request_count(), 1u);
}

TEST_F(HttpClientTest, InterimContinueResponseIsNotReportedAsTheStatus) {
  server.route("/continue",
               [](const TestRequest& req) { return Script::text(200, "body was " + req.body); });
  HttpRequest r = get(server.url("/continue"));
  r.method = "POST";
  r.body = "payload";
  r.headers = {{"Expect", "100-continue"}};  // the server answers 100 before the body
  auto out = fetch(r);
  EXPECT_EQ(out->result, TROUPE_OK) << out->error;
  EXPECT_EQ(out->status, 200);
  EXPECT_EQ(out->body, "body was payload");
  EXPECT_EQ(std::count(out->events.begin(), out->events.end(), "headers"), 1);
}

TEST_F(HttpClientTest, StreamedChunksArriveSeparatelyAndInOrder) {
  server.route("/stream", [](const TestRequest&) { return stream(6, 60); });
  auto out = fetch(get(server.url("/stream")));
  EXPECT_EQ(out->result, TROUPE_OK) << out->error;
  EXPECT_EQ(out->status, 200);
  EXPECT_GT(out->chunks.size(), 1u);
  EXPECT_EQ(out->body, "piece-0\npiece-1\npiece-2\npiece-3\npiece-4\npiece-5\n");
  ASSERT_FALSE(out->events.empty());
  EXPECT_EQ(out->events.front(), "headers");
  EXPECT_EQ(std::count(out->events.begin(), out->events.end(), "headers"), 1);
  EXPECT_EQ(out->events.back(), "complete");
}

TEST_F(HttpClientTest, HeadersArriveBeforeASlowBody) {
  // Headers at once, then the body only after 1.5 s: on_headers must not wait for it.
  server.route("/slow-body", [](const TestRequest&) {
    Script s;
    s.framing = Framing::chunked;
    s.chunks = {Chunk{"late", 1'500}};
    return s;
  });
  auto out = start(get(server.url("/slow-body")));
  uint64_t started = EventLoop::now_ns();
  ASSERT_TRUE(run_until(loop, [&] { return out->status != 0; }));
  EXPECT_LT(EventLoop::now_ns() - started, 1'400 * kMs);
  EXPECT_TRUE(out->chunks.empty());
  ASSERT_TRUE(run_until(loop, [&] { return out->done(); }));
  EXPECT_EQ(out->body, "late");
}

TEST_F(HttpClientTest, KeepAliveReusesTheConnection) {
  server.route("/a", [](const TestRequest&) { return Script::text(200, "a"); });
  auto first = fetch(get(server.url("/a")));
  auto second = fetch(get(server.url("/a")));
  EXPECT_EQ(first->result, TROUPE_OK);
  EXPECT_EQ(second->result, TROUPE_OK);
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[0].connection_id, reqs[1].connection_id);
  EXPECT_EQ(server.connection_count(), 1u);
}

TEST_F(HttpClientTest, HundredsOfConcurrentTransfersSpreadOverShardsEachCompleteOnce) {
  // More transfers at once than one multi handle takes (512): the loop opens a second shard,
  // every transfer completes exactly once with its own body, and afterwards a sequential
  // request still reuses a kept-alive connection.
  server.route_prefix("/n/", [](const TestRequest& req) { return Script::text(200, req.path); });
  constexpr int kCount = 600;
  std::vector<std::shared_ptr<Outcome>> outs;
  for (int i = 0; i < kCount; ++i)
    outs.push_back(start(get(server.url("/n/" + std::to_string(i)))));
  EXPECT_EQ(loop.active_transfers(), static_cast<size_t>(kCount));
  ASSERT_TRUE(run_until(loop, [&] {
    return std::all_of(outs.begin(), outs.end(), [](const auto& o) { return o->done(); });
  }));
  for (int i = 0; i < kCount; ++i) {
    EXPECT_EQ(outs[i]->completions, 1) << i;
    EXPECT_EQ(outs[i]->result, TROUPE_OK) << i << ": " << outs[i]->error;
    EXPECT_EQ(outs[i]->body, "/n/" + std::to_string(i));
  }
  EXPECT_EQ(loop.active_transfers(), 0u);
  size_t connections = server.connection_count();
  auto again = fetch(get(server.url("/n/again")));
  EXPECT_EQ(again->body, "/n/again");
  EXPECT_EQ(server.connection_count(), connections);
}

TEST_F(HttpClientTest, ConnectionRefusedIsTransportError) {
  // A bound socket that does not listen: connecting to it is refused, and the port stays ours.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  HttpRequest r = get("http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/x");
  r.headers = {{"Authorization", "Bearer sk-very-secret-key"}};
  auto out = fetch(r);
  close(fd);
  EXPECT_EQ(out->result, TROUPE_TRANSPORT);
  EXPECT_EQ(out->completions, 1);
  EXPECT_FALSE(out->error.empty());
  EXPECT_EQ(out->error.find("sk-very-secret-key"), std::string::npos) << out->error;
  EXPECT_EQ(std::count(out->events.begin(), out->events.end(), "headers"), 0);
}

TEST_F(HttpClientTest, TotalTimeoutIsTimeout) {
  server.route("/never", [](const TestRequest&) {
    Script s;
    s.never_respond = true;
    return s;
  });
  HttpRequest r = get(server.url("/never"));
  r.timeout_ms = 300;
  uint64_t started = EventLoop::now_ns();
  auto out = fetch(r);
  EXPECT_EQ(out->result, TROUPE_TIMEOUT) << out->error;
  EXPECT_EQ(out->completions, 1);
  EXPECT_GE(EventLoop::now_ns() - started, 250 * kMs);
  EXPECT_LT(EventLoop::now_ns() - started, 10'000 * kMs);
}

TEST_F(HttpClientTest, TotalTimeoutAppliesToASlowStream) {
  server.route("/slow", [](const TestRequest&) { return stream(100, 100); });
  HttpRequest r = get(server.url("/slow"));
  r.timeout_ms = 500;
  auto out = fetch(r);
  EXPECT_EQ(out->result, TROUPE_TIMEOUT) << out->error;
  EXPECT_EQ(out->status, 200);
  EXPECT_FALSE(out->chunks.empty());
}

TEST_F(HttpClientTest, IdleTimeoutFiresWhenTheStreamStalls) {
  server.route("/stall", [](const TestRequest&) {
    Script s = stream(2, 0);
    s.chunks.push_back(Chunk{"never\n", 60'000});  // stop() interrupts this wait
    return s;
  });
  HttpRequest r = get(server.url("/stall"));
  r.idle_timeout_ms = 300;
  uint64_t started = EventLoop::now_ns();
  auto out = fetch(r);
  uint64_t elapsed = EventLoop::now_ns() - started;
  EXPECT_EQ(out->result, TROUPE_TIMEOUT) << out->error;
  EXPECT_NE(out->error.find("idle"), std::string::npos) << out->error;
  EXPECT_EQ(out->status, 200);
  EXPECT_EQ(out->body, "piece-0\npiece-1\n");
  EXPECT_GE(elapsed, 250 * kMs);
  EXPECT_LT(elapsed, 10'000 * kMs);
  EXPECT_EQ(loop.active_transfers(), 0u);
}

TEST_F(HttpClientTest, IdleTimeoutFiresWhenHeadersNeverCome) {
  server.route("/never", [](const TestRequest&) {
    Script s;
    s.never_respond = true;
    return s;
  });
  HttpRequest r = get(server.url("/never"));
  r.idle_timeout_ms = 200;
  auto out = fetch(r);
  EXPECT_EQ(out->result, TROUPE_TIMEOUT) << out->error;
  EXPECT_EQ(out->status, 0);
}

TEST_F(HttpClientTest, SteadyStreamOutlivesItsIdleTimeout) {
  // 10 pieces 100 ms apart take ~1 s, far beyond the 600 ms idle timeout, yet never idle.
  server.route("/steady", [](const TestRequest&) { return stream(10, 100); });
  HttpRequest r = get(server.url("/steady"));
  r.idle_timeout_ms = 600;
  auto out = fetch(r);
  EXPECT_EQ(out->result, TROUPE_OK) << out->error;
  EXPECT_EQ(out->chunks.size() > 1, true);
}

TEST_F(HttpClientTest, CancelMidStreamCompletesOnceWithCancelledAndNoMoreChunks) {
  server.route("/long", [](const TestRequest&) { return stream(200, 30); });
  EventLoop::Id id = 0;
  auto out = start(get(server.url("/long")), &id);
  ASSERT_TRUE(run_until(loop, [&] { return out->chunks.size() >= 2; }));
  size_t chunks_at_cancel = out->chunks.size();
  loop.http_cancel(id);
  EXPECT_EQ(out->completions, 0) << "on_complete ran inside http_cancel";
  ASSERT_TRUE(run_until(loop, [&] { return out->done(); }));
  run_for(loop, 300);
  EXPECT_EQ(out->completions, 1);
  EXPECT_EQ(out->result, TROUPE_CANCELLED);
  EXPECT_EQ(out->chunks.size(), chunks_at_cancel);
  EXPECT_EQ(out->events.back(), "complete");
  EXPECT_EQ(loop.active_transfers(), 0u);
  loop.http_cancel(id);  // already finished: ignored
  run_for(loop, 50);
  EXPECT_EQ(out->completions, 1);
}

TEST_F(HttpClientTest, CancelFromInsideOnChunkStopsTheTransfer) {
  server.route("/long", [](const TestRequest&) { return stream(200, 20); });
  auto out = std::make_shared<Outcome>();
  HttpHandlers h = record_into(out);
  EventLoop::Id id = 0;
  auto record_chunk = h.on_chunk;
  h.on_chunk = [&, record_chunk](std::string_view chunk) {
    record_chunk(chunk);
    loop.http_cancel(id);
    EXPECT_EQ(out->completions, 0) << "on_complete ran inside http_cancel";
  };
  id = loop.http_start(get(server.url("/long")), h);
  ASSERT_TRUE(run_until(loop, [&] { return out->done(); }));
  run_for(loop, 200);
  EXPECT_EQ(out->result, TROUPE_CANCELLED);
  EXPECT_EQ(out->completions, 1);
  EXPECT_EQ(out->chunks.size(), 1u);
  EXPECT_EQ(out->events, (std::vector<std::string>{"headers", "chunk", "complete"}));
}

TEST_F(HttpClientTest, CancelFromInsideOnHeadersMeansNoChunks) {
  server.route("/data", [](const TestRequest&) { return stream(3, 10); });
  auto out = std::make_shared<Outcome>();
  HttpHandlers h = record_into(out);
  EventLoop::Id id = 0;
  auto record_headers = h.on_headers;
  h.on_headers = [&, record_headers](int status, const Headers& headers) {
    record_headers(status, headers);
    loop.http_cancel(id);
  };
  id = loop.http_start(get(server.url("/data")), h);
  ASSERT_TRUE(run_until(loop, [&] { return out->done(); }));
  EXPECT_EQ(out->result, TROUPE_CANCELLED);
  EXPECT_EQ(out->events, (std::vector<std::string>{"headers", "complete"}));
}

TEST_F(HttpClientTest, CancelRightAfterStartIsDeferredAndReportedOnce) {
  server.route("/a", [](const TestRequest&) { return Script::text(200, "a"); });
  auto out = std::make_shared<Outcome>();
  bool inside_api = false;
  HttpHandlers h = record_into(out);
  auto record_complete = h.on_complete;
  h.on_complete = [&, record_complete](troupe_status_t s, const std::string& e) {
    EXPECT_FALSE(inside_api) << "handler called from inside http_start/http_cancel";
    record_complete(s, e);
  };
  inside_api = true;
  EventLoop::Id id = loop.http_start(get(server.url("/a")), h);
  loop.http_cancel(id);
  loop.http_cancel(id);  // twice: still one completion
  inside_api = false;
  EXPECT_EQ(loop.active_transfers(), 1u);  // until on_complete has run
  ASSERT_TRUE(run_until(loop, [&] { return out->done(); }));
  run_for(loop, 100);
  EXPECT_EQ(out->completions, 1);
  EXPECT_EQ(out->result, TROUPE_CANCELLED);
  EXPECT_EQ(loop.active_transfers(), 0u);
}

TEST_F(HttpClientTest, InvalidRequestsFailThroughOnCompleteNotInsideStart) {
  bool inside_api = false;
  auto check = [&](HttpRequest r, troupe_status_t expected) {
    auto out = std::make_shared<Outcome>();
    HttpHandlers h = record_into(out);
    auto record_complete = h.on_complete;
    h.on_complete = [&, record_complete](troupe_status_t s, const std::string& e) {
      EXPECT_FALSE(inside_api);
      record_complete(s, e);
    };
    inside_api = true;
    EXPECT_NE(loop.http_start(std::move(r), h), 0u);
    inside_api = false;
    EXPECT_TRUE(run_until(loop, [&] { return out->done(); }));
    EXPECT_EQ(out->result, expected) << out->error;
    EXPECT_EQ(out->completions, 1);
    return out;
  };
  check(get("ftp://127.0.0.1/file"), TROUPE_TRANSPORT);  // only http and https
  HttpRequest bad_method = get(server.url("/"));
  bad_method.method = "GET /x";
  check(bad_method, TROUPE_INVALID_ARGUMENT);
  HttpRequest injected = get(server.url("/"));
  injected.headers = {{"Authorization", "Bearer sk-secret-value\r\nX-Evil: 1"}};
  auto out = check(injected, TROUPE_INVALID_ARGUMENT);
  EXPECT_EQ(out->error.find("sk-secret-value"), std::string::npos) << out->error;
  EXPECT_EQ(server.request_count(), 0u);
}

TEST_F(HttpClientTest, ResetMidBodyIsTransportError) {
  server.route("/reset", [](const TestRequest&) {
    Script s;
    s.content_length = 10'000;
    s.chunks = {Chunk{std::string(100, 'a'), 0}, Chunk{std::string(100, 'b'), 50}};
    s.after = After::reset;
    return s;
  });
  auto out = fetch(get(server.url("/reset")));
  EXPECT_EQ(out->result, TROUPE_TRANSPORT) << out->error;
  EXPECT_EQ(out->status, 200);
  EXPECT_EQ(out->completions, 1);
}

TEST_F(HttpClientTest, TruncatedBodyIsTransportError) {
  server.route("/short", [](const TestRequest&) {
    Script s = Script::text(200, "only part");
    s.content_length = 1'000;
    s.after = After::close;
    return s;
  });
  server.route("/short-chunked", [](const TestRequest&) {
    Script s = stream(2, 0);
    s.chunked_terminator = false;
    s.after = After::close;
    return s;
  });
  auto out = fetch(get(server.url("/short")));
  EXPECT_EQ(out->result, TROUPE_TRANSPORT) << out->error;
  EXPECT_EQ(out->body, "only part");
  auto chunked = fetch(get(server.url("/short-chunked")));
  EXPECT_EQ(chunked->result, TROUPE_TRANSPORT) << chunked->error;
}

TEST_F(HttpClientTest, BodyUntilCloseIsComplete) {
  server.route("/close", [](const TestRequest&) {
    Script s;
    s.framing = Framing::until_close;
    s.chunks = {Chunk{"one ", 0}, Chunk{"two", 30}};
    return s;
  });
  auto out = fetch(get(server.url("/close")));
  EXPECT_EQ(out->result, TROUPE_OK) << out->error;
  EXPECT_EQ(out->body, "one two");
}

TEST_F(HttpClientTest, GarbledResponseIsTransportError) {
  server.route("/garbage", [](const TestRequest&) {
    Script s;
    s.raw = true;
    s.chunks = {Chunk{"this is not HTTP at all\r\n\r\n", 0}};
    s.after = After::close;
    return s;
  });
  auto out = fetch(get(server.url("/garbage")));
  EXPECT_EQ(out->result, TROUPE_TRANSPORT) << out->error;
}

TEST_F(HttpClientTest, HandlersMayStartAndCancelTransfersReentrantly) {
  server.route("/a", [](const TestRequest&) { return Script::text(200, "a"); });
  server.route("/long", [](const TestRequest&) { return stream(200, 20); });
  // A long transfer, cancelled from another transfer's on_chunk; a follow-up transfer is
  // started from on_chunk (inside curl's callback) and another from on_complete.
  EventLoop::Id long_id = 0;
  auto long_out = start(get(server.url("/long")), &long_id);
  ASSERT_TRUE(run_until(loop, [&] { return !long_out->chunks.empty(); }));

  auto first = std::make_shared<Outcome>();
  std::shared_ptr<Outcome> from_chunk, from_complete;
  HttpHandlers h = record_into(first);
  auto record_chunk = h.on_chunk;
  auto record_complete = h.on_complete;
  h.on_chunk = [&, record_chunk](std::string_view c) {
    record_chunk(c);
    loop.http_cancel(long_id);
    from_chunk = start(get(server.url("/a")));
  };
  h.on_complete = [&, record_complete](troupe_status_t s, const std::string& e) {
    record_complete(s, e);
    from_complete = start(get(server.url("/a")));
  };
  loop.http_start(get(server.url("/a")), h);
  ASSERT_TRUE(run_until(loop, [&] {
    return first->done() && long_out->done() && from_chunk && from_chunk->done() && from_complete &&
           from_complete->done();
  }));
  EXPECT_EQ(first->result, TROUPE_OK);
  EXPECT_EQ(long_out->result, TROUPE_CANCELLED);
  EXPECT_EQ(long_out->completions, 1);
  EXPECT_EQ(from_chunk->result, TROUPE_OK) << from_chunk->error;
  EXPECT_EQ(from_chunk->body, "a");
  EXPECT_EQ(from_complete->result, TROUPE_OK) << from_complete->error;
  EXPECT_EQ(loop.active_transfers(), 0u);
}

TEST_F(HttpClientTest, ThrowingHandlerFailsOnlyItsTransfer) {
  server.route("/a", [](const TestRequest&) { return Script::text(200, "a"); });
  auto out = std::make_shared<Outcome>();
  HttpHandlers h = record_into(out);
  h.on_chunk = [](std::string_view) { throw std::runtime_error("parser exploded"); };
  loop.http_start(get(server.url("/a")), h);
  ASSERT_TRUE(run_until(loop, [&] { return out->done(); }));
  EXPECT_EQ(out->result, TROUPE_INTERNAL);
  EXPECT_NE(out->error.find("parser exploded"), std::string::npos);
  auto next = fetch(get(server.url("/a")));
  EXPECT_EQ(next->result, TROUPE_OK);
}

TEST_F(HttpClientTest, TwoHundredConcurrentSlowTransfersRunInParallel) {
  server.route("/slow", [](const TestRequest&) {
    Script s = Script::text(200, "ok");
    s.head_delay_ms = 200;
    return s;
  });
  constexpr int kTransfers = 200;
  std::vector<std::shared_ptr<Outcome>> outs;
  uint64_t started = EventLoop::now_ns();
  for (int i = 0; i < kTransfers; ++i)
    outs.push_back(start(get(server.url("/slow"))));
  EXPECT_EQ(loop.active_transfers(), static_cast<size_t>(kTransfers));
  ASSERT_TRUE(run_until(loop, [&] {
    for (auto& o : outs)
      if (!o->done()) return false;
    return true;
  }));
  uint64_t elapsed = EventLoop::now_ns() - started;
  for (auto& o : outs) {
    EXPECT_EQ(o->result, TROUPE_OK) << o->error;
    EXPECT_EQ(o->body, "ok");
  }
  // Sequentially this takes 200 x 0.2 s = 40 s.
  EXPECT_LT(elapsed, 10'000 * kMs);
  EXPECT_EQ(loop.active_transfers(), 0u);
}

TEST_F(HttpClientTest, TwentyMegabyteBodyIsStreamedInChunks) {
  constexpr size_t kPiece = 1 << 20;
  constexpr int kPieces = 20;
  server.route("/big", [](const TestRequest&) {
    Script s;
    s.headers = {{"Content-Type", "application/octet-stream"}};
    for (int i = 0; i < kPieces; ++i)
      s.chunks.push_back(Chunk{std::string(kPiece, static_cast<char>('a' + i)), 0});
    return s;
  });
  size_t total = 0;
  size_t calls = 0;
  size_t largest = 0;
  uint64_t checksum = 0;
  int completions = 0;
  troupe_status_t result = -1;
  HttpHandlers h;
  h.on_chunk = [&](std::string_view c) {
    ++calls;
    largest = std::max(largest, c.size());
    for (unsigned char ch : c)
      checksum += ch;
    total += c.size();
  };
  h.on_complete = [&](troupe_status_t s, const std::string&) {
    ++completions;
    result = s;
  };
  loop.http_start(get(server.url("/big")), h);
  ASSERT_TRUE(run_until(
      loop, [&] { return completions > 0; }, 60'000));
  EXPECT_EQ(result, TROUPE_OK);
  EXPECT_EQ(total, kPiece * kPieces);
  uint64_t expected = 0;
  for (int i = 0; i < kPieces; ++i)
    expected += static_cast<uint64_t>('a' + i) * kPiece;
  EXPECT_EQ(checksum, expected);
  EXPECT_GT(calls, 100u);               // streamed, not buffered into one piece
  EXPECT_LE(largest, size_t{1} << 20);  // curl hands over at most its buffer size
}

TEST_F(HttpClientTest, DestroyingTheLoopWithTransfersInFlightCallsNoHandler) {
  server.route("/never", [](const TestRequest&) {
    Script s;
    s.never_respond = true;
    return s;
  });
  int calls = 0;
  auto owned = std::make_shared<int>(1);
  {
    EventLoop local;
    HttpHandlers h;
    h.on_headers = [&calls, owned](int, const Headers&) { ++calls; };
    h.on_complete = [&calls, owned](troupe_status_t, const std::string&) { ++calls; };
    local.http_start(get(server.url("/never")), h);
    local.http_start(get(server.url("/never")), h);
    local.add_timer(60'000, [&calls] { ++calls; });
    EXPECT_TRUE(run_until(local, [&] { return server.request_count() == 2; }));
  }
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(owned.use_count(), 1);
}

TEST(HttpTestServer, StopDoesNotHangWithAClientStuckInNeverRespond) {
  auto server = std::make_unique<HttpTestServer>();
  server->route("/never", [](const TestRequest&) {
    Script s;
    s.never_respond = true;
    return s;
  });
  server->route("/slow", [](const TestRequest&) {
    Script s = Script::text(200, "late");
    s.head_delay_ms = 60'000;
    return s;
  });
  EventLoop loop;
  auto a = std::make_shared<Outcome>();
  auto b = std::make_shared<Outcome>();
  loop.http_start(get(server->url("/never")), record_into(a));
  loop.http_start(get(server->url("/slow")), record_into(b));
  ASSERT_TRUE(run_until(loop, [&] { return server->request_count() == 2; }));
  uint64_t started = EventLoop::now_ns();
  server.reset();
  EXPECT_LT(EventLoop::now_ns() - started, 5'000 * kMs);
  // Both clients see the connection go away.
  ASSERT_TRUE(run_until(loop, [&] { return a->done() && b->done(); }));
  EXPECT_EQ(a->result, TROUPE_TRANSPORT);
  EXPECT_EQ(b->result, TROUPE_TRANSPORT);
}

TEST(HttpTestServer, RecordsRequestsAndAnswersUnknownPathsWith404) {
  HttpTestServer server;
  EventLoop loop;
  auto out = std::make_shared<Outcome>();
  loop.http_start(get(server.url("/nowhere?q=1")), record_into(out));
  ASSERT_TRUE(run_until(loop, [&] { return out->done(); }));
  EXPECT_TRUE(server.wait_for_requests(1, 0));
  EXPECT_EQ(out->status, 404);
  auto reqs = server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].target, "/nowhere?q=1");
  EXPECT_EQ(reqs[0].version, "HTTP/1.1");
  EXPECT_FALSE(server.wait_for_requests(2, 50));
}

TEST(HeaderParser, KeepsOnlyTheFinalBlockAndFoldsContinuations) {
  loop_detail::HeaderParser p;
  EXPECT_FALSE(p.feed("HTTP/1.1 100 Continue\r\n"));
  EXPECT_FALSE(p.feed("\r\n"));
  EXPECT_FALSE(p.complete());
  EXPECT_FALSE(p.feed("HTTP/1.1 200 OK\r\n"));
  EXPECT_FALSE(p.feed("Content-Type:  text/plain \r\n"));
  EXPECT_FALSE(p.feed("X-Long: one\r\n"));
  EXPECT_FALSE(p.feed("  two\r\n"));
  EXPECT_TRUE(p.feed("\r\n"));
  EXPECT_TRUE(p.complete());
  EXPECT_EQ(p.status(), 200);
  ASSERT_EQ(p.headers().size(), 2u);
  EXPECT_EQ(p.headers()[0], (std::pair<std::string, std::string>{"Content-Type", "text/plain"}));
  EXPECT_EQ(p.headers()[1].second, "one two");
  EXPECT_FALSE(p.feed("X-Trailer: ignored\r\n"));  // trailers after the body
  EXPECT_EQ(p.headers().size(), 2u);
}

TEST(HeaderParser, ParsesHttp2StatusLines) {
  loop_detail::HeaderParser p;
  p.feed("HTTP/2 429 \r\n");
  p.feed("retry-after: 7\r\n");
  EXPECT_TRUE(p.feed("\r\n"));
  EXPECT_EQ(p.status(), 429);
  EXPECT_EQ(*find_header(p.headers(), "Retry-After"), "7");
}

}  // namespace
}  // namespace troupe
