/*
** echo.c: "echo_c", a complete troupe provider plugin in plain C99 — the ABI tutorial.
**
** It answers every chat call with the last user message, prefixed by "echo: " (or by the
** instance's `prefix` setting). Read it top to bottom; it shows everything a plugin does:
**
**   1. export troupe_plugin_describe(), returning a static descriptor (the only symbol);
**   2. create() an instance, keeping the host's api table and reading a setting;
**   3. invoke(): read the request JSON, build the response JSON, api->complete() it;
**   4. destroy() the instance.
**
** Build it alone with:
**   gcc -std=c99 -shared -fPIC -fvisibility=hidden -I sdk/include \
**       sdk/examples/echo_c/echo.c -o echo_c.so
** No C++ runtime is needed: this file proves the ABI really is C.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "troupe/plugin.h"

/* ------------------------------------------------------------------------------------ */
/* 1. The instance: everything one configured "echo_c" needs between calls.              */
/* ------------------------------------------------------------------------------------ */

typedef struct echo_instance {
  const troupe_host_api_t* api; /* host services; valid until destroy() returns */
  troupe_host_t* host;          /* passed back to every api function */
  char* prefix;                 /* the reply prefix, already escaped for a JSON string */
  size_t prefix_len;
} echo_instance;

/* ------------------------------------------------------------------------------------ */
/* A tiny JSON reader. The request follows sdk/schemas/chat_request.schema.json:          */
/*   {"model":"...","messages":[{"role":"user","content":"..."}, ...], ...}              */
/* We only need to find spans of it, so we skip over values without building anything.   */
/* A real plugin would use a JSON library; this one stays dependency-free on purpose.     */
/* ------------------------------------------------------------------------------------ */

typedef struct span {
  const char* ptr;
  size_t len;
} span;

typedef struct reader {
  const char* p;
  const char* end;
} reader;

static void skip_ws(reader* r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r')) {
    r->p++;
  }
}

/* Reads a JSON string; *out gets its contents still escaped (without the quotes). Copying
** those bytes between two quotes elsewhere yields a valid JSON string again. */
static int read_string(reader* r, span* out) {
  skip_ws(r);
  if (r->p >= r->end || *r->p != '"') return 0;
  r->p++;
  out->ptr = r->p;
  while (r->p < r->end && *r->p != '"') {
    if (*r->p == '\\' && r->end - r->p > 1) r->p++; /* skip the escaped character, e.g. \" */
    r->p++;
  }
  if (r->p >= r->end) return 0;
  out->len = (size_t)(r->p - out->ptr);
  r->p++; /* closing quote */
  return 1;
}

/* Skips any JSON value: string, number, literal, object or array (nested). */
static int skip_value(reader* r) {
  skip_ws(r);
  if (r->p >= r->end) return 0;
  if (*r->p == '"') {
    span ignored;
    return read_string(r, &ignored);
  }
  if (*r->p == '{' || *r->p == '[') {
    int depth = 0;
    do {
      if (*r->p == '"') {
        span ignored;
        if (!read_string(r, &ignored)) return 0;
        continue;
      }
      if (*r->p == '{' || *r->p == '[') depth++;
      if (*r->p == '}' || *r->p == ']') depth--;
      r->p++;
    } while (depth > 0 && r->p < r->end);
    return depth == 0;
  }
  while (r->p < r->end && strchr(",}] \t\r\n", *r->p) == NULL)
    r->p++; /* number, literal */
  return 1;
}

static int span_is(span s, const char* literal) {
  return s.len == strlen(literal) && memcmp(s.ptr, literal, s.len) == 0;
}

/* Expects `c` next (after whitespace) and consumes it. */
static int expect(reader* r, char c) {
  skip_ws(r);
  if (r->p >= r->end || *r->p != c) return 0;
  r->p++;
  return 1;
}

/* Is the next character (after whitespace) `c`? Consumes it when it is. */
static int accept(reader* r, char c) {
  skip_ws(r);
  if (r->p < r->end && *r->p == c) {
    r->p++;
    return 1;
  }
  return 0;
}

typedef struct chat_request {
  span model;         /* "model", escaped */
  span last_user;     /* "content" of the last message whose role is "user", escaped */
  int found_user;     /* 1 when last_user is set */
  size_t input_chars; /* all message contents together, for the usage report */
} chat_request;

/* One message object: {"role": "...", "content": "...", ...} in any key order. */
static int read_message(reader* r, chat_request* req) {
  span key, role = {NULL, 0}, content = {NULL, 0};
  int has_content = 0;
  if (!expect(r, '{')) return 0;
  if (accept(r, '}')) return 1;
  do {
    if (!read_string(r, &key) || !expect(r, ':')) return 0;
    skip_ws(r);
    if (span_is(key, "role")) {
      if (!read_string(r, &role)) return 0;
    } else if (span_is(key, "content") && r->p < r->end && *r->p == '"') {
      if (!read_string(r, &content)) return 0;
      has_content = 1;
    } else if (!skip_value(r)) {
      return 0;
    }
  } while (accept(r, ','));
  if (!expect(r, '}')) return 0;
  req->input_chars += content.len;
  if (span_is(role, "user") && has_content) {
    req->last_user = content;
    req->found_user = 1;
  }
  return 1;
}

/* The top-level object: we want "model" and the "messages" array. */
static int read_request(troupe_str_t json, chat_request* req) {
  reader r = {json.ptr, json.ptr + json.len};
  span key;
  memset(req, 0, sizeof *req);
  if (!expect(&r, '{')) return 0;
  if (accept(&r, '}')) return 1;
  do {
    if (!read_string(&r, &key) || !expect(&r, ':')) return 0;
    if (span_is(key, "model")) {
      if (!read_string(&r, &req->model)) return 0;
    } else if (span_is(key, "messages")) {
      if (!expect(&r, '[')) return 0;
      if (!accept(&r, ']')) {
        do {
          if (!read_message(&r, req)) return 0;
        } while (accept(&r, ','));
        if (!expect(&r, ']')) return 0;
      }
    } else if (!skip_value(&r)) {
      return 0;
    }
  } while (accept(&r, ','));
  return expect(&r, '}');
}

/* ------------------------------------------------------------------------------------ */
/* Completing a call. Every invoke() ends in exactly one api->complete(); the completion  */
/* struct and its strings are borrowed, so stack memory and a buffer we free right after  */
/* are fine.                                                                              */
/* ------------------------------------------------------------------------------------ */

static void fail(echo_instance* self, troupe_call_id_t id, troupe_status_t status,
                 const char* message) {
  troupe_completion_t c;
  memset(&c, 0, sizeof c); /* unused fields must be zero */
  c.struct_size = sizeof c;
  c.status = status;
  c.error_message.ptr = message;
  c.error_message.len = strlen(message);
  self->api->complete(self->host, id, &c);
}

/* ------------------------------------------------------------------------------------ */
/* 2-4. The hooks.                                                                        */
/* ------------------------------------------------------------------------------------ */

/* Escapes text for use inside a JSON string. Returns a malloc'ed buffer, or NULL. */
static char* json_escape(const char* text, size_t len, size_t* out_len) {
  char* out = malloc(len * 6 + 1); /* worst case: every byte becomes \u00XX */
  size_t n = 0, i;
  if (out == NULL) return NULL;
  for (i = 0; i < len; i++) {
    unsigned char c = (unsigned char)text[i];
    if (c == '"' || c == '\\') {
      out[n++] = '\\';
      out[n++] = (char)c;
    } else if (c < 0x20) {
      n += (size_t)sprintf(out + n, "\\u%04x", c);
    } else {
      out[n++] = (char)c;
    }
  }
  out[n] = '\0';
  *out_len = n;
  return out;
}

static troupe_status_t echo_create(const troupe_host_api_t* api, troupe_host_t* host,
                                   troupe_str_t config_json, void** out_instance,
                                   troupe_str_t* out_error) {
  echo_instance* self;
  troupe_str_t prefix = TROUPE_STR("echo: ");
  troupe_str_t configured;
  (void)config_json; /* all settings also arrive here as one JSON object; we ask by key */

  self = calloc(1, sizeof *self);
  if (self == NULL) {
    *out_error = TROUPE_STR("echo_c: out of memory");
    return TROUPE_INTERNAL;
  }
  self->api = api;
  self->host = host;
  /* A setting: scalars come back as their text, and the memory stays the host's. */
  if (api->config_get(host, TROUPE_STR("prefix"), &configured) == TROUPE_OK) {
    prefix = configured;
  }
  self->prefix = json_escape(prefix.ptr, prefix.len, &self->prefix_len);
  if (self->prefix == NULL) {
    free(self);
    *out_error = TROUPE_STR("echo_c: out of memory");
    return TROUPE_INTERNAL;
  }
  *out_instance = self;
  return TROUPE_OK;
}

static void echo_destroy(void* instance) {
  echo_instance* self = instance;
  free(self->prefix);
  free(self);
}

static void echo_invoke(void* instance, const troupe_call_t* call) {
  echo_instance* self = instance;
  chat_request req;
  troupe_completion_t done;
  char line[128];
  char* body;
  size_t cap, text_chars;
  unsigned long input_tokens, output_tokens;
  int n;

  if (!(call->operation.len == 4 && memcmp(call->operation.ptr, "chat", 4) == 0)) {
    fail(self, call->id, TROUPE_UNSUPPORTED, "echo_c: only the \"chat\" operation exists");
    return;
  }
  if (!read_request(call->request, &req)) {
    fail(self, call->id, TROUPE_INVALID_ARGUMENT, "echo_c: the request is not valid JSON");
    return;
  }
  if (!req.found_user) {
    fail(self, call->id, TROUPE_INVALID_ARGUMENT, "echo_c: the request has no user message");
    return;
  }

  /* Logging goes through the host, which adds the plugin's name and redacts secrets. */
  n = snprintf(line, sizeof line, "echoing %lu bytes", (unsigned long)req.last_user.len);
  self->api->log(self->host, TROUPE_LOG_DEBUG, (troupe_str_t){line, (size_t)n});

  /* Usage: a rough 4 characters per token, rounded up, like most tokenizers on English. */
  text_chars = self->prefix_len + req.last_user.len;
  input_tokens = (unsigned long)((req.input_chars + 3) / 4);
  output_tokens = (unsigned long)((text_chars + 3) / 4);

  /* The response (sdk/schemas/chat_response.schema.json). The text and the model are
  ** copied still escaped, which keeps the document valid JSON. */
  cap = 512 + text_chars + req.model.len; /* 512: the fixed text and three numbers */
  body = malloc(cap);
  if (body == NULL) {
    fail(self, call->id, TROUPE_INTERNAL, "echo_c: out of memory");
    return;
  }
  n = snprintf(body, cap,
               "{\"text\":\"%.*s%.*s\",\"tool_calls\":[],\"finish_reason\":\"stop\","
               "\"usage\":{\"input_tokens\":%lu,\"output_tokens\":%lu,"
               "\"cached_input_tokens\":0,\"reasoning_tokens\":0,\"total_tokens\":%lu},"
               "\"model\":\"%.*s\"}",
               (int)self->prefix_len, self->prefix, (int)req.last_user.len, req.last_user.ptr,
               input_tokens, output_tokens, input_tokens + output_tokens, (int)req.model.len,
               req.model.ptr ? req.model.ptr : "");
  if (n < 0 || (size_t)n >= cap) {
    free(body);
    fail(self, call->id, TROUPE_INTERNAL, "echo_c: response buffer too small");
    return;
  }

  /* Complete synchronously, inside invoke(): allowed, and the simplest thing there is.
  ** Slow plugins return from invoke() at once and complete later, from a timer, an HTTP
  ** callback or another thread. */
  memset(&done, 0, sizeof done);
  done.struct_size = sizeof done;
  done.status = TROUPE_OK;
  done.result.ptr = body;
  done.result.len = (size_t)n;
  self->api->complete(self->host, call->id, &done);
  free(body); /* complete() copied what it keeps */
}

static void echo_cancel(void* instance, troupe_call_id_t call) {
  /* Every call completes inside invoke(), so nothing is ever in flight to cancel. */
  (void)instance;
  (void)call;
}

/* ------------------------------------------------------------------------------------ */
/* 1. The entry point: a static descriptor, no side effects.                             */
/* ------------------------------------------------------------------------------------ */

static const troupe_plugin_descriptor_t descriptor = {
    sizeof(troupe_plugin_descriptor_t),
    TROUPE_ABI_MAJOR,
    TROUPE_ABI_MINOR,
    TROUPE_PLUGIN_PROVIDER,
    "echo_c",
    "1.0.0",
    "Echoes the last user message (an example plugin in plain C)",
    "{\"operations\":[\"chat\"],\"streaming\":false,\"tools\":false}",
    echo_create,
    echo_destroy,
    echo_invoke,
    echo_cancel,
};

TROUPE_EXPORT const troupe_plugin_descriptor_t* troupe_plugin_describe(uint32_t host_abi_major,
                                                                       uint32_t host_abi_minor) {
  (void)host_abi_minor; /* the host refuses us if it is older than TROUPE_ABI_MINOR */
  return host_abi_major == TROUPE_ABI_MAJOR ? &descriptor : NULL;
}
