// bench.mjs: the LangGraph.js side of troupe's benchmark workloads (chain3, fanout5, W1, W2, W3); see README.md.
//
// Usage: node bench.mjs <workload> [base_url] [--checkpointer sqlite] [--db path] [--durability sync|async|exit]
// Run the copy that install.sh puts in the scratch dir: ES modules ignore NODE_PATH, so the
// packages resolve from node_modules next to this file. Prints one JSON object on stdout.
import { rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';

// No LangSmith tracing: it would add callbacks (and network calls) to every node.
for (const k of ['LANGSMITH_TRACING', 'LANGCHAIN_TRACING_V2', 'LANGCHAIN_TRACING', 'LANGSMITH_TRACING_V2']) {
  delete process.env[k];
}

function usage(msg) {
  if (msg) console.error(`bench.mjs: ${msg}`);
  console.error('usage: node bench.mjs <chain3|fanout5|W1|W2|W3> [base_url] [--checkpointer sqlite] [--db path]' +
    ' [--durability sync|async|exit]');
  process.exit(2);
}

// ---- arguments
const positional = [];
const opts = { checkpointer: 'none', db: null, durability: 'sync' };
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--checkpointer' || a === '--db' || a === '--durability') {
    if (i + 1 >= process.argv.length) usage(`${a} needs a value`);
    opts[a.slice(2)] = process.argv[++i];
  } else if (a.startsWith('--')) {
    usage(`unknown option ${a}`);
  } else {
    positional.push(a);
  }
}
const [workload, baseUrl] = positional;
if (!['none', 'sqlite'].includes(opts.checkpointer)) usage(`unknown checkpointer ${opts.checkpointer}`);
if (!['sync', 'async', 'exit'].includes(opts.durability)) usage(`unknown durability ${opts.durability}`);

const { StateGraph, Annotation, START, END } = await import('@langchain/langgraph');

// ---- the chat completion call each I/O node makes
let failures = 0;
let firstError = null;
let callUrl = null;
const headers = { 'Content-Type': 'application/json', Authorization: 'Bearer sk-bench-dummy' };

// Node's global fetch is undici's default Agent: no limit on connections per origin
// (connections: null), keep-alive on, so every concurrent request gets its own pooled socket.
// The request is the one bench/raw_curl.c sends, built per call as a node would build it.
async function chat() {
  const body = JSON.stringify({
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'What is the capital of France? Answer in one sentence.' }],
    temperature: 0,
    max_tokens: 64,
  });
  try {
    const res = await fetch(callUrl, { method: 'POST', headers, body });
    if (res.status !== 200) {
      await res.arrayBuffer();
      throw new Error(`HTTP ${res.status}`);
    }
    const answer = await res.json();
    const content = answer?.choices?.[0]?.message?.content;
    if (typeof content !== 'string') throw new Error('no choices[0].message.content in the answer');
    return content;
  } catch (e) {
    failures++;
    firstError ??= e;
    return '';
  }
}

// ---- graphs: the state is the list of replies, appended to by every node (a reducer, so that
// parallel branches can write in the same superstep).
const State = Annotation.Root({
  replies: Annotation({ reducer: (a, b) => a.concat(b), default: () => [] }),
});
const instant = () => ({ replies: ['ok'] });
const calling = () => async () => ({ replies: [await chat()] });

// START -> s0 -> s1 -> ... -> END
function chainGraph(n, makeNode) {
  const g = new StateGraph(State);
  for (let i = 0; i < n; i++) g.addNode(`s${i}`, makeNode(`s${i}`));
  g.addEdge(START, 's0');
  for (let i = 1; i < n; i++) g.addEdge(`s${i - 1}`, `s${i}`);
  g.addEdge(`s${n - 1}`, END);
  return g;
}

// START -> b0..b{n-1} (one superstep, in parallel) -> join (waits for all) -> END
function fanoutGraph(n, makeNode) {
  const g = new StateGraph(State);
  const branches = [];
  for (let i = 0; i < n; i++) {
    branches.push(`b${i}`);
    g.addNode(`b${i}`, makeNode(`b${i}`));
    g.addEdge(START, `b${i}`);
  }
  g.addNode('join', makeNode('join'));
  g.addEdge(branches, 'join');
  g.addEdge('join', END);
  return g;
}

// mode: 'engine' = sequential runs in timed batches; 'sequential' / 'concurrent' = HTTP workloads.
const workloads = {
  chain3: { graph: () => chainGraph(3, () => instant), steps: 3, mode: 'engine' },
  fanout5: { graph: () => fanoutGraph(5, () => instant), steps: 6, mode: 'engine' },
  W1: { graph: () => chainGraph(10, calling), steps: 10, mode: 'sequential', workflows: 200 },
  W2: { graph: () => fanoutGraph(10, calling), steps: 11, mode: 'concurrent', workflows: 1000 },
  W3: { graph: () => chainGraph(1, calling), steps: 1, mode: 'concurrent', workflows: 10000 },
};
const spec = workloads[workload];
if (!spec) usage(`unknown workload ${workload}`);
if (spec.mode !== 'engine') {
  if (!baseUrl) usage(`${workload} needs a base_url`);
  callUrl = baseUrl.replace(/\/+$/, '') + '/chat/completions';
}

// ---- checkpointer: a fresh SQLite file per run, next to this script (the scratch dir) by default
let saver = null;
let dbPath = null;
const removeDb = (p) => { for (const s of ['', '-wal', '-shm', '-journal']) rmSync(p + s, { force: true }); };
if (opts.checkpointer === 'sqlite') {
  const { SqliteSaver } = await import('@langchain/langgraph-checkpoint-sqlite');
  dbPath = opts.db ?? join(dirname(fileURLToPath(import.meta.url)), `bench-${process.pid}.db`);
  removeDb(dbPath);
  saver = SqliteSaver.fromConnString(dbPath);
}
const graph = saver ? spec.graph().compile({ checkpointer: saver }) : spec.graph().compile();
const impl = saver ? 'langgraph-sqlite' : 'langgraph';

let threadSeq = 0;
function invoke() {
  if (!saver) return graph.invoke({ replies: [] });
  // Each workflow its own thread; durability 'sync' waits for each step's checkpoint write
  // before the next step, like troupe's `durability: sync`.
  return graph.invoke({ replies: [] }, { configurable: { thread_id: `t${threadSeq++}` }, durability: opts.durability });
}

// One workflow, timed; its latency goes into lat[i].
async function timedRun(lat, i) {
  const s = performance.now();
  try {
    await invoke();
  } catch (e) {
    failures++;
    firstError ??= e;
  }
  lat[i] = performance.now() - s;
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
// Same rank as troupe_http.cpp and raw_curl.c: the value at round(q * (n - 1)).
const percentile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.round(q * (sorted.length - 1)))];

let lat;
let wallMs;
let usPerRun = null;
if (spec.mode === 'engine') {
  // Warm-up (JIT, first-run allocations), then timed batches; report the median batch.
  const warmup = 1000;
  const batches = 9;
  const perBatch = 400;
  const scratch = new Array(warmup);
  for (let i = 0; i < warmup; i++) await timedRun(scratch, i);
  lat = new Array(batches * perBatch);
  const batchUs = [];
  wallMs = 0;
  for (let b = 0; b < batches; b++) {
    const t0 = performance.now();
    for (let i = 0; i < perBatch; i++) await timedRun(lat, b * perBatch + i);
    const ms = performance.now() - t0;
    wallMs += ms;
    batchUs.push((ms * 1000) / perBatch);
  }
  usPerRun = median(batchUs);
  console.error(`${workload}: µs per run by batch: ${batchUs.map((x) => x.toFixed(0)).join(' ')}`);
} else {
  // One single-call workflow outside the figures, as troupe_http.cpp does: loads fetch/undici
  // and opens the first connection, as a long-lived process would have done long before.
  const warm = saver ? chainGraph(1, calling).compile({ checkpointer: saver }) : chainGraph(1, calling).compile();
  await warm.invoke({ replies: [] }, saver ? { configurable: { thread_id: 'warm-up' }, durability: opts.durability } : {});
  if (failures > 0) {
    console.error(`bench.mjs: the warm-up call to ${callUrl} failed: ${firstError}`);
    process.exit(1);
  }
  lat = new Array(spec.workflows);
  const t0 = performance.now();
  if (spec.mode === 'sequential') {
    for (let i = 0; i < spec.workflows; i++) await timedRun(lat, i);
  } else {
    const runs = new Array(spec.workflows);
    for (let i = 0; i < spec.workflows; i++) runs[i] = timedRun(lat, i);
    await Promise.all(runs);
  }
  wallMs = performance.now() - t0;
}

const cpu = process.cpuUsage();
const peakRssKb = process.resourceUsage().maxRSS; // kilobytes on Linux
const sorted = [...lat].sort((a, b) => a - b);
const calls = lat.length * spec.steps;
if (saver) {
  saver.db.close();
  if (!opts.db) removeDb(dbPath);
}
if (firstError) console.error(`bench.mjs: first failure: ${firstError.stack ?? firstError}`);

const round = (x, d) => Number(x.toFixed(d));
const result = {
  impl,
  workload,
  workflows: lat.length,
  calls,
  failures,
  wall_ms: round(wallMs, 1),
  cpu_ms: round((cpu.user + cpu.system) / 1000, 1),
  peak_rss_kb: peakRssKb,
  p50_ms: round(percentile(sorted, 0.5), 3),
  p99_ms: round(percentile(sorted, 0.99), 3),
  per_step_us: round((wallMs * 1000) / calls, 2),
};
if (usPerRun !== null) result.us_per_run = round(usPerRun, 1);
console.log(JSON.stringify(result));
