// notify.cpp: post_webhook — a signed POST on the host's loop.
#include "runtime/notify.h"

#include <cstdlib>
#include <string>

#include "core/digest.h"
#include "core/log.h"
#include "loop/event_loop.h"
#include "runtime/runtime_internal.h"
#include "troupe/status_names.h"

namespace troupe::rt {

void post_webhook(Core& core, const std::string& url, const std::string& body) {
  HttpRequest request;
  request.method = "POST";
  request.url = url;
  request.body = body;
  request.timeout_ms = 10'000;
  request.policy = core.options.http_policy;
  std::string id = "msg_" + sha256_hex(body).substr(0, 24);
  std::string timestamp = std::to_string(unix_ms() / 1000);
  request.headers = {
      {"content-type", "application/json"}, {"webhook-id", id}, {"webhook-timestamp", timestamp}};
  const char* secret = std::getenv("TROUPE_WEBHOOK_SECRET");
  if (secret != nullptr && *secret != '\0') {
    request.headers.emplace_back(
        "webhook-signature", "v1," + hmac_sha256_base64(secret, id + "." + timestamp + "." + body));
  } else {
    log::warn("notify",
              "TROUPE_WEBHOOK_SECRET is not set: the webhook to " + url + " goes unsigned");
  }
  HttpHandlers handlers;
  handlers.on_complete = [url](troupe_status_t status, const std::string& error) {
    if (status != TROUPE_OK) {
      log::warn("notify", "webhook " + url + ": " + troupe_status_name(status) + ": " + error);
    }
  };
  core.loop.http_start(std::move(request), std::move(handlers));
}

}  // namespace troupe::rt
