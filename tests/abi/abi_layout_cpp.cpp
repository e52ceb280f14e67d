// abi_layout_cpp.cpp: checks plugin.h (and plugin.hpp) from C++: same layout as in C, ISO C++,
// and TROUPE_STR usable from C++.
//
// Built with -pedantic-errors as C++17, the SDK's promised language level. The offsets
// repeat abi_layout.c on purpose: C and C++ compilers must agree on every struct.
#include <troupe/plugin.h>
#include <troupe/plugin.hpp>

#include <cstddef>
#include <cstdio>
#include <type_traits>

#define SIZE(type, n) static_assert(sizeof(type) == (n), "sizeof(" #type ") changed")
#define OFFSET(type, field, n) \
  static_assert(offsetof(type, field) == (n), "offsetof(" #type ", " #field ") changed")
#define PLAIN(type)                                                                    \
  static_assert(std::is_standard_layout_v<type> && std::is_trivially_copyable_v<type>, \
                #type " must stay a plain C struct")

PLAIN(troupe_str_t);
PLAIN(troupe_call_t);
PLAIN(troupe_event_t);
PLAIN(troupe_completion_t);
PLAIN(troupe_http_header_t);
PLAIN(troupe_http_request_t);
PLAIN(troupe_http_callbacks_t);
PLAIN(troupe_host_api_t);
PLAIN(troupe_plugin_descriptor_t);

static_assert(TROUPE_INTERNAL == 12 && TROUPE_CANCELLED == 8, "status codes are fixed");
SIZE(bool, 1);
SIZE(troupe_status_t, 4);
SIZE(troupe_call_id_t, 8);
SIZE(troupe_handle_t, 8);

#if defined(__LP64__) || defined(_LP64)
SIZE(troupe_str_t, 16);
SIZE(troupe_call_t, 56);
OFFSET(troupe_call_t, id, 8);
OFFSET(troupe_call_t, operation, 16);
OFFSET(troupe_call_t, request, 32);
OFFSET(troupe_call_t, stream, 48);
OFFSET(troupe_call_t, timeout_ms, 52);
SIZE(troupe_event_t, 80);
OFFSET(troupe_event_t, type, 4);
OFFSET(troupe_event_t, index, 8);
OFFSET(troupe_event_t, text, 16);
OFFSET(troupe_event_t, tool_id, 32);
OFFSET(troupe_event_t, tool_name, 48);
OFFSET(troupe_event_t, json, 64);
SIZE(troupe_completion_t, 48);
OFFSET(troupe_completion_t, status, 4);
OFFSET(troupe_completion_t, result, 8);
OFFSET(troupe_completion_t, error_message, 24);
OFFSET(troupe_completion_t, retryable, 40);
OFFSET(troupe_completion_t, retry_after_ms, 44);
SIZE(troupe_http_header_t, 32);
SIZE(troupe_http_request_t, 88);
OFFSET(troupe_http_request_t, headers, 40);
OFFSET(troupe_http_request_t, header_count, 48);
OFFSET(troupe_http_request_t, body, 56);
OFFSET(troupe_http_request_t, timeout_ms, 72);
OFFSET(troupe_http_request_t, idle_timeout_ms, 80);
SIZE(troupe_http_callbacks_t, 40);
OFFSET(troupe_http_callbacks_t, on_complete, 32);
SIZE(troupe_host_api_t, 96);
OFFSET(troupe_host_api_t, log, 8);
OFFSET(troupe_host_api_t, complete, 40);
OFFSET(troupe_host_api_t, http_start, 48);
OFFSET(troupe_host_api_t, timer_start, 64);
OFFSET(troupe_host_api_t, post, 80);
OFFSET(troupe_host_api_t, now_ns, 88);
SIZE(troupe_plugin_descriptor_t, 80);
OFFSET(troupe_plugin_descriptor_t, abi_major, 4);
OFFSET(troupe_plugin_descriptor_t, abi_minor, 6);
OFFSET(troupe_plugin_descriptor_t, kind, 8);
OFFSET(troupe_plugin_descriptor_t, name, 16);
OFFSET(troupe_plugin_descriptor_t, capabilities, 40);
OFFSET(troupe_plugin_descriptor_t, create, 48);
OFFSET(troupe_plugin_descriptor_t, cancel, 72);
#endif

// The SDK's status names are the JSON names (sdk/schemas/error.schema.json).
static_assert(std::is_same_v<decltype(troupe::sdk::status_name(0)), const char*>);

int main() {
  for (troupe_status_t s = TROUPE_OK; s <= TROUPE_INTERNAL; ++s) {
    auto back = troupe::sdk::status_from_name(troupe::sdk::status_name(s));
    if (!back || *back != s) {
      std::printf("status_name/status_from_name disagree for %d\n", static_cast<int>(s));
      return 1;
    }
  }
  // The convenience macro compiles as ISO C++ too (a C99 compound literal would not).
  troupe_str_t s = TROUPE_STR("abi");
  if (s.len != 3 || s.ptr[0] != 'a') {
    std::printf("TROUPE_STR is wrong in C++\n");
    return 1;
  }
  std::printf("troupe ABI %d.%d: C++ agrees with C\n", TROUPE_ABI_MAJOR, TROUPE_ABI_MINOR);
  return 0;
}
