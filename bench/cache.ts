// bench/cache: what the result cache buys. Two parts, each on a fresh gateway (real SQLite in a temp dir, real
// HTTP on 127.0.0.1, cache on, team scope) in front of a fake OpenAI Videos upstream (test/support/fake-openai)
// whose jobs take --job-ms:
//   1. latency, miss against hit, p50/p95/p99: (a) the POST answer time of --n distinct prompts sent one at a
//      time, then of the same requests again once cached; (b) --clients closed-loop clients, each sending a
//      request, polling GET /v1/tasks/{id} every --poll-ms until completed, downloading the video: time to a
//      downloadable video (POST -> completed; a hit is completed in its POST answer), on --n other prompts,
//      then on the same again.
//   2. workload: --requests requests arriving at --rate/s (Poisson, seeded) over --pool briefs of Zipf-like
//      popularity; --variant of them written differently (case, extra white space, NBSP, NFD), --bypass of them
//      asking for a fresh generation (`cache: false` or `Cache-Control: no-cache`). Upstream submissions against
//      requests and against the ideal, the split hit/coalesced/miss/bypassed (answers vs /metrics), credits
//      charged vs a gateway without cache, and whether every task completed with a downloadable video.
// Exit code 1 when any task did not complete or an answer was not what the cache promises.
//
//   node --import tsx bench/cache.ts [--job-ms 1500] [--n 200] [--requests 600] [--rate 20] [--pool 150] [--json FILE]
import fs from 'node:fs';
import os from 'node:os';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { startFakeOpenAI } from '../test/support/fake-openai';
import { mp4Renderer, type VideoShape } from '../test/support/mp4';
import { KEY_A, startTestGateway } from '../test/support/gateway';
import { seededRandom } from '../test/support/seeded-random';

const usage = `usage: node --import tsx bench/cache.ts [options]
  --job-ms N          duration of a fake upstream job (default 1500)
  --n N               distinct prompts of the latency part (default 200); --warmup N more before it (default 20)
  --clients N         concurrent clients of the latency part (default 8)
  --poll-ms N         GET /v1/tasks/{id} interval of the latency part (default 20)
  --requests N        requests of the workload part (default 600)
  --rate N            their arrival rate per second, Poisson (default 20)
  --pool N            distinct briefs they are drawn from (default 150), popularity 1/rank^--zipf (default 1)
  --variant F         share of requests whose prompt is written differently (default 0.5)
  --bypass F          share asking for a fresh generation (default 0.05)
  --workload-poll-ms  GET interval of the workload part (default 200)
  --seed N            (default 1)      --json FILE   also write the figures as JSON`;

const DEFAULTS = {
  'job-ms': 1500, n: 200, warmup: 20, clients: 8, 'poll-ms': 20, requests: 600, rate: 20, pool: 150, zipf: 1, variant: 0.5, bypass: 0.05,
  'workload-poll-ms': 200, seed: 1,
};
const { values: v } = parseArgs({
  options: {
    ...Object.fromEntries(Object.keys(DEFAULTS).map((k) => [k, { type: 'string' as const }])),
    json: { type: 'string' },
    help: { type: 'boolean' },
  },
});
if (v.help) { console.log(usage); process.exit(0); }
const num = (k: keyof typeof DEFAULTS) => {
  const raw = (v as Record<string, string | undefined>)[k];
  const x = Number(raw ?? DEFAULTS[k]);
  const min0 = ['warmup', 'zipf', 'variant', 'bypass', 'seed'].includes(k); // the others must be > 0
  if (!Number.isFinite(x) || x < 0 || (!min0 && x === 0)) throw new Error(`--${k}: ${raw}\n${usage}`);
  return x;
};
const O = {
  jobMs: num('job-ms'), n: num('n'), warmup: num('warmup'), clients: num('clients'), pollMs: num('poll-ms'), requests: num('requests'),
  rate: num('rate'), pool: num('pool'), zipf: num('zipf'), variant: num('variant'), bypass: num('bypass'),
  workloadPollMs: num('workload-poll-ms'), seed: num('seed'),
};

type Task = { id: string; status: string; cache: string; provider: string | null; usage: { credits_reserved: number }; task_info: { size: string; video_duration: number }; results?: string[]; error?: { code: string } };
type Body = { model: string; prompt: string; aspect_ratio: string; duration: number; cache?: boolean };
const TERMINAL = ['completed', 'failed', 'cancelled'];
const AUTH = { authorization: `Bearer ${KEY_A}` };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const problems: string[] = [];
const odd = (msg: string) => { problems.push(msg); console.log(`  !! ${msg}`); };

type Rig = Awaited<ReturnType<typeof startRig>>;
/** The fake's videos, by shape. */
type Mp4 = (shape: VideoShape) => Promise<Buffer>;

/** A fresh gateway (cache on, no rate limit) in front of a fresh fake upstream. */
async function startRig(mp4: Mp4) {
  const fake = await startFakeOpenAI({ mp4, jobDurationMs: O.jobMs });
  const h = await startTestGateway(
    {
      cache: { enabled: true },
      teams: { default_quotas: { requests_per_minute: null } }, // the bench polls far above 600/min
      providers: [{ id: 'openai', kind: 'openai', base_url: fake.url, api_key_env: 'FAKE_OPENAI_KEY', models: [{ model: 'sora-2', usd_per_second: { standard: 0.1 } }] }],
    },
    { validateResponses: false, env: { FAKE_OPENAI_KEY: fake.apiKey } },
  );
  // The first request waits for the gateway's lazy start-up work (express-openapi-validator compiles its schemas,
  // ~250 ms of blocked event loop): let it happen before anything is measured.
  await (await fetch(`${h.url}/v1/tasks?limit=1`, { headers: AUTH })).arrayBuffer();
  return { fake, url: h.url, close: async () => { await fake.close(); await h.close(); } };
}

async function submit(url: string, body: Body, headers: Record<string, string> = {}): Promise<{ code: number; task: Task }> {
  const res = await fetch(`${url}/v1/videos/generations`, { method: 'POST', headers: { ...AUTH, 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  const text = await res.text();
  if (res.status !== 200 && res.status !== 202) throw new Error(`POST answered ${res.status}: ${text.slice(0, 300)}`);
  return { code: res.status, task: JSON.parse(text) as Task };
}

async function waitDone(url: string, task: Task, everyMs: number, deadline: number): Promise<Task> {
  while (!TERMINAL.includes(task.status)) {
    if (performance.now() > deadline) return task;
    await sleep(everyMs);
    const res = await fetch(`${url}/v1/tasks/${task.id}`, { headers: AUTH });
    if (res.status !== 200) throw new Error(`GET /v1/tasks/${task.id} answered ${res.status}: ${await res.text()}`);
    task = (await res.json()) as Task;
  }
  return task;
}

async function download(url: string, task: Task, mp4: Mp4): Promise<boolean> {
  const res = await fetch(`${url}/v1/tasks/${task.id}/content`, { headers: AUTH });
  const expected = await mp4({ size: task.task_info.size, seconds: task.task_info.video_duration });
  return res.status === 200 && Buffer.from(await res.arrayBuffer()).equals(expected);
}

/** Sum of a Prometheus counter's samples whose labels include `match`, grouped by label `by` when given. */
function metric(text: string, name: string, match: Record<string, string> = {}, by?: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const m = /^(\w+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const labels = Object.fromEntries([...m[2]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (Object.entries(match).some(([k, x]) => labels[k] !== x)) continue;
    const key = by ? (labels[by] ?? '') : 'total';
    out[key] = (out[key] ?? 0) + Number(m[3]);
  }
  return out;
}

const pct = (xs: number[], p: number) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]! : NaN; };
const stats = (xs: number[]) => ({ n: xs.length, p50: pct(xs, 50), p95: pct(xs, 95), p99: pct(xs, 99), max: pct(xs, 100) });
const fmtStats = (s: ReturnType<typeof stats>) => `p50 ${s.p50.toFixed(1).padStart(7)}  p95 ${s.p95.toFixed(1).padStart(7)}  p99 ${s.p99.toFixed(1).padStart(7)}  max ${s.max.toFixed(1).padStart(7)} ms  (n=${s.n})`;
const share = (a: number, b: number) => `${b ? ((100 * a) / b).toFixed(1) : '-'} %`;
const host = () => `${os.cpus().length} CPUs (${os.cpus()[0]?.model.trim()}), Node ${process.version}, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')} (1/5/15 min)`;
const loop = monitorEventLoopDelay({ resolution: 10 });
const loopFigures = () => { const r = { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 }; loop.reset(); return r; };

// ---------------------------------------------------------------------------------------------------------
// Part 1: latency of a hit against a miss.

async function latencyPart(mp4: Mp4) {
  const rig = await startRig(mp4);
  try {
    return await latencyRuns(rig, mp4);
  } finally {
    await rig.close();
  }
}

async function latencyRuns(rig: Rig, mp4: Mp4) {
  const bodies = (tag: string, n: number) =>
    Array.from({ length: n }, (_, i): Body => ({ model: 'sora-2', prompt: `${tag} ${i}: a paper boat drifting down a rainy street`, aspect_ratio: '16:9', duration: 4 }));
  /** `clients` closed-loop clients; with `follow`, each polls its task until completed, then downloads it. */
  const phase = async (list: Body[], want: 'miss' | 'hit', clients: number, follow: boolean) => {
    const post: number[] = [], video: number[] = [], tasks: Task[] = [];
    let next = 0;
    loopFigures();
    await Promise.all(Array.from({ length: clients }, async () => {
      while (next < list.length) {
        const b = list[next++]!;
        const t0 = performance.now();
        const { code, task } = await submit(rig.url, b);
        const t1 = performance.now();
        post.push(t1 - t0);
        tasks.push(task);
        if (task.cache !== want || code !== (want === 'hit' ? 200 : 202)) odd(`latency ${want}: "${b.prompt}" answered ${code} cache=${task.cache} status=${task.status}`);
        if (!follow) continue;
        const done = await waitDone(rig.url, task, O.pollMs, t0 + 60_000 + O.jobMs * 4);
        video.push(done === task ? t1 - t0 : performance.now() - t0);
        if (done.status !== 'completed') odd(`latency ${want}: task ${task.id} ended ${done.status} ${done.error?.code ?? ''}`);
        else if (!(await download(rig.url, done, mp4))) odd(`latency ${want}: task ${task.id}: video not downloadable or not the upstream's bytes`);
      }
    }));
    return { post: stats(post), video: stats(video), loop: loopFigures(), tasks };
  };
  const settle = async (tasks: Task[]) => {
    for (const t of tasks) if ((await waitDone(rig.url, t, 50, performance.now() + 60_000 + O.jobMs * 4)).status !== 'completed') odd(`latency: task ${t.id} did not complete`);
  };
  const warm = bodies('warm-up', O.warmup);
  await phase(warm, 'miss', O.clients, true);
  await phase(warm, 'hit', O.clients, true);
  // (a) one request at a time: the request path alone (the misses' jobs run behind it).
  const seq = bodies('sequential probe', O.n);
  const seqMiss = await phase(seq, 'miss', 1, false);
  await settle(seqMiss.tasks);
  const seqHit = await phase(seq, 'hit', 1, false);
  // (b) --clients clients, each waiting for its video: time to video, and the POST under that load.
  const conc = bodies('concurrent probe', O.n);
  const miss = await phase(conc, 'miss', O.clients, true);
  const hit = await phase(conc, 'hit', O.clients, true);
  const creates = rig.fake.requestsTo('create').length;
  if (creates !== O.warmup + 2 * O.n) odd(`latency part: ${creates} upstream submissions for ${O.warmup + 2 * O.n} distinct prompts`);
  const strip = ({ tasks: _t, ...figures }: Awaited<ReturnType<typeof phase>>) => figures;
  return { seqMiss: strip(seqMiss), seqHit: strip(seqHit), miss: strip(miss), hit: strip(hit), creates };
}

// ---------------------------------------------------------------------------------------------------------
// Part 2: upstream submissions saved on a workload with repeats.

const SUBJECTS = ['a red fox', 'an old lighthouse keeper', 'a paper crane', 'a street café waiter', 'two koi', 'a crème brûlée', 'a São Paulo bus', 'a glass whale', 'a snow leopard', 'a tiny robot'];
const ACTIONS = ['crossing', 'dancing through', 'drifting over', 'sleeping in', 'racing across', 'falling into'];
const PLACES = ['a snowy field at dawn', 'a neon-lit alley in the rain', 'the Straße at midnight', 'a sunflower sea', 'a flooded cathedral', 'a desert of mirrors'];
const STYLES = ['35mm film', 'claymation', 'drone shot', 'watercolour', 'slow motion'];

/** The same brief written differently: what the cache key's normalization must see through. */
function rewrite(prompt: string, rnd: () => number): string {
  let p = prompt;
  if (rnd() < 0.5) p = [...p].map((c) => (rnd() < 0.3 ? (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()) : c)).join('');
  if (rnd() < 0.5) p = p.replace(/ /g, () => (rnd() < 0.25 ? ['  ', '\t', ' \n '][Math.floor(rnd() * 3)]! : ' '));
  if (rnd() < 0.5) p = p.replace(/ /g, () => (rnd() < 0.25 ? '\u00a0' : ' '));
  if (rnd() < 0.5) p = p.normalize('NFD'); // é as e + U+0301
  return p === prompt || rnd() < 0.5 ? `${rnd() < 0.5 ? '  ' : '\n'}${p}${rnd() < 0.5 ? ' \u00a0' : '   '}` : p;
}

interface Req { i: number; brief: number; bypass: '' | 'body' | 'header'; varied: boolean; code?: number; cache?: string; postMs?: number; first?: Task; final?: Task; error?: string }

async function workloadPart(mp4: Mp4) {
  const rnd = seededRandom(O.seed);
  const briefs = Array.from({ length: O.pool }, (_, k) => ({
    prompt: `${SUBJECTS[Math.floor(rnd() * SUBJECTS.length)]} ${ACTIONS[Math.floor(rnd() * ACTIONS.length)]} ${PLACES[Math.floor(rnd() * PLACES.length)]}, ${STYLES[Math.floor(rnd() * STYLES.length)]}, take ${k + 1}`,
    aspect_ratio: rnd() < 0.7 ? '16:9' : '9:16',
    duration: rnd() < 0.7 ? 4 : 8,
  }));
  const weights = briefs.map((_, k) => 1 / (k + 1) ** O.zipf);
  const total = weights.reduce((a, b) => a + b, 0);
  const draw = () => { let x = rnd() * total; for (let k = 0; k < weights.length; k++) if ((x -= weights[k]!) < 0) return k; return weights.length - 1; };

  const reqs: Req[] = [];
  let arrivalS = 0, drainS = 0, downloadable = 0, creates = 0, metricsText = '', loopF = loopFigures();
  const rig = await startRig(mp4);
  try {
    loopFigures();
    const t0 = performance.now();
    let at = 0;
    const inflight: Promise<void>[] = [];
    for (let i = 0; i < O.requests; i++) {
      at += (-Math.log(1 - rnd()) / O.rate) * 1000; // Poisson arrivals
      const b = briefs[draw()]!;
      const r: Req = { i, brief: briefs.indexOf(b), bypass: rnd() < O.bypass ? (rnd() < 0.5 ? 'body' : 'header') : '', varied: rnd() < O.variant };
      const body: Body = { model: 'sora-2', prompt: r.varied ? rewrite(b.prompt, rnd) : b.prompt, aspect_ratio: b.aspect_ratio, duration: b.duration, ...(r.bypass === 'body' && { cache: false }) };
      reqs.push(r);
      const wait = t0 + at - performance.now();
      if (wait > 0) await sleep(wait);
      inflight.push((async () => {
        try {
          const sent = performance.now();
          const { code, task } = await submit(rig.url, body, r.bypass === 'header' ? { 'cache-control': 'no-cache' } : {});
          Object.assign(r, { code, cache: task.cache, first: task, postMs: performance.now() - sent });
          r.final = await waitDone(rig.url, task, O.workloadPollMs, performance.now() + 120_000 + O.jobMs * 4);
        } catch (e) { r.error = (e as Error).message; }
      })());
    }
    arrivalS = (performance.now() - t0) / 1000;
    await Promise.all(inflight);
    drainS = (performance.now() - t0) / 1000 - arrivalS;
    loopF = loopFigures();

    // Every completed task's video must be the upstream's bytes, whatever way it was served.
    for (const r of reqs) if (r.final?.status === 'completed' && (await download(rig.url, r.final, mp4))) downloadable++;
    metricsText = await (await fetch(`${rig.url}/metrics`)).text();
    creates = rig.fake.requestsTo('create').length;
  } finally {
    await rig.close();
  }

  const count = (f: (r: Req) => boolean) => reqs.filter(f).length;
  const results = ['hit', 'coalesced', 'miss', 'bypassed', 'disabled'];
  const answered = Object.fromEntries(results.map((c) => [c, count((r) => r.cache === c)]));
  const fromMetrics = metric(metricsText, 'vidgate_cache_requests_total', {}, 'result');
  // The ideal: per brief, one generation unless its first request was itself a bypass, plus every bypass.
  const seen = new Map<number, Req[]>();
  for (const r of reqs) seen.set(r.brief, [...(seen.get(r.brief) ?? []), r]);
  const ideal = [...seen.values()].reduce((n, rs) => n + rs.filter((r) => r.bypass).length + (rs[0]!.bypass ? 0 : 1), 0);
  // What each request would cost without a cache: its brief's price, as quoted to the tasks that generated it.
  const price = new Map<number, number>();
  for (const r of reqs) if (r.cache === 'miss' || r.cache === 'bypassed') price.set(r.brief, r.first!.usage.credits_reserved);
  const noCache = reqs.reduce((n, r) => n + (price.get(r.brief) ?? NaN), 0);
  const charged = reqs.reduce((n, r) => n + (r.final?.usage.credits_reserved ?? 0), 0);
  const settled = metric(metricsText, 'vidgate_credits_total', { kind: 'settled' }).total ?? 0;
  const saved = metric(metricsText, 'vidgate_cache_credits_saved_total').total ?? 0;
  const generating = answered.miss! + answered.bypassed!;
  const finals = { completed: count((r) => r.final?.status === 'completed'), failed: count((r) => r.final?.status === 'failed'), cancelled: count((r) => r.final?.status === 'cancelled'), unfinished: count((r) => !!r.final && !TERMINAL.includes(r.final.status)), errors: count((r) => !!r.error) };

  for (const c of results) if ((fromMetrics[c] ?? 0) !== answered[c]) odd(`cache result "${c}": ${answered[c]} in the answers, ${fromMetrics[c] ?? 0} in vidgate_cache_requests_total`);
  if (creates !== generating) odd(`${creates} upstream submissions for ${generating} tasks answered miss/bypassed`);
  if (finals.completed !== reqs.length) odd(`${reqs.length - finals.completed} tasks did not complete: ${JSON.stringify(finals)}`);
  for (const r of reqs.filter((x) => x.error || (x.final && x.final.status !== 'completed')).slice(0, 10)) odd(`request ${r.i} (brief ${r.brief}, ${r.cache ?? '-'}): ${r.error ?? `${r.final!.status} ${r.final!.error?.code ?? ''}`}`);
  if (downloadable !== finals.completed) odd(`${finals.completed - downloadable} completed tasks without a downloadable video equal to the upstream's`);
  if (count((r) => r.bypass !== '' && r.cache !== 'bypassed') > 0) odd(`${count((r) => r.bypass !== '' && r.cache !== 'bypassed')} requests asking for a fresh generation were not bypassed`);
  if (settled !== charged) odd(`credits settled in /metrics ${settled} vs ${charged} charged in the tasks' usage`);
  if (settled + saved !== noCache) odd(`settled ${settled} + saved ${saved} = ${settled + saved}, but the workload at full price is ${noCache}`);
  return {
    requests: reqs.length, distinct_briefs: seen.size, varied: count((r) => r.varied), bypass_asked: count((r) => r.bypass !== ''),
    creates, ideal, answered, from_metrics: fromMetrics, finals, downloadable, credits: { settled, charged_in_tasks: charged, saved_metric: saved, no_cache: noCache },
    arrival_s: arrivalS, drain_s: drainS, loop: loopF,
    post_ms: Object.fromEntries(results.slice(0, 4).map((c) => [c, stats(reqs.filter((r) => r.cache === c).map((r) => r.postMs!))])),
  };
}

// ---------------------------------------------------------------------------------------------------------

async function main() {
  console.log(`bench/cache — host: ${host()} at the start`);
  console.log(`fake upstream jobs ${O.jobMs} ms; gateway poll_interval_ms 50 (test config), cache on (scope team, hit_credits 0), requests_per_minute lifted\n`);
  // Real MP4s of each requested shape: the gateway verifies every video it downloads.
  const mp4 = mp4Renderer();
  loop.enable();

  console.log(`1. latency: ${O.warmup} warm-up prompts, then twice ${O.n} distinct prompts (misses), each followed by the same again (hits)`);
  const lat = await latencyPart(mp4);
  const loopLine = (x: { loop: ReturnType<typeof loopFigures> }) => `event-loop delay p99 ${x.loop.p99.toFixed(1)} ms, max ${x.loop.max.toFixed(0)} ms`;
  console.log(`  (a) POST answer, one request at a time`);
  console.log(`      miss  ${fmtStats(lat.seqMiss.post)}  ${loopLine(lat.seqMiss)}`);
  console.log(`      hit   ${fmtStats(lat.seqHit.post)}  ${loopLine(lat.seqHit)}`);
  console.log(`  (b) ${O.clients} clients, each POST -> GET every ${O.pollMs} ms until completed -> download, then its next request`);
  console.log(`      POST answer    miss  ${fmtStats(lat.miss.post)}`);
  console.log(`                     hit   ${fmtStats(lat.hit.post)}`);
  console.log(`      time to video  miss  ${fmtStats(lat.miss.video)}  ${loopLine(lat.miss)}`);
  console.log(`                     hit   ${fmtStats(lat.hit.video)}  ${loopLine(lat.hit)}  (completed in the POST answer)`);
  console.log(`  upstream submissions ${lat.creates} (${O.warmup + 2 * O.n} distinct prompts)\n`);

  console.log(`2. workload: ${O.requests} requests at ${O.rate}/s over ${O.pool} briefs (Zipf s=${O.zipf}), ${O.variant * 100} % rewritten, ${O.bypass * 100} % fresh, seed ${O.seed}`);
  const w = await workloadPart(mp4);
  const a = w.answered;
  console.log(`  requests             ${w.requests} (${w.distinct_briefs} distinct briefs drawn; ${w.varied} rewritten; ${w.bypass_asked} asked for a fresh generation); arrivals over ${w.arrival_s.toFixed(1)} s, last task done ${w.drain_s.toFixed(1)} s later`);
  console.log(`  upstream submissions ${w.creates} (${share(w.creates, w.requests)} of requests); saved ${w.requests - w.creates} (${share(w.requests - w.creates, w.requests)})`);
  console.log(`  ideal submissions    ${w.ideal} (each brief once, unless its first request was a bypass, plus every bypass); actual - ideal = ${w.creates - w.ideal}`);
  console.log(`  served as            hit ${a.hit} (${share(a.hit!, w.requests)}), coalesced ${a.coalesced} (${share(a.coalesced!, w.requests)}), miss ${a.miss} (${share(a.miss!, w.requests)}), bypassed ${a.bypassed} (${share(a.bypassed!, w.requests)})`);
  console.log(`  in /metrics          ${['hit', 'coalesced', 'miss', 'bypassed'].map((c) => `${c} ${w.from_metrics[c] ?? 0}`).join(', ')} (vidgate_cache_requests_total)`);
  console.log(`  credits              charged ${w.credits.settled} (vidgate_credits_total{kind="settled"}; tasks' usage says ${w.credits.charged_in_tasks}); saved ${w.credits.saved_metric} (vidgate_cache_credits_saved_total)`);
  console.log(`                       without a cache ${w.credits.no_cache} (every request at its brief's price): ${share(w.credits.no_cache - w.credits.settled, w.credits.no_cache)} saved`);
  console.log(`  outcome              ${JSON.stringify(w.finals)}; ${w.downloadable} videos downloaded and equal to the upstream's`);
  for (const [c, st] of Object.entries(w.post_ms)) console.log(`  ${`POST answer, ${c}`.padEnd(23)}${fmtStats(st)}`);
  console.log(`  event-loop delay     p99 ${w.loop.p99.toFixed(1)} ms, max ${w.loop.max.toFixed(0)} ms`);
  console.log(`\nhost at the end: ${host()}`);
  if (v.json) fs.writeFileSync(v.json, JSON.stringify({ options: O, host: { cpus: os.cpus().length, loadavg: os.loadavg(), node: process.version }, latency: lat, workload: w, problems }, null, 2));
  if (problems.length) {
    console.log(`\nFAIL: ${problems.length} problem(s) above`);
    process.exitCode = 1;
  } else console.log('\nOK: every task completed, the counts and the metrics agree');
}

main().catch((err: Error) => { console.error(err.stack ?? err.message); process.exit(1); });
