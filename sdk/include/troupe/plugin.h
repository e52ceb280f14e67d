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
** Rules for every function below:
**   - Strings are troupe_str_t {ptr,len}, UTF-8, not NUL-terminated. Anything passed into
**     a call is BORROWED for the duration of that call; the receiver copies what it keeps.
**   - Ownership crosses the boundary only as plugin instances (freed by destroy) and the
**     ids defined here. Nobody frees memory the other side allocated. A user_data pointer
**     handed to the host stays the plugin's: the host never frees it, only passes it back.
**   - Every struct starts with struct_size. Structs only ever grow at the end; a reader
**     zero-fills what the writer did not declare, so older plugins keep working.
**   - No C++ exception may cross this boundary. Errors are troupe_status_t values plus
**     a message the receiver copies.
**
** Every function's comment states:
**   Thread    where the host calls a hook, or where a plugin may call a host function.
**             "The loop thread" is the one thread that runs the host's event loop: every
**             hook, timer, posted function and HTTP callback of an instance runs there, one
**             at a time, so a plugin needs no lock for state only they touch. Never block it.
**   Owns      who frees what, and how long each pointer stays valid.
**   Returns   the results and statuses it produces; Refuses: what it returns when it will
**             not do the work (a refusal never runs a callback later).
** "Counted" below means: ignored, counted as a contract violation of the plugin and logged
** as a warning naming the plugin, instance and call (once per call id).
**
** Versioning: TROUPE_ABI_MAJOR changes break compatibility; the host refuses plugins of
** another major. TROUPE_ABI_MINOR grows when something is appended; the host refuses a
** plugin built against a newer minor than its own. A change to the declarations of this
** file bumps one of them; comments may change freely (tests/abi checks the declarations
** against sdk/abi.lock; sdk/README.md says how to record a version).
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

/* Status codes. The numbers are fixed forever; new codes are only appended. A plugin may
** complete a call with any of them; the host turns any other value into TROUPE_INTERNAL. */
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

/* Opaque host handle given to one plugin instance. Owned by the host. Valid from create()
** until destroy() returns (after a failed create(): until create() returns); destroy() only
** comes once no call of the instance is in flight. A plugin thread must not use it after
** destroy() has returned: join such threads in destroy(). */
typedef struct troupe_host_t troupe_host_t;

/* Identifies one call (one invoke). Chosen by the host, never 0, never reused within a
** host process (unique across all instances). Plugins pass it back to emit(), complete()
** and http_start(). An unknown id is harmless: counted. */
typedef uint64_t troupe_call_id_t;

/* Identifies an HTTP transfer or a timer started through the host. Never 0 (0 is
** timer_start's refusal). Only meaningful to the instance that started it. */
typedef uint64_t troupe_handle_t;

/* ------------------------------------------------------------------------------------ */
/* Calls: events and completion                                                         */
/* ------------------------------------------------------------------------------------ */

/* A call the host asks a plugin instance to perform. Owned by the host and borrowed for the
** duration of invoke(), with every string in it: copy what you keep. */
typedef struct troupe_call_t {
  uint32_t struct_size;
  troupe_call_id_t id;
  troupe_str_t operation; /* "chat" for providers; "tool.<name>" for integrations */
  troupe_str_t request;   /* JSON: sdk/schemas/chat_request.schema.json for "chat" */
  bool stream;            /* the caller wants stream events as they come */
  uint32_t timeout_ms;    /* the host's deadline for this call; 0 = none. When it passes the
                             host answers the caller with TROUPE_TIMEOUT and calls cancel() */
} troupe_call_t;

/* Kinds of stream event. */
typedef int32_t troupe_event_type_t;
enum {
  TROUPE_EVENT_TEXT_DELTA = 1,      /* text: a piece of the answer */
  TROUPE_EVENT_TOOL_CALL_DELTA = 2, /* index, tool_id, tool_name, text (arguments JSON piece) */
  TROUPE_EVENT_USAGE = 3,           /* json: {"input_tokens":..,"output_tokens":..,...} */
  TROUPE_EVENT_REASONING_DELTA = 4  /* text: a piece of the model's visible reasoning */
};

/* One stream event. Owned by the plugin and borrowed for the duration of emit(), with every
** string in it; the host copies it before emit() returns. Fields a type does not use are
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

/* The single completion of a call. Owned by the plugin and borrowed for the duration of
** complete(), with every string in it; the host copies it before complete() returns. */
typedef struct troupe_completion_t {
  uint32_t struct_size;
  troupe_status_t status;     /* a TROUPE_* code; another value becomes INTERNAL (counted) */
  troupe_str_t result;        /* OK: JSON (chat_response.schema.json for "chat") */
  troupe_str_t error_message; /* not OK: what went wrong, for a human; the host redacts known
                                 secrets, and writes one when it is empty. Ignored on OK */
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

/* An HTTP request. Owned by the plugin and borrowed for the duration of http_start(), with
** the headers array and every string; the host copies all of it. An empty method means
** "GET". A header value may contain "${secret:NAME}": the host substitutes the secret NAME
** of this instance, so a plugin can authenticate without ever holding the key. The host
** does not follow redirects: a 3xx answer is a complete response. */
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

/* Callbacks for one HTTP transfer. The struct is borrowed for the duration of http_start()
** (the host copies the pointers); any callback may be NULL (then it is skipped).
** Thread: the loop thread, one at a time, never inside http_start() or http_cancel().
** Order: on_headers at most once, when the status line and headers are in (on a TROUPE_OK
** completion it always came first); on_chunk any number of times with pieces of the body;
** then on_complete exactly once, also after cancel (http_cancel, or the owning call
** cancelled or timed out), then with TROUPE_CANCELLED unless the transfer had ended first.
** Exception: once destroy() of the instance has been called, no callback runs any more.
** Owns: user_data is the plugin's; it must stay valid until on_complete has returned, or
** until destroy() when the instance goes first (free it there). Everything passed to a
** callback is borrowed for the duration of that callback.
** on_complete statuses: TROUPE_OK when a full response arrived, whatever its HTTP status
** code; TROUPE_TRANSPORT (connection failed, reset, truncated); TROUPE_TIMEOUT (timeout_ms,
** connect_timeout_ms or idle_timeout_ms passed); TROUPE_CANCELLED; TROUPE_INVALID_ARGUMENT
** (a method, URL or header the host will not send; error_message says which);
** TROUPE_INTERNAL (a failure inside the host). error_message is empty on OK. */
typedef struct troupe_http_callbacks_t {
  uint32_t struct_size;
  void* user_data;
  void (*on_headers)(void* user_data, int32_t status_code, const troupe_http_header_t* headers,
                     size_t header_count);
  void (*on_chunk)(void* user_data, troupe_str_t data);
  void (*on_complete)(void* user_data, troupe_status_t status, troupe_str_t error_message);
} troupe_http_callbacks_t;

/* The host services, handed to create(). Owned by the host: the table and every function in
** it stay valid until destroy() of that instance returns. struct_size is the host's; it is
** never smaller than the plugin's own (the host refuses plugins of a newer minor). Every
** function takes the instance's host handle first. "Host failure" below means a NULL host or
** a failure inside the host (e.g. out of memory); no exception ever comes back. */
typedef struct troupe_host_api_t {
  uint32_t struct_size;

  /* log: writes message to the host's log under the instance's name ("plugin:<instance>").
  ** Thread: any. Owns: message is borrowed; the host copies it and redacts the values of
  ** known secrets. An unknown level logs as TROUPE_LOG_WARN. Returns nothing; on a host
  ** failure the line is dropped. */
  void (*log)(troupe_host_t* host, troupe_log_level_t level, troupe_str_t message);

  /* config_get: one setting of this instance (from the host config). key is a top-level name
  ** ("model") or a JSON pointer into nested settings ("/limits/rpm"). A string comes as its
  ** text, any other value as compact JSON (true, 0.5, {"a":[1]}).
  ** Thread: any. Owns: key is borrowed; on OK *out points to host memory that stays valid and
  ** unchanged until destroy() returns.
  ** Returns TROUPE_OK, or TROUPE_NOT_FOUND when the setting is absent or null.
  ** Refuses: TROUPE_INVALID_ARGUMENT when out is NULL; TROUPE_INTERNAL on a host failure. */
  troupe_status_t (*config_get)(troupe_host_t* host, troupe_str_t key, troupe_str_t* out);

  /* secret_get: one secret of this instance (e.g. "api_key"). Never log it: prefer
  ** "${secret:NAME}" in HTTP header values, which keeps it in the host.
  ** Thread: any. Owns: name is borrowed; on OK *out points to host memory valid until
  ** destroy() returns.
  ** Returns TROUPE_OK, or TROUPE_NOT_FOUND when the instance has no such secret.
  ** Refuses: TROUPE_INVALID_ARGUMENT when out is NULL; TROUPE_INTERNAL on a host failure. */
  troupe_status_t (*secret_get)(troupe_host_t* host, troupe_str_t name, troupe_str_t* out);

  /* emit: reports a stream event of an in-flight call; the caller sees the events of a call
  ** in the order emit() was called, all before its completion.
  ** Thread: any, also inside invoke(); the events of one call must not be emitted from two
  ** threads at once. Owns: event is borrowed (copied before emit() returns).
  ** Returns nothing. Dropped silently once the host has answered the caller (cancel, timeout);
  ** counted when event is NULL, the plugin already completed the call, or the id is unknown. */
  void (*emit)(troupe_host_t* host, troupe_call_id_t call, const troupe_event_t* event);

  /* complete: ends a call. Exactly once per invoke(), also after cancel() (then usually with
  ** TROUPE_CANCELLED). The caller hears of it later on the loop thread, never inside invoke().
  ** Thread: any, also inside invoke(). Owns: completion is borrowed (copied before complete()
  ** returns); after it the plugin owns nothing of the call.
  ** Returns nothing. When the host already answered the caller (cancel, timeout, instance
  ** dropped) the completion only ends the call's "in flight" state, silently. Counted: a
  ** second completion or an unknown id (ignored); a NULL completion or an unknown status
  ** (the call fails with TROUPE_INTERNAL). */
  void (*complete)(troupe_host_t* host, troupe_call_id_t call,
                   const troupe_completion_t* completion);

  /* http_start: starts an HTTP transfer on the host's event loop (TLS, proxies, connection
  ** reuse and timeouts are the host's). call ties the transfer to an in-flight call of this
  ** instance: when that call is cancelled or times out the transfer is cancelled too; pass 0
  ** for none. See troupe_http_request_t and troupe_http_callbacks_t.
  ** Thread: the loop thread only. Owns: request and callbacks are borrowed; user_data as in
  ** troupe_http_callbacks_t.
  ** Returns TROUPE_OK with *out_handle set; the callbacks follow. A request the host will
  ** not send (bad URL, method or header) is still OK: on_complete reports it.
  ** Refuses (no callback will ever run): TROUPE_INVALID_ARGUMENT when request, callbacks or
  ** out_handle is NULL, or call is not an in-flight call of this instance (counted);
  ** TROUPE_CANCELLED when that call was already cancelled or timed out; TROUPE_NOT_FOUND
  ** when a header names an unknown ${secret:NAME}; TROUPE_UNAVAILABLE inside destroy();
  ** TROUPE_INTERNAL off the loop thread (counted) or on a host failure. */
  troupe_status_t (*http_start)(troupe_host_t* host, troupe_call_id_t call,
                                const troupe_http_request_t* request,
                                const troupe_http_callbacks_t* callbacks,
                                troupe_handle_t* out_handle);

  /* http_cancel: cancels a transfer of this instance. Its on_complete follows later with
  ** TROUPE_CANCELLED, unless it already ran or the transfer had ended (then with how it ended).
  ** Thread: the loop thread only. Returns nothing; an unknown or finished handle, or one of
  ** another instance, is ignored; a call off the loop thread is counted and ignored. */
  void (*http_cancel)(troupe_host_t* host, troupe_handle_t transfer);

  /* timer_start: runs fn(user_data) once on the loop thread after delay_ms (0: as soon as
  ** possible, but never inside timer_start()).
  ** Thread: the loop thread only. Owns: user_data is the plugin's; it must stay valid until
  ** fn has run, timer_cancel() returned true, or destroy() (a timer pending then never
  ** fires: free its user_data there).
  ** Returns the timer's handle. Refuses with 0 (fn will not run): off the loop thread or a
  ** NULL fn (both counted), inside destroy(), on a host failure. */
  troupe_handle_t (*timer_start)(troupe_host_t* host, uint64_t delay_ms, void (*fn)(void*),
                                 void* user_data);

  /* timer_cancel: cancels a timer of this instance that has not fired.
  ** Thread: the loop thread only. Owns: on true, fn will never run and user_data is the
  ** plugin's to free.
  ** Returns true when the timer was pending; false when it already ran, is unknown or of
  ** another instance, off the loop thread (counted), or on a host failure. */
  bool (*timer_cancel)(troupe_host_t* host, troupe_handle_t timer);

  /* post: runs fn(user_data) soon on the loop thread, in posting order; never inside post().
  ** The way back to the loop from a plugin's own thread.
  ** Thread: any. Owns: user_data is the plugin's; it must stay valid until fn has run, or
  ** until destroy() (a function not yet run then never runs, also one posted from inside
  ** destroy(): free its user_data there).
  ** Returns TROUPE_OK. Refuses (fn will not run): TROUPE_INVALID_ARGUMENT for a NULL fn
  ** (counted); TROUPE_UNAVAILABLE when the host is shutting down or on a host failure. */
  troupe_status_t (*post)(troupe_host_t* host, void (*fn)(void*), void* user_data);

  /* now_ns: a monotonic clock in nanoseconds (arbitrary epoch), the one the host's timers
  ** use. Thread: any. Never fails. */
  uint64_t (*now_ns)(troupe_host_t* host);
} troupe_host_api_t;

/* ------------------------------------------------------------------------------------ */
/* Plugin hooks and the descriptor                                                      */
/* ------------------------------------------------------------------------------------ */

/* create: makes one instance, once per configured instance of the plugin. Every host
** service may be used from here on (HTTP with call 0).
** Thread: the loop thread.
** Owns: api and host are the host's, valid until destroy() returns. config_json (the
** instance's settings, a JSON object; "{}" when none) is borrowed for the call. On OK the
** plugin stores its instance pointer in *out_instance (any value, NULL included: the host
** only passes it back to the other hooks). On error it points *out_error at a message that
** stays valid after create() returns, until the plugin's next hook call (a static string
** or buffer is typical); the host copies it and redacts known secrets.
** Returns TROUPE_OK, or any other status to refuse (TROUPE_INVALID_ARGUMENT for bad
** settings): the host then fails the instance with the message, never calls
** destroy(), and drops every timer, transfer and posted function the plugin started without
** running their callbacks, so the plugin frees everything itself before returning. */
typedef troupe_status_t (*troupe_plugin_create_fn)(const troupe_host_api_t* api,
                                                   troupe_host_t* host, troupe_str_t config_json,
                                                   void** out_instance, troupe_str_t* out_error);

/* destroy: frees an instance. Called once per successful create(), when the host drops the
** instance and no call of it is in flight (every invoke() completed, and the host has seen
** the completion).
** Thread: the loop thread.
** Owns: from the moment destroy() is called the host runs no callback of the instance:
** pending timers, posted functions and HTTP callbacks are dropped, so the plugin frees their
** user_data here. log, config_get and secret_get still work inside destroy(); timer_start
** and http_start refuse, and a posted function never runs. The plugin joins any thread of
** its own here: the host handle and api are invalid once destroy() returns, and the library
** may be unloaded right after. */
typedef void (*troupe_plugin_destroy_fn)(void* instance);

/* invoke: starts a call. Returns at once (never block the loop); the plugin later calls
** api->complete(host, call->id, ...) exactly once, and before that any number of
** api->emit(). Both may come before invoke returns, or later from a timer, an HTTP
** callback or another thread.
** Thread: the loop thread; never two hooks of one instance at once.
** Owns: call is borrowed for the duration of invoke(); copy what you keep.
** Returns nothing: failures are completions. (A C++ exception escaping invoke() is a breach:
** the host completes the call with TROUPE_INTERNAL and counts it.) */
typedef void (*troupe_plugin_invoke_fn)(void* instance, const troupe_call_t* call);

/* cancel: asks an in-flight call to stop, because the caller cancelled it, its timeout_ms
** passed, or the instance is being dropped. Advisory: the caller's answer is the host's
** (TROUPE_CANCELLED or TROUPE_TIMEOUT, given as this hook returns), and the HTTP transfers
** started with this call id are already cancelled (their on_complete follows). The plugin
** still completes the call exactly once (any status, usually TROUPE_CANCELLED); until then
** the call counts as in flight and destroy() waits.
** At most once per call. It may arrive after the plugin called complete() for the call,
** while that completion is still on its way to the loop: ignore it then.
** Thread: the loop thread. Returns nothing. */
typedef void (*troupe_plugin_cancel_fn)(void* instance, troupe_call_id_t call);

/* The description of a plugin. Static lifetime; strings are NUL-terminated and static. The
** host copies the struct_size bytes the plugin declared (zero-filling the rest) and refuses
** the library, naming the reason, when: the major differs, the minor is newer than its
** own, struct_size is below this version's, name is not [a-z0-9_-]+, kind is unknown, a hook
** is NULL, or capabilities is neither NULL nor a JSON object. */
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

/* troupe_plugin_describe: the one exported symbol. Must have no side effects (no threads,
** no I/O, no allocation the host must free).
** Thread: any thread that loads the library, not necessarily the loop thread (listing the
** installed plugins loads them too); any number of times, also when no instance follows.
** Returns a descriptor with static lifetime, or NULL when the plugin cannot work with a
** host of this ABI version (host_abi_major differs from its own TROUPE_ABI_MAJOR). */
#define TROUPE_PLUGIN_ENTRY "troupe_plugin_describe"
typedef const troupe_plugin_descriptor_t* (*troupe_plugin_describe_fn)(uint32_t host_abi_major,
                                                                       uint32_t host_abi_minor);

/* TROUPE_STR("literal"): a troupe_str_t of a string literal, without its NUL. Only for
** literals (it uses sizeof). A C99 compound literal in C, a braced temporary in C++11+. */
#ifdef __cplusplus
#define TROUPE_STR(lit) (troupe_str_t{(lit), sizeof(lit) - 1})
#else
#define TROUPE_STR(lit) ((troupe_str_t){(lit), sizeof(lit) - 1})
#endif

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TROUPE_PLUGIN_H */
