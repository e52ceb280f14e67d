/* bench_raw_curl: the "physical limit" of the bench suite, W1/W2/W3 with plain libcurl. */
/*
 * Usage: bench_raw_curl <W1|W2|W3> <base_url>     (base_url e.g. http://127.0.0.1:PORT/lat100/v1)
 *
 *   W1  200 workflows one after another, each 10 sequential calls, on one reused easy handle.
 *   W2  1,000 workflows at once, each 10 parallel calls then 1 join call.
 *   W3  10,000 single-call workflows at once.
 *   ONE one call: the process as a whole, for the cold-start comparison with `troupe run`.
 *
 * W2 and W3 run on the multi-socket interface (curl_multi_socket_action) with our own epoll
 * loop. libcurl 7.88 scans every connection of a multi handle on each remove (and its connection
 * cache linearly on each new transfer), which costs seconds of CPU at 10,000 connections, so the
 * transfers are sharded over several multi handles that share the one epoll loop; a workflow
 * stays on one shard so its join call can reuse one of its connections.
 *
 * The last line of stdout is one JSON object with the figures; errors go to stderr.
 * For measuring: RAW_CURL_SHARDS (number of multi handles), RAW_CURL_TRACE=1 (phase times and
 * connections opened, on stderr).
 */
#define _GNU_SOURCE
#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

enum {
  kW1Steps = 10,         /* sequential calls per W1 workflow */
  kW2Fanout = 10,        /* parallel calls per W2 workflow, before its join call */
  kDefaultShards = 16,   /* W3 client CPU: ~2.9 s with 1 shard, ~1.45 s with 4 to 32 */
  kMaxReportedErrors = 5 /* failures described on stderr; the rest are only counted */
};

static const char kRequestBody[] =
    "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":"
    "\"What is the capital of France? Answer in one sentence.\"}],"
    "\"temperature\":0,\"max_tokens\":64}";

typedef struct Workflow {
  double start_ms;
  double end_ms;
  int shard;
  int pending; /* W2: parallel calls not finished yet */
  int joined;  /* W2: the join call has been started */
} Workflow;

/* One HTTP call: its easy handle and what the write callback saw of the body. */
typedef struct Call {
  CURL* easy;
  Workflow* wf;
  size_t body_len;
  char last;       /* last non-blank byte of the body: '}' when the JSON object is complete */
  double added_ms; /* trace: when the transfer was handed to libcurl */
} Call;

typedef struct Shard {
  CURLM* multi;
  double deadline_ms; /* when libcurl wants its timeout action; < 0: none */
  int dirty;          /* touched since its messages were last read */
} Shard;

/* Run-wide state (one run per process). */
static const char* g_url;
static struct curl_slist* g_headers;
static long g_calls;
static int g_w1_steps = kW1Steps; /* ONE: 1 */
static long g_failures;
static long g_connects; /* connections opened, summed over the calls */

static int g_epfd = -1;
static Shard* g_shards;
static int g_nshards;
static unsigned char* g_registered; /* fd -> already in the epoll set */
static size_t g_registered_cap;
static Workflow* g_wfs;
static long g_nwf;
static int g_w2;
static Call* g_call_pool;
static long g_done;

static int g_trace;
static double g_t0, g_first_done_ms, g_last_sent_ms; /* trace */

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void die(const char* what) {
  fprintf(stderr, "bench_raw_curl: %s\n", what);
  exit(2);
}

static size_t on_body(char* data, size_t size, size_t nmemb, void* userp) {
  Call* call = (Call*)userp;
  size_t n = size * nmemb;
  size_t i;
  for (i = n; i > 0; --i) {
    char ch = data[i - 1];
    if (ch != ' ' && ch != '\n' && ch != '\r' && ch != '\t') {
      call->last = ch;
      break;
    }
  }
  call->body_len += n;
  return n;
}

/* Counts the call and, when it did not answer 200 with a complete body, one failure. */
static void check_call(Call* call, CURLcode rc) {
  long status = 0;
  long connects = 0;
  ++g_calls;
  if (curl_easy_getinfo(call->easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK) {
    g_connects += connects;
  }
  if (g_trace) {
    curl_off_t pre = 0;
    double sent;
    curl_easy_getinfo(call->easy, CURLINFO_PRETRANSFER_TIME_T, &pre);
    if (g_first_done_ms == 0) g_first_done_ms = now_ms() - g_t0;
    sent = call->added_ms - g_t0 + (double)pre / 1e3;
    if (sent > g_last_sent_ms) g_last_sent_ms = sent;
  }
  if (rc == CURLE_OK) curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
  if (rc == CURLE_OK && status == 200 && call->body_len > 0 && call->last == '}') return;
  if (g_failures < kMaxReportedErrors) {
    fprintf(stderr, "bench_raw_curl: call failed: %s, status %ld, %zu body bytes\n",
            curl_easy_strerror(rc), status, call->body_len);
  }
  ++g_failures;
}

static void reset_call(Call* call) {
  call->body_len = 0;
  call->last = 0;
}

static void init_call(Call* call, Workflow* wf) {
  CURL* e = curl_easy_init();
  if (!e) die("curl_easy_init failed");
  call->easy = e;
  call->wf = wf;
  reset_call(call);
  curl_easy_setopt(e, CURLOPT_URL, g_url);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, kRequestBody); /* static: not copied */
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(sizeof kRequestBody - 1));
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, g_headers);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
  curl_easy_setopt(e, CURLOPT_PRIVATE, call);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROXY, ""); /* ignore http_proxy from the environment */
  curl_easy_setopt(e, CURLOPT_TIMEOUT, 120L);
}

/* Exits when nothing accepts connections at the URL (a setup failure, not a failed call). */
static void check_reachable(void) {
  CURL* e = curl_easy_init();
  CURLcode rc;
  if (!e) die("curl_easy_init failed");
  curl_easy_setopt(e, CURLOPT_URL, g_url);
  curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_PROXY, "");
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 5L);
  rc = curl_easy_perform(e);
  curl_easy_cleanup(e);
  if (rc != CURLE_OK) {
    fprintf(stderr, "bench_raw_curl: server unreachable at %s: %s\n", g_url,
            curl_easy_strerror(rc));
    exit(2);
  }
}

static void raise_nofile_limit(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* ---- W1: one easy handle, one keep-alive connection ---- */

static void run_w1(void) {
  Call call;
  long w;
  int i;
  init_call(&call, &g_wfs[0]);
  for (w = 0; w < g_nwf; ++w) {
    call.wf = &g_wfs[w];
    g_wfs[w].start_ms = now_ms();
    for (i = 0; i < g_w1_steps; ++i) {
      reset_call(&call);
      if (g_trace) call.added_ms = now_ms();
      check_call(&call, curl_easy_perform(call.easy));
    }
    g_wfs[w].end_ms = now_ms();
  }
  curl_easy_cleanup(call.easy);
}

/* ---- W2/W3: multi-socket interface on one epoll loop ---- */

static int on_socket(CURL* easy, curl_socket_t s, int what, void* userp, void* socketp) {
  Shard* shard = (Shard*)userp;
  struct epoll_event ev;
  (void)easy;
  (void)socketp;
  if ((size_t)s >= g_registered_cap) {
    size_t cap = g_registered_cap * 2;
    while (cap <= (size_t)s)
      cap *= 2;
    g_registered = (unsigned char*)realloc(g_registered, cap);
    if (!g_registered) die("out of memory");
    memset(g_registered + g_registered_cap, 0, cap - g_registered_cap);
    g_registered_cap = cap;
  }
  if (what == CURL_POLL_REMOVE) {
    /* Also for a connection parked in the cache, which stays open: it must leave the set,
     * or a level-triggered close by the server would wake the loop forever. */
    if (g_registered[s]) epoll_ctl(g_epfd, EPOLL_CTL_DEL, s, NULL);
    g_registered[s] = 0;
    return 0;
  }
  memset(&ev, 0, sizeof ev);
  ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
  ev.data.u64 = ((uint64_t)(uint32_t)(shard - g_shards) << 32) | (uint32_t)s;
  if (epoll_ctl(g_epfd, g_registered[s] ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev) != 0) {
    perror("bench_raw_curl: epoll_ctl");
    return -1;
  }
  g_registered[s] = 1;
  return 0;
}

static int on_timer(CURLM* multi, long timeout_ms, void* userp) {
  Shard* shard = (Shard*)userp;
  (void)multi;
  shard->deadline_ms = timeout_ms < 0 ? -1.0 : now_ms() + (double)timeout_ms;
  return 0;
}

static void add_call(Call* call) {
  Shard* shard = &g_shards[call->wf->shard];
  if (g_trace) call->added_ms = now_ms();
  if (curl_multi_add_handle(shard->multi, call->easy) != CURLM_OK) die("curl_multi_add_handle");
  shard->dirty = 1;
}

static void start_workflow(long w) {
  int per_wf = g_w2 ? kW2Fanout : 1;
  Workflow* wf = &g_wfs[w];
  int i;
  wf->start_ms = now_ms();
  wf->shard = (int)(w % g_nshards);
  wf->pending = per_wf;
  for (i = 0; i < per_wf; ++i) {
    Call* call = &g_call_pool[w * per_wf + i];
    init_call(call, wf);
    add_call(call);
  }
}

/* A finished transfer: W3 ends its workflow; W2 starts the join once all 10 are in, reusing
 * the easy handle of the last one to finish (its connection went back to the shard's cache). */
static void on_done(Shard* shard, CURL* easy, CURLcode rc) {
  char* priv = NULL;
  Call* call;
  Workflow* wf;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
  call = (Call*)priv;
  wf = call->wf;
  check_call(call, rc);
  curl_multi_remove_handle(shard->multi, easy);
  if (g_w2 && !wf->joined) {
    if (--wf->pending > 0) {
      curl_easy_cleanup(easy);
      call->easy = NULL;
      return;
    }
    wf->joined = 1;
    reset_call(call);
    add_call(call);
    return;
  }
  curl_easy_cleanup(easy);
  call->easy = NULL;
  wf->end_ms = now_ms();
  ++g_done;
}

static void drain_messages(Shard* shard) {
  CURLMsg* msg;
  int left;
  shard->dirty = 0;
  while ((msg = curl_multi_info_read(shard->multi, &left)) != NULL) {
    if (msg->msg == CURLMSG_DONE) on_done(shard, msg->easy_handle, msg->data.result);
  }
}

static void setup_shards(void) {
  int i;
  g_shards = (Shard*)calloc((size_t)g_nshards, sizeof *g_shards);
  if (!g_shards) die("out of memory");
  g_epfd = epoll_create1(EPOLL_CLOEXEC);
  if (g_epfd < 0) die("epoll_create1 failed");
  g_registered_cap = 65536;
  g_registered = (unsigned char*)calloc(g_registered_cap, 1);
  if (!g_registered) die("out of memory");
  for (i = 0; i < g_nshards; ++i) {
    Shard* s = &g_shards[i];
    s->deadline_ms = -1.0;
    s->multi = curl_multi_init();
    if (!s->multi) die("curl_multi_init failed");
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
  }
}

/* Closes the connections still in the shards' caches. */
static void teardown_shards(void) {
  int i;
  for (i = 0; i < g_nshards; ++i)
    curl_multi_cleanup(g_shards[i].multi);
  free(g_shards);
  free(g_registered);
  close(g_epfd);
}

static void run_multi(void) {
  struct epoll_event events[1024];
  int per_wf = g_w2 ? kW2Fanout : 1;
  long w;
  g_call_pool = (Call*)calloc((size_t)(g_nwf * per_wf), sizeof *g_call_pool);
  if (!g_call_pool) die("out of memory");
  /* All at once: every call is handed to libcurl before the loop first runs. */
  for (w = 0; w < g_nwf; ++w)
    start_workflow(w);
  if (g_trace) fprintf(stderr, "trace: all started at %.1f ms\n", now_ms() - g_t0);

  while (g_done < g_nwf) {
    double now, next = -1.0;
    int timeout_ms = -1;
    int i, n, running;

    now = now_ms();
    for (i = 0; i < g_nshards; ++i) {
      double d = g_shards[i].deadline_ms;
      if (d >= 0 && (next < 0 || d < next)) next = d;
    }
    if (next >= 0) timeout_ms = next <= now ? 0 : (int)ceil(next - now);
    n = epoll_wait(g_epfd, events, (int)(sizeof events / sizeof events[0]), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait failed");
    }
    for (i = 0; i < n; ++i) {
      Shard* shard = &g_shards[events[i].data.u64 >> 32];
      curl_socket_t fd = (curl_socket_t)(uint32_t)events[i].data.u64;
      int flags = 0;
      if (events[i].events & (EPOLLIN | EPOLLHUP)) flags |= CURL_CSELECT_IN;
      if (events[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
      if (events[i].events & EPOLLERR) flags |= CURL_CSELECT_ERR;
      curl_multi_socket_action(shard->multi, fd, flags, &running);
      shard->dirty = 1;
    }

    now = now_ms();
    for (i = 0; i < g_nshards; ++i) {
      Shard* shard = &g_shards[i];
      if (shard->deadline_ms >= 0 && shard->deadline_ms <= now) {
        shard->deadline_ms = -1.0;
        curl_multi_socket_action(shard->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        shard->dirty = 1;
      }
    }
    for (i = 0; i < g_nshards; ++i) {
      if (g_shards[i].dirty) drain_messages(&g_shards[i]);
    }
  }
  free(g_call_pool);
}

/* ---- figures ---- */

static int cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted values. */
static double percentile(const double* sorted, long n, double p) {
  long rank = (long)ceil(p * (double)n);
  if (rank < 1) rank = 1;
  if (rank > n) rank = n;
  return sorted[rank - 1];
}

static long env_long(const char* name, long fallback) {
  const char* v = getenv(name);
  return v && *v ? atol(v) : fallback;
}

int main(int argc, char** argv) {
  const char* workload;
  char url[2048];
  int w1 = 0;
  double* lat;
  double t1, wall_ms, cpu_ms;
  long w;
  struct rusage ru;

  if (argc != 3) {
    fprintf(stderr, "usage: %s <W1|W2|W3|ONE> <base_url>\n", argv[0]);
    return 2;
  }
  workload = argv[1];
  if (strcmp(workload, "W1") == 0) {
    g_nwf = 200;
    w1 = 1;
  } else if (strcmp(workload, "W2") == 0) {
    g_nwf = 1000;
    g_w2 = 1;
  } else if (strcmp(workload, "W3") == 0) {
    g_nwf = 10000;
  } else if (strcmp(workload, "ONE") == 0) {
    g_nwf = 1;
    g_w1_steps = 1;
    w1 = 1;
  } else {
    fprintf(stderr, "bench_raw_curl: unknown workload %s (W1, W2, W3 or ONE)\n", workload);
    return 2;
  }
  if (snprintf(url, sizeof url, "%s/chat/completions", argv[2]) >= (int)sizeof url) {
    die("base_url too long");
  }
  g_url = url;
  g_nshards = (int)env_long("RAW_CURL_SHARDS", kDefaultShards);
  if (g_nshards < 1) g_nshards = 1;
  g_trace = env_long("RAW_CURL_TRACE", 0) == 1;

  raise_nofile_limit();
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) die("curl_global_init failed");
  g_headers = curl_slist_append(NULL, "Content-Type: application/json");
  g_headers = curl_slist_append(g_headers, "Authorization: Bearer sk-bench-0000000000000000");
  g_headers = curl_slist_append(g_headers, "Expect:"); /* never wait for 100-continue */
  if (!g_headers) die("out of memory");
  check_reachable();

  g_wfs = (Workflow*)calloc((size_t)g_nwf, sizeof *g_wfs);
  lat = (double*)calloc((size_t)g_nwf, sizeof *lat);
  if (!g_wfs || !lat) die("out of memory");

  if (w1) {
    g_t0 = now_ms();
    run_w1();
  } else {
    setup_shards();
    g_t0 = now_ms();
    run_multi();
  }
  t1 = now_ms();
  wall_ms = t1 - g_t0;
  for (w = 0; w < g_nwf; ++w)
    lat[w] = g_wfs[w].end_ms - g_wfs[w].start_ms;
  qsort(lat, (size_t)g_nwf, sizeof *lat, cmp_double);
  if (g_trace) {
    fprintf(stderr, "trace: first call done at %.1f ms, last request sent at ~%.1f ms\n",
            g_first_done_ms, g_last_sent_ms);
    fprintf(stderr, "trace: %ld connections opened, %d shards\n", g_connects, w1 ? 0 : g_nshards);
  }

  /* CPU of the whole process, teardown included (closing the cached connections). */
  if (!w1) teardown_shards();
  curl_slist_free_all(g_headers);
  curl_global_cleanup();
  getrusage(RUSAGE_SELF, &ru);
  cpu_ms = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;

  printf(
      "{\"impl\":\"curl\",\"workload\":\"%s\",\"workflows\":%ld,\"calls\":%ld,\"failures\":%ld,"
      "\"wall_ms\":%.1f,\"cpu_ms\":%.1f,\"peak_rss_kb\":%ld,\"p50_ms\":%.1f,\"p99_ms\":%.1f,"
      "\"per_step_us\":%.1f}\n",
      workload, g_nwf, g_calls, g_failures, wall_ms, cpu_ms, ru.ru_maxrss,
      percentile(lat, g_nwf, 0.5), percentile(lat, g_nwf, 0.99),
      g_calls > 0 ? wall_ms * 1e3 / (double)g_calls : 0.0);
  fflush(stdout);
  free(g_wfs);
  free(lat);
  return 0;
}
