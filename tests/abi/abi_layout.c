/*
** abi_layout.c: pins the size and field offsets of every plugin ABI struct (LP64), in C99.
**
** Built with -std=c99 -pedantic-errors, so it also proves plugin.h is ISO C99. A layout
** change fails the build; the ABI lock (check_abi_lock.cmake) catches the rest. When a
** struct legitimately grows at the end in a new minor, update its size here.
*/
#include <stddef.h>
#include <stdio.h>

#include "troupe/plugin.h"

/* C99 has no _Static_assert: a negative array size is a compile error instead. */
#define ABI_CAT2(a, b) a##b
#define ABI_CAT(a, b) ABI_CAT2(a, b)
#define ABI_ASSERT(cond) typedef char ABI_CAT(abi_assert_line_, __LINE__)[(cond) ? 1 : -1]

#define SIZE(type, n) ABI_ASSERT(sizeof(type) == (n))
#define OFFSET(type, field, n) ABI_ASSERT(offsetof(type, field) == (n))

/* Status codes and enum values are fixed forever. */
ABI_ASSERT(TROUPE_OK == 0);
ABI_ASSERT(TROUPE_INVALID_ARGUMENT == 1);
ABI_ASSERT(TROUPE_UNSUPPORTED == 2);
ABI_ASSERT(TROUPE_NOT_FOUND == 3);
ABI_ASSERT(TROUPE_AUTH == 4);
ABI_ASSERT(TROUPE_RATE_LIMITED == 5);
ABI_ASSERT(TROUPE_TRANSPORT == 6);
ABI_ASSERT(TROUPE_TIMEOUT == 7);
ABI_ASSERT(TROUPE_CANCELLED == 8);
ABI_ASSERT(TROUPE_BUDGET_EXCEEDED == 9);
ABI_ASSERT(TROUPE_UNAVAILABLE == 10);
ABI_ASSERT(TROUPE_TOO_LARGE == 11);
ABI_ASSERT(TROUPE_INTERNAL == 12);
ABI_ASSERT(TROUPE_LOG_DEBUG == 0 && TROUPE_LOG_INFO == 1 && TROUPE_LOG_WARN == 2);
ABI_ASSERT(TROUPE_LOG_ERROR == 3);
ABI_ASSERT(TROUPE_PLUGIN_PROVIDER == 1 && TROUPE_PLUGIN_INTEGRATION == 2);
ABI_ASSERT(TROUPE_EVENT_TEXT_DELTA == 1 && TROUPE_EVENT_TOOL_CALL_DELTA == 2);
ABI_ASSERT(TROUPE_EVENT_USAGE == 3 && TROUPE_EVENT_REASONING_DELTA == 4);

/* Scalar types: fixed width whatever the platform. */
SIZE(troupe_status_t, 4);
SIZE(troupe_log_level_t, 4);
SIZE(troupe_plugin_kind_t, 4);
SIZE(troupe_event_type_t, 4);
SIZE(troupe_call_id_t, 8);
SIZE(troupe_handle_t, 8);
ABI_ASSERT(sizeof(bool) == 1);

#if defined(__LP64__) || defined(_LP64)

SIZE(troupe_str_t, 16);
OFFSET(troupe_str_t, ptr, 0);
OFFSET(troupe_str_t, len, 8);

SIZE(troupe_call_t, 56);
OFFSET(troupe_call_t, struct_size, 0);
OFFSET(troupe_call_t, id, 8);
OFFSET(troupe_call_t, operation, 16);
OFFSET(troupe_call_t, request, 32);
OFFSET(troupe_call_t, stream, 48);
OFFSET(troupe_call_t, timeout_ms, 52);

SIZE(troupe_event_t, 80);
OFFSET(troupe_event_t, struct_size, 0);
OFFSET(troupe_event_t, type, 4);
OFFSET(troupe_event_t, index, 8);
OFFSET(troupe_event_t, text, 16);
OFFSET(troupe_event_t, tool_id, 32);
OFFSET(troupe_event_t, tool_name, 48);
OFFSET(troupe_event_t, json, 64);

SIZE(troupe_completion_t, 48);
OFFSET(troupe_completion_t, struct_size, 0);
OFFSET(troupe_completion_t, status, 4);
OFFSET(troupe_completion_t, result, 8);
OFFSET(troupe_completion_t, error_message, 24);
OFFSET(troupe_completion_t, retryable, 40);
OFFSET(troupe_completion_t, retry_after_ms, 44);

SIZE(troupe_http_header_t, 32);
OFFSET(troupe_http_header_t, name, 0);
OFFSET(troupe_http_header_t, value, 16);

SIZE(troupe_http_request_t, 88);
OFFSET(troupe_http_request_t, struct_size, 0);
OFFSET(troupe_http_request_t, method, 8);
OFFSET(troupe_http_request_t, url, 24);
OFFSET(troupe_http_request_t, headers, 40);
OFFSET(troupe_http_request_t, header_count, 48);
OFFSET(troupe_http_request_t, body, 56);
OFFSET(troupe_http_request_t, timeout_ms, 72);
OFFSET(troupe_http_request_t, connect_timeout_ms, 76);
OFFSET(troupe_http_request_t, idle_timeout_ms, 80);

SIZE(troupe_http_callbacks_t, 40);
OFFSET(troupe_http_callbacks_t, struct_size, 0);
OFFSET(troupe_http_callbacks_t, user_data, 8);
OFFSET(troupe_http_callbacks_t, on_headers, 16);
OFFSET(troupe_http_callbacks_t, on_chunk, 24);
OFFSET(troupe_http_callbacks_t, on_complete, 32);

SIZE(troupe_host_api_t, 96);
OFFSET(troupe_host_api_t, struct_size, 0);
OFFSET(troupe_host_api_t, log, 8);
OFFSET(troupe_host_api_t, config_get, 16);
OFFSET(troupe_host_api_t, secret_get, 24);
OFFSET(troupe_host_api_t, emit, 32);
OFFSET(troupe_host_api_t, complete, 40);
OFFSET(troupe_host_api_t, http_start, 48);
OFFSET(troupe_host_api_t, http_cancel, 56);
OFFSET(troupe_host_api_t, timer_start, 64);
OFFSET(troupe_host_api_t, timer_cancel, 72);
OFFSET(troupe_host_api_t, post, 80);
OFFSET(troupe_host_api_t, now_ns, 88);

SIZE(troupe_plugin_descriptor_t, 80);
OFFSET(troupe_plugin_descriptor_t, struct_size, 0);
OFFSET(troupe_plugin_descriptor_t, abi_major, 4);
OFFSET(troupe_plugin_descriptor_t, abi_minor, 6);
OFFSET(troupe_plugin_descriptor_t, kind, 8);
OFFSET(troupe_plugin_descriptor_t, name, 16);
OFFSET(troupe_plugin_descriptor_t, version, 24);
OFFSET(troupe_plugin_descriptor_t, description, 32);
OFFSET(troupe_plugin_descriptor_t, capabilities, 40);
OFFSET(troupe_plugin_descriptor_t, create, 48);
OFFSET(troupe_plugin_descriptor_t, destroy, 56);
OFFSET(troupe_plugin_descriptor_t, invoke, 64);
OFFSET(troupe_plugin_descriptor_t, cancel, 72);

#define ABI_CHECKED "LP64 layout"
#else
#define ABI_CHECKED "constants only (not an LP64 platform)"
#endif

/* The checks above run at compile time; running is CTest's proof the TU was built. */
int main(void) {
  troupe_str_t s = TROUPE_STR("abi"); /* the C convenience macro compiles as C99 */
  printf("troupe ABI %d.%d: %s checked (%s, %u bytes)\n", TROUPE_ABI_MAJOR, TROUPE_ABI_MINOR,
         ABI_CHECKED, s.ptr, (unsigned)s.len);
  return 0;
}
