// A light OpenAI Videos-shaped upstream for bench/in-flight.ts, run as its own process (so that its CPU is not the
// gateway's): jobs that run for hours unless the bench completes them, and a record of when each job was polled.
// Only what the gateway's OpenAI adapter calls on this path: POST /v1/videos, GET /v1/videos/{id},
// GET /v1/videos/{id}/content. Control routes for the bench (no auth, 127.0.0.1 only):
//   POST /control/window   start measuring poll gaps now (every job's last poll counts from now)
//   GET  /control/stats    poll gaps since the window started: per job, the longest (an open gap counts to now)
//   POST /control/complete?n=N   complete N running jobs now; answers [{id, completed_at_ms}]
//   GET  /control/completed  per completed job: {id, completed_at_ms, last_poll_before_ms (its last poll while
//                            running), seen_ms (the first poll answering completed), content_ms (the first download)}
//
//   node --import tsx bench/support/long-jobs-upstream.ts --mp4 FILE [--poll-after-ms N]
// prints `listening <url>` on stdout once ready.
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { mp4: { type: 'string' }, 'poll-after-ms': { type: 'string' } } });
const mp4 = fs.readFileSync(values.mp4!);
const pollAfterMs = values['poll-after-ms'] === undefined ? undefined : Number(values['poll-after-ms']);
const API_KEY = 'sk-bench-long-jobs';

interface Job {
  id: string;
  created_s: number;
  completed_at_ms: number | null;
  last_poll_ms: number;
  longest_gap_ms: number;
  polls: number;
  seen_ms: number | null;
  content_ms: number | null;
}
const jobs = new Map<string, Job>();
let nextId = 1;
let windowStartMs = Date.now();
let polls = 0;

const video = (j: Job) => ({
  id: j.id, object: 'video', model: 'sora-2', status: j.completed_at_ms === null ? 'in_progress' : 'completed',
  progress: j.completed_at_ms === null ? 10 : 100, created_at: j.created_s, completed_at: j.completed_at_ms === null ? null : Math.floor(j.completed_at_ms / 1000),
  expires_at: null, prompt: 'bench', size: '1280x720', seconds: '4', remixed_from_video_id: null, error: null,
});

function json(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(text)) });
  res.end(text);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const now = Date.now();
    if (url.pathname.startsWith('/control/')) return control(url, res, now);
    if (req.headers.authorization !== `Bearer ${API_KEY}`) return json(res, 401, { error: { message: 'bad key', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    const m = /^\/v1\/videos(?:\/([^/]+)(\/content)?)?$/.exec(url.pathname);
    if (m && req.method === 'POST' && !m[1]) {
      const job: Job = { id: `video_${nextId++}`, created_s: Math.floor(now / 1000), completed_at_ms: null, last_poll_ms: now, longest_gap_ms: 0, polls: 0, seen_ms: null, content_ms: null };
      jobs.set(job.id, job);
      return json(res, 200, video(job));
    }
    const job = m?.[1] ? jobs.get(m[1]) : undefined;
    if (!job || req.method !== 'GET') return json(res, 404, { error: { message: 'not found', type: 'invalid_request_error', param: null, code: 'not_found' } });
    if (m![2]) {
      job.content_ms ??= now;
      res.writeHead(200, { 'Content-Type': 'video/mp4', 'Content-Length': String(mp4.length) });
      return res.end(mp4);
    }
    polls++;
    job.polls++;
    const running = job.completed_at_ms === null;
    if (running) {
      job.longest_gap_ms = Math.max(job.longest_gap_ms, now - Math.max(job.last_poll_ms, windowStartMs));
      job.last_poll_ms = now;
    } else job.seen_ms ??= now;
    json(res, 200, video(job), running && pollAfterMs !== undefined ? { 'openai-poll-after-ms': String(pollAfterMs) } : {});
  });
});

function control(url: URL, res: http.ServerResponse, now: number) {
  if (url.pathname === '/control/window') {
    windowStartMs = now;
    polls = 0;
    for (const j of jobs.values()) j.longest_gap_ms = 0;
    return json(res, 200, { window_start_ms: now });
  }
  if (url.pathname === '/control/stats') {
    const gaps: number[] = [];
    for (const j of jobs.values()) {
      if (j.completed_at_ms !== null) continue;
      gaps.push(Math.max(j.longest_gap_ms, now - Math.max(j.last_poll_ms, windowStartMs)));
    }
    return json(res, 200, { window_ms: now - windowStartMs, polls, running: gaps.length, gaps_ms: gaps });
  }
  if (url.pathname === '/control/completed') {
    const done = [...jobs.values()].filter((j) => j.completed_at_ms !== null);
    return json(res, 200, done.map((j) => ({ id: j.id, completed_at_ms: j.completed_at_ms, last_poll_before_ms: j.last_poll_ms, seen_ms: j.seen_ms, content_ms: j.content_ms })));
  }
  if (url.pathname === '/control/complete') {
    const n = Number(url.searchParams.get('n') ?? 0);
    const running = [...jobs.values()].filter((j) => j.completed_at_ms === null);
    const picked: { id: string; completed_at_ms: number }[] = [];
    // Spread over the running jobs, so that they are of every poll phase.
    for (let i = 0; i < n && running.length > 0; i++) {
      const j = running[Math.floor((i * running.length) / n)]!;
      j.completed_at_ms = now;
      picked.push({ id: j.id, completed_at_ms: now });
    }
    return json(res, 200, picked);
  }
  json(res, 404, {});
}

server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  console.log(`listening http://127.0.0.1:${(server.address() as AddressInfo).port}`);
});
process.on('SIGTERM', () => process.exit(0));
// The bench holds our stdin: when it dies, however, so do we.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
