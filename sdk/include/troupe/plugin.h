/*
** troupe plugin ABI: the one contract between the troupe host and its plugins.
**
** Pure C99; depends only on <stdint.h>, <stddef.h> and <stdbool.h>. A plugin is a shared
** library that exports exactly one symbol, troupe_plugin_describe(), and never links
** against host symbols: every host service arrives as a function table (troupe_host_api)
** handed to create().
**
** Naming, after Envoy's dynamic modules:
**   troupe_*_t        plain data types
**   troupe_host_api   host callbacks (functions the host implements, plugins call)
**   troupe_plugin_*   plugin hooks (functions the plugin implements, the host calls)
**
** Rules that hold for every function below unless its comment says otherwise:
**   - Strings are troupe_str_t {ptr,len}, UTF-8, not NUL-terminated. Anything passed into
**     a call is BORROWED for the duration of that call; the receiver copies what it keeps.
**   - Ownership crosses the boundary only as plugin instances (freed by destroy) and the
**     ids defined here. Nobody frees memory the other side allocated.
**   - Every struct starts with struct_size. Structs only ever grow at the end; a reader
**     zero-fills what the writer did not declare, so older plugins keep working.
**   - No C++ exception may cross this boundary. Errors are troupe_status_t values plus
**     a message the receiver copies.
**
** Versioning: TROUPE_ABI_MAJOR changes break compatibility; the host refuses plugins of
** another major. TROUPE_ABI_MINOR grows when something is appended; the host refuses a
** plugin built against a newer minor than its own. Any change to this file bumps one of
** them (tests/abi checks the header against sdk/abi.lock).
*/
#ifndef TROUPE_PLUGIN_H
#define TROUPE_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TROUPE_ABI_MAJOR 1
#define TROUPE_ABI_MINOR 0

#if defined(_WIN32)
#define TROUPE_EXPORT __declspec(dllexport)
#else
#define TROUPE_EXPORT __attribute__((visibility("default")))
#endif

/* ------------------------------------------------------------------------------------ */
/* Basic types                                                                          */
/* ------------------------------------------------------------------------------------ */

/* A borrowed UTF-8 string. ptr may be NULL only when len is 0. */
typedef struct troupe_str_t {
  const char* ptr;
  size_t len;
} troupe_str_t;

/* Status codes. The numbers are fixed forever; new codes are only appended. */
typedef int32_t troupe_status_t;
enum {
  TROUPE_OK = 0,
  TROUPE_INVALID_ARGUMENT = 1, /* the request is malformed (HTTP 400/422) */
  TROUPE_UNSUPPORTED = 2,      /* the operation or a feature is not offered */
  TROUPE_NOT_FOUND = 3,        /* unknown model, key or resource (HTTP 404) */
  TROUPE_AUTH = 4,             /* missing or rejected credentials (HTTP 401/403) */
  TROUPE_RATE_LIMITED = 5,     /* throttled; see retry_after_ms (HTTP 429) */
  TROUPE_TRANSPORT = 6,        /* connection failed, reset, or a garbled response */
  TROUPE_TIMEOUT = 7,          /* a deadline passed (HTTP 408 or a local timer) */
  TROUPE_CANCELLED = 8,        /* the caller cancelled */
  TROUPE_BUDGET_EXCEEDED = 9,  /* a budget or quota would be exceeded */
  TROUPE_UNAVAILABLE = 10,     /* the service is overloaded or failing (HTTP 5xx, 529) */
  TROUPE_TOO_LARGE = 11,       /* request or context too long (HTTP 413) */
  TROUPE_INTERNAL = 12         /* a bug: broken invariant, unexpected exception */
};

/* Log levels for troupe_host_api.log. */
typedef int32_t troupe_log_level_t;
enum { TROUPE_LOG_DEBUG = 0, TROUPE_LOG_INFO = 1, TROUPE_LOG_WARN = 2, TROUPE_LOG_ERROR = 3 };

/* What a plugin is. */
typedef int32_t troupe_plugin_kind_t;
enum {
  TROUPE_PLUGIN_PROVIDER = 1,   /* an LLM API: operation "chat" */
  TROUPE_PLUGIN_INTEGRATION = 2 /* tools: operation "tool.<name>" */
};

/* Opaque host handle given to one plugin instance. Valid from create() until destroy()
** returns; the host keeps it valid while any call of the instance is still in flight. */
typedef struct troupe_host_t troupe_host_t;

/* Identifies one call (one invoke). Chosen by the host, never 0, never reused within a
** host process. Plugins pass it back to emit()/complete(). An unknown id is harmless:
** the host ignores it and logs a contract violation. */
typedef uint64_t troupe_call_id_t;

/* Identifies an HTTP transfer or a timer started through the host. Never 0. */
typedef uint64_t troupe_handle_t;

/* ------------------------------------------------------------------------------------ */
/* Calls: events and completion                                                         */
/* ------------------------------------------------------------------------------------ */

/* A call the host asks a plugin instance to perform. Borrowed for the duration of
** invoke(); copy what you keep. */
typedef struct troupe_call_t {
  uint32_t struct_size;
  troupe_call_id_t id;
  troupe_str_t operation; /* "chat" for providers; "tool.<name>" for integrations */
  troupe_str_t request;   /* JSON: sdk/schemas/chat_request.schema.json for "chat" */
  bool stream;            /* the caller wants stream events as they come */
  uint32_t timeout_ms;    /* the host's deadline for this call; 0 = none */
} troupe_call_t;

/* Kinds of stream event. */
typedef int32_t troupe_event_type_t;
enum {
  TROUPE_EVENT_TEXT_DELTA = 1,      /* text: a piece of the answer */
  TROUPE_EVENT_TOOL_CALL_DELTA = 2, /* index, tool_id, tool_name, text (arguments JSON piece) */
  TROUPE_EVENT_USAGE = 3,           /* json: {"input_tokens":..,"output_tokens":..,...} */
  TROUPE_EVENT_REASONING_DELTA = 4  /* text: a piece of the model's visible reasoning */
};

/* One stream event. Borrowed for the duration of emit(). Fields a type does not use are
** zero. See sdk/schemas/stream_event.schema.json for the JSON form the host exposes. */
typedef struct troupe_event_t {
  uint32_t struct_size;
  troupe_event_type_t type;
  int32_t index;          /* tool call index within the turn (TOOL_CALL_DELTA) */
  troupe_str_t text;      /* TEXT_DELTA, REASONING_DELTA, TOOL_CALL_DELTA arguments */
  troupe_str_t tool_id;   /* TOOL_CALL_DELTA: set on the first delta of a call */
  troupe_str_t tool_name; /* TOOL_CALL_DELTA: set on the first delta of a call */
  troupe_str_t json;      /* USAGE: a JSON object */
} troupe_event_t;

/* The single completion of a call. Borrowed for the duration of complete(). */
typedef struct troupe_completion_t {
  uint32_t struct_size;
  troupe_status_t status;
  troupe_str_t result;        /* OK: JSON (chat_response.schema.json for "chat") */
  troupe_str_t error_message; /* not OK: what went wrong, for a human; no secrets */
  bool retryable;             /* not OK: trying the same call again may succeed */
  uint32_t retry_after_ms;    /* not OK: wait at least this long first; 0 = unknown */
} troupe_completion_t;

/* ------------------------------------------------------------------------------------ */
/* Host services (host callbacks)                                                       */
/* ------------------------------------------------------------------------------------ */

typedef struct troupe_http_header_t {
  troupe_str_t name;
  troupe_str_t value;
} troupe_http_header_t;

/* An HTTP request. Borrowed for the duration of http_start(); the host copies it.
** A header value may contain "${secret:NAME}": the host substitutes the secret NAME of
** this instance, so a plugin can authenticate without ever holding the key. */
typedef struct troupe_http_request_t {
  uint32_t struct_size;
  troupe_str_t method; /* "GET", "POST", ... */
  troupe_str_t url;
  const troupe_http_header_t* headers;
  size_t header_count;
  troupe_str_t body;
  uint32_t timeout_ms;         /* whole transfer; 0 = none */
  uint32_t connect_timeout_ms; /* 0 = host default */
  uint32_t idle_timeout_ms;    /* fail when no byte arrives for this long; 0 = none */
} troupe_http_request_t;

/* Callbacks for one HTTP transfer. They run on the host loop thread, one at a time, in
** this order: on_headers once (when the status line and headers are in), on_chunk any
** number of times, then on_complete exactly once. After cancel (http_cancel or the owning
** call's cancel), on_complete still comes, with TROUPE_CANCELLED. All pointers passed to
** the callbacks are borrowed for the duration of the callback. */
typedef struct troupe_http_callbacks_t {
  uint32_t struct_size;
  void* user_data;
  void (*on_headers)(void* user_data, int32_t status_code, const troupe_http_header_t* headers,
                     size_t header_count);
  void (*on_chunk)(void* user_data, troupe_str_t data);
  /* status is OK when a full response arrived, whatever its HTTP status code. */
  void (*on_complete)(void* user_data, troupe_status_t status, troupe_str_t error_message);
} troupe_http_callbacks_t;

/* The host services, handed to create(). The table and every function in it stay valid
** until destroy() of that instance returns. Unless noted, a function may be called from
** any thread. */
typedef struct troupe_host_api_t {
  uint32_t struct_size;

  /* Log a message under the plugin's name. The host redacts known secret values. */
  void (*log)(troupe_host_t* host, troupe_log_level_t level, troupe_str_t message);

  /* Look up a setting of this instance (from the host config). Scalars come as their text
  ** (true/false, numbers as written); objects and arrays as JSON. On OK *out points to host
  ** memory valid until destroy() returns. Returns TROUPE_NOT_FOUND when absent. */
  troupe_status_t (*config_get)(troupe_host_t* host, troupe_str_t key, troupe_str_t* out);

  /* Look up a secret of this instance (e.g. "api_key"). Same lifetime as config_get.
  ** Never log it: prefer "${secret:NAME}" in HTTP headers, which keeps it in the host. */
  troupe_status_t (*secret_get)(troupe_host_t* host, troupe_str_t name, troupe_str_t* out);

  /* Report a stream event of an in-flight call. Any thread; events of one call must not be
  ** emitted concurrently. Ignored after the call completed. */
  void (*emit)(troupe_host_t* host, troupe_call_id_t call, const troupe_event_t* event);

  /* Complete a call. Exactly once per invoke(), from any thread, also after cancel() (then
  ** usually with TROUPE_CANCELLED). A second completion is ignored and logged. */
  void (*complete)(troupe_host_t* host, troupe_call_id_t call,
                   const troupe_completion_t* completion);

  /* Start an HTTP transfer on the host's event loop (TLS, proxies, connection reuse and
  ** timeouts are the host's). call ties the transfer to an invoke: when that call is
  ** cancelled the transfer is cancelled too; pass 0 for none. Loop thread only (plugin
  ** hooks run there). On OK *out_handle identifies the transfer; on error no callback
  ** will run. */
  troupe_status_t (*http_start)(troupe_host_t* host, troupe_call_id_t call,
                                const troupe_http_request_t* request,
                                const troupe_http_callbacks_t* callbacks,
                                troupe_handle_t* out_handle);

  /* Cancel a transfer. Its on_complete follows with TROUPE_CANCELLED (unless it already
  ** ran). Loop thread only. */
  void (*http_cancel)(troupe_host_t* host, troupe_handle_t transfer);

  /* Run fn(user_data) once on the loop thread after delay_ms. Loop thread only. */
  troupe_handle_t (*timer_start)(troupe_host_t* host, uint64_t delay_ms, void (*fn)(void*),
                                 void* user_data);

  /* Cancel a timer that has not fired; returns false when it already ran or is unknown.
  ** Loop thread only. */
  bool (*timer_cancel)(troupe_host_t* host, troupe_handle_t timer);

  /* Run fn(user_data) on the loop thread soon. Any thread. Returns TROUPE_UNAVAILABLE when
  ** the host is shutting down (fn will then not run). */
  troupe_status_t (*post)(troupe_host_t* host, void (*fn)(void*), void* user_data);

  /* Monotonic clock in nanoseconds. Any thread. */
  uint64_t (*now_ns)(troupe_host_t* host);
} troupe_host_api_t;

/* ------------------------------------------------------------------------------------ */
/* Plugin hooks and the descriptor                                                      */
/* ------------------------------------------------------------------------------------ */

/* Create an instance. config_json is the instance's settings (a JSON object, borrowed).
** On OK stores the instance in *out_instance. On error writes a message (borrowed: it must
** stay valid until the plugin's next hook call; a static string is typical) to
** *out_error. Loop thread. The host and api pointers live until destroy() returns. */
typedef troupe_status_t (*troupe_plugin_create_fn)(const troupe_host_api_t* api,
                                                   troupe_host_t* host, troupe_str_t config_json,
                                                   void** out_instance, troupe_str_t* out_error);

/* Destroy an instance. The host calls it only once no call of the instance is in flight.
** After destroy() returns the host runs no callback of the instance: pending timers, posted
** functions and HTTP callbacks are dropped, so the plugin frees their user_data here. A plugin
** joins any thread of its own here (the library may be unloaded right after). Loop thread. */
typedef void (*troupe_plugin_destroy_fn)(void* instance);

/* Start a call. Returns at once; the plugin later calls api->complete(host, call->id, ...)
** exactly once (it may do so before invoke returns) and before that any number of
** api->emit(). Loop thread. */
typedef void (*troupe_plugin_invoke_fn)(void* instance, const troupe_call_t* call);

/* Ask an in-flight call to stop. Advisory: the call still completes exactly once. HTTP
** transfers started with this call id are cancelled by the host. Loop thread. */
typedef void (*troupe_plugin_cancel_fn)(void* instance, troupe_call_id_t call);

/* The static description of a plugin. Strings are NUL-terminated and static. */
typedef struct troupe_plugin_descriptor_t {
  uint32_t struct_size;
  uint16_t abi_major; /* TROUPE_ABI_MAJOR the plugin was built against */
  uint16_t abi_minor; /* TROUPE_ABI_MINOR the plugin was built against */
  troupe_plugin_kind_t kind;
  const char* name;         /* [a-z0-9_-]+, unique on the search path, e.g. "openai" */
  const char* version;      /* the plugin's own version, e.g. "1.2.0" */
  const char* description;  /* one line for humans */
  const char* capabilities; /* JSON object: what it offers, e.g. {"operations":["chat"],
                               "streaming":true,"tools":true} */
  troupe_plugin_create_fn create;
  troupe_plugin_destroy_fn destroy;
  troupe_plugin_invoke_fn invoke;
  troupe_plugin_cancel_fn cancel;
} troupe_plugin_descriptor_t;

/* The one exported symbol. Must have no side effects (no threads, no I/O, no allocation
** the host must free). Returns a descriptor with static lifetime, or NULL when the plugin
** cannot work with a host of this ABI version. May be called any number of times. */
#define TROUPE_PLUGIN_ENTRY "troupe_plugin_describe"
typedef const troupe_plugin_descriptor_t* (*troupe_plugin_describe_fn)(uint32_t host_abi_major,
                                                                       uint32_t host_abi_minor);

/* Convenience for C plugins: TROUPE_STR("literal") */
#define TROUPE_STR(lit) ((troupe_str_t){(lit), sizeof(lit) - 1})

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TROUPE_PLUGIN_H */
