// notify.h: notifications a run sends about itself (approval escalations), today as signed
// webhooks; Slack and e-mail come through integration plugins later, behind the same call.
#pragma once

#include <string>

namespace troupe::rt {

class Core;

// POSTs body (JSON) to url on the loop, through the workflows' HTTP destination policy, signed
// the Standard Webhooks way: headers webhook-id, webhook-timestamp and webhook-signature
// ("v1," + base64 HMAC-SHA256 of "<id>.<timestamp>.<body>") under the secret in
// $TROUPE_WEBHOOK_SECRET (sent unsigned, with a warning, when it is not set). Fire and forget:
// a failure is logged, never retried here. Loop thread.
void post_webhook(Core& core, const std::string& url, const std::string& body);

}  // namespace troupe::rt
