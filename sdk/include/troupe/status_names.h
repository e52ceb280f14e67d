/* status_names.h: the names of troupe_status_t values, for messages and error tables.
 *
 * C99 and C++; no allocation, any thread. The names are stable: workflows match on them
 * (`err.status == "rate_limited"`), and the host writes them into the journal. Not part of
 * the binary ABI (nothing here is exported), so it is not covered by sdk/abi.lock. */
#ifndef TROUPE_STATUS_NAMES_H
#define TROUPE_STATUS_NAMES_H

#include "troupe/plugin.h"

/* "ok", "invalid_argument", ..., "internal"; "unknown" for a value outside the enum. The
 * string is static. */
static inline const char* troupe_status_name(troupe_status_t status) {
  switch (status) {
    case TROUPE_OK:
      return "ok";
    case TROUPE_INVALID_ARGUMENT:
      return "invalid_argument";
    case TROUPE_UNSUPPORTED:
      return "unsupported";
    case TROUPE_NOT_FOUND:
      return "not_found";
    case TROUPE_AUTH:
      return "auth";
    case TROUPE_RATE_LIMITED:
      return "rate_limited";
    case TROUPE_TRANSPORT:
      return "transport";
    case TROUPE_TIMEOUT:
      return "timeout";
    case TROUPE_CANCELLED:
      return "cancelled";
    case TROUPE_BUDGET_EXCEEDED:
      return "budget_exceeded";
    case TROUPE_UNAVAILABLE:
      return "unavailable";
    case TROUPE_TOO_LARGE:
      return "too_large";
    case TROUPE_INTERNAL:
      return "internal";
    default:
      return "unknown";
  }
}

#endif /* TROUPE_STATUS_NAMES_H */
