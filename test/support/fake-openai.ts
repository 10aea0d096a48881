// A fake OpenAI Videos API upstream on 127.0.0.1, speaking the wire format of
// /work/shared/reference/upstream-apis.md section 1, with switchable failure modes.
//
//   const fake = await startFakeOpenAI({ mp4, jobDurationMs: 300 });
//   createOpenAIProvider({ baseUrl: fake.url, apiKey: fake.apiKey, ... });
//   fake.setMode('error_500', { route: 'retrieve', times: 1 });   // next poll gets a 500, then normal again
//   fake.requests   // every request seen: method, path, query, headers, body (multipart fields parsed)
//   await fake.close();
//
// Routes: POST /v1/videos ('create'), GET /v1/videos ('list'), GET /v1/videos/{id} ('retrieve'),
// DELETE /v1/videos/{id} ('delete'), GET /v1/videos/{id}/content ('content'). Anything else is a 404. A wrong or missing Bearer key is a 401.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import ffprobe from '@ffprobe-installer/ffprobe';
import { mp4Of, type Mp4Source } from './mp4';

export type FakeRoute = 'create' | 'list' | 'retrieve' | 'delete' | 'content' | 'remix';

/**
 * How the fake answers, from the next request on. Transport modes (error_500 .. malformed_json) act on
 * every route they are set for; the job and content modes only on the routes named with them (see
 * appliesTo), other routes answering normally.
 */
export type FakeMode =
  /** Answer normally. */
  | { kind: 'normal' }
  /** HTTP 500 with an OpenAI error body (`server_error`). */
  | { kind: 'error_500' }
  /** HTTP 429 (`rate_limit_exceeded`) with `Retry-After: <retryAfterS>` (default 2). */
  | { kind: 'rate_limited'; retryAfterS?: number }
  /** HTTP 400 (`invalid_request_error`), as for a bad parameter; `code` defaults to 'invalid_value'. */
  | { kind: 'bad_request'; code?: string; message?: string }
  /** Never answer (the client's timeout must fire); the socket is closed by close(). */
  | { kind: 'hang' }
  /** Destroy the connection without answering (req.socket.destroy()). */
  | { kind: 'reset' }
  /** HTTP 200, Content-Type application/json, and a body that is not JSON. */
  | { kind: 'malformed_json' }
  /** retrieve: the job is failed from now on (status 'failed', error {code, message}). */
  | { kind: 'fail_job'; code: string; message?: string }
  /** retrieve/content/delete: the job is forgotten from now on (404 everywhere). */
  | { kind: 'lose_job' }
  /** content: full Content-Length, half the bytes, then the socket is destroyed. */
  | { kind: 'truncated_mp4' }
  /** content: the result link is gone (404 by default, or 410). */
  | { kind: 'expired_mp4'; status?: 404 | 410 }
  // --- lost and late create answers, unknown statuses (issue 10, adapters) ---
  /** create: the job is made at once, its answer sent only after `delayMs` (a client's timeout may fire first). */
  | { kind: 'late_answer'; delayMs: number }
  /** create: the job is made, then the connection destroyed without an answer. */
  | { kind: 'lost_answer' }
  /** create: the job is made and answered, with `status` in place of the reference's (e.g. 'pending'). */
  | { kind: 'unknown_status'; status: string };

/** Modes that need no parameters can be given by name: setMode('reset'). */
export type FakeModeKind = {
  [K in FakeMode['kind']]: { kind: K } extends Extract<FakeMode, { kind: K }> ? K : never;
}[FakeMode['kind']];

const CREATE_MODES = new Set(['late_answer', 'lost_answer', 'unknown_status']);
const TRANSPORT_MODES = new Set(['error_500', 'rate_limited', 'bad_request', 'hang', 'reset', 'malformed_json']);

/** Whether a mode acts on a route at all (elsewhere the route answers normally and the mode is not used up). */
function appliesTo(mode: FakeMode, route: FakeRoute): boolean {
  if (TRANSPORT_MODES.has(mode.kind)) return true;
  if (mode.kind === 'fail_job') return route === 'retrieve';
  if (mode.kind === 'lose_job') return route !== 'create' && route !== 'list';
  if (CREATE_MODES.has(mode.kind)) return route === 'create';
  return route === 'content'; // truncated_mp4, expired_mp4
}

export interface SetModeOptions {
  /** Only this route; default every route. A route-specific mode wins over the all-routes one. */
  route?: FakeRoute;
  /** Revert to normal after this many requests were affected; default: until changed. */
  times?: number;
}

export interface FakeJob {
  id: string;
  model: string;
  prompt: string;
  size: string;
  seconds: string;
  /** The `input_reference[image_url]` part, when sent. */
  image_url?: string;
  /** The job this one remixes (POST /v1/videos/{id}/remix). */
  remixed_from?: string;
  created_at_ms: number;
  /** Time from creation to completion. */
  duration_ms: number;
  error?: { code: string; message: string };
}

export interface FakeRequest {
  method: string;
  /** Path without the query string, e.g. '/v1/videos/video_1/content'. */
  path: string;
  query: Record<string, string>;
  headers: http.IncomingHttpHeaders;
  /** Multipart text fields (file parts as {filename, type, size}), parsed JSON, or undefined. */
  body: Record<string, unknown> | undefined;
}

export interface FakeOpenAIOptions {
  /**
   * The bytes served as the finished video: the same for every job, or per shape (`mp4Renderer()`, real MP4s
   * of the job's size and seconds, which a gateway's verification accepts). Default: a few placeholder bytes.
   */
  mp4?: Mp4Source;
  /** Bearer key the fake accepts. Default 'sk-fake-openai'. */
  apiKey?: string;
  /** Time from creation to 'completed'; the first 10% is 'queued'. Default 300. */
  jobDurationMs?: number;
  /** Models accepted by POST /v1/videos. Default sora-2 (720p sizes only) and sora-2-pro. */
  models?: string[];
  /** A create with an `Idempotency-Key` already seen answers with that key's job instead of making another (issue 10). */
  honoursIdempotencyKey?: boolean;
  /**
   * A create's `input_reference` (a file part, or an image fetched from `input_reference[image_url]`) must be an
   * image of exactly `size`, as sora-2 requires; otherwise 400 `invalid_value` on `input_reference` (issue 10).
   */
  strictReferenceSize?: boolean;
  /** Sent as `openai-poll-after-ms` with a retrieve of a job not finished yet (the hint OpenAI's SDKs follow). */
  pollAfterMs?: number;
  /**
   * Called with each job as it is made, before it is answered: it may change the job (a longer `duration_ms`, an
   * `error` from the start, e.g. content policy), to single out one job by its prompt.
   */
  onCreate?: (job: FakeJob) => void;
}

export interface FakeOpenAI {
  /** Server root, e.g. 'http://127.0.0.1:40123' (no /v1). */
  url: string;
  apiKey: string;
  jobs: Map<string, FakeJob>;
  requests: FakeRequest[];
  setMode(mode: FakeMode | FakeModeKind, options?: SetModeOptions): void;
  /** Back to normal on every route. */
  resetModes(): void;
  /** Fail one job now (its next retrieve says 'failed'). */
  failJob(id: string, code: string, message?: string): void;
  /** Finish one job now. */
  completeJob(id: string): void;
  /** The requests made to one route. */
  requestsTo(route: FakeRoute): FakeRequest[];
  close(): Promise<void>;
}

const SIZES = ['720x1280', '1280x720', '1024x1792', '1792x1024'];
const SECONDS = ['4', '8', '12'];

export async function startFakeOpenAI(options: FakeOpenAIOptions = {}): Promise<FakeOpenAI> {
  const {
    mp4 = Buffer.from('\0\0\0\x18ftypmp42 not a real video'),
    apiKey = 'sk-fake-openai',
    jobDurationMs = 300,
    models = ['sora-2', 'sora-2-pro'],
  } = options;
  const jobs = new Map<string, FakeJob>();
  const jobByKey = new Map<string, FakeJob>();
  const requests: FakeRequest[] = [];
  const modes = new Map<FakeRoute | 'all', { mode: FakeMode; left: number }>();
  let nextId = 1;

  /** The mode acting on this route, counting one use of it. */
  function takeMode(route: FakeRoute): FakeMode {
    for (const key of [route, 'all'] as const) {
      const entry = modes.get(key);
      if (!entry || !appliesTo(entry.mode, route)) continue;
      if (--entry.left <= 0) modes.delete(key);
      return entry.mode;
    }
    return { kind: 'normal' };
  }

  const server = http.createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      if (!res.headersSent) sendError(res, 500, 'server_error', `fake crashed: ${(err as Error).message}`);
    });
  });

  async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const raw = await readBody(req);
    const record: FakeRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers: req.headers,
      body: await parseBody(req.headers['content-type'], raw),
    };
    requests.push(record);

    const route = routeOf(record.method, url.pathname);
    if (!route) return sendError(res, 404, 'not_found', `no route ${record.method} ${url.pathname}`, 'invalid_request_error');
    if (req.headers.authorization !== `Bearer ${apiKey}`) {
      return sendError(res, 401, 'invalid_api_key', 'Incorrect API key provided.', 'invalid_request_error');
    }

    const mode = takeMode(route.name);
    switch (mode.kind) {
      case 'error_500':
        return sendError(res, 500, 'server_error', 'The server had an error while processing your request.', 'server_error');
      case 'rate_limited':
        res.setHeader('Retry-After', String(mode.retryAfterS ?? 2));
        return sendError(res, 429, 'rate_limit_exceeded', 'Rate limit reached.', 'requests');
      case 'bad_request':
        return sendError(res, 400, mode.code ?? 'invalid_value', mode.message ?? 'Invalid request.', 'invalid_request_error');
      case 'hang':
        return; // the socket stays open until the client gives up or close() runs
      case 'reset':
        req.socket.destroy();
        return;
      case 'malformed_json':
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end('{"id": "video_');
        return;
      default:
    }

    if (route.name === 'create') return create(record, res, mode);
    if (route.name === 'list') return list(record, res);
    const job = jobs.get(route.id);
    if (job && mode.kind === 'lose_job') jobs.delete(job.id);
    if (!job || mode.kind === 'lose_job') {
      return sendError(res, 404, 'not_found', `Video with id '${route.id}' not found.`, 'invalid_request_error');
    }
    if (route.name === 'retrieve') {
      if (mode.kind === 'fail_job') job.error = { code: mode.code, message: mode.message ?? `generation failed: ${mode.code}` };
      const video = videoObject(job);
      const running = video.status === 'queued' || video.status === 'in_progress';
      return sendJson(res, 200, video, running && options.pollAfterMs !== undefined ? { 'openai-poll-after-ms': String(options.pollAfterMs) } : {});
    }
    if (route.name === 'remix') {
      const prompt = typeof record.body?.prompt === 'string' ? record.body.prompt : undefined;
      if (!prompt) return sendError(res, 400, 'invalid_value', 'prompt is required.', 'invalid_request_error', 'prompt');
      if (videoObject(job).status !== 'completed') return sendError(res, 400, 'invalid_value', `Video '${job.id}' is not completed.`, 'invalid_request_error');
      const remix: FakeJob = { ...job, id: `video_${String(nextId++).padStart(6, '0')}`, prompt, remixed_from: job.id, created_at_ms: Date.now(), duration_ms: jobDurationMs };
      jobs.set(remix.id, remix);
      return sendJson(res, 200, videoObject(remix));
    }
    if (route.name === 'delete') {
      jobs.delete(job.id);
      return sendJson(res, 200, { id: job.id, object: 'video.deleted', deleted: true });
    }
    // content
    if (mode.kind === 'expired_mp4') {
      const status = mode.status ?? 404;
      return sendError(res, status, 'video_expired', `Video content for '${job.id}' has expired.`, 'invalid_request_error');
    }
    if (videoObject(job).status !== 'completed') {
      return sendError(res, 409, 'video_not_ready', `Video '${job.id}' is not completed.`, 'invalid_request_error');
    }
    const variant = record.query.variant ?? 'video';
    if (variant !== 'video') return sendError(res, 400, 'invalid_value', `variant '${variant}' not served by the fake`, 'invalid_request_error');
    const bytes = await mp4Of(mp4, { size: job.size, seconds: Number(job.seconds) });
    res.writeHead(200, { 'Content-Type': 'video/mp4', 'Content-Length': String(bytes.length) });
    if (mode.kind === 'truncated_mp4') {
      res.write(bytes.subarray(0, Math.floor(bytes.length / 2)), () => req.socket.destroy());
      return;
    }
    res.end(bytes);
  }

  async function create(record: FakeRequest, res: http.ServerResponse, mode: FakeMode): Promise<void> {
    const body = record.body ?? {};
    const field = (name: string) => (typeof body[name] === 'string' ? (body[name] as string) : undefined);
    // multipart: text part `input_reference[image_url]`; JSON: `input_reference: {image_url}`
    const reference = body.input_reference as { image_url?: unknown } | undefined;
    const imageUrl = field('input_reference[image_url]') ?? (typeof reference?.image_url === 'string' ? reference.image_url : undefined);
    const prompt = field('prompt');
    const model = field('model') ?? 'sora-2';
    const seconds = field('seconds') ?? '4';
    const size = field('size') ?? '720x1280';
    const invalid = (param: string, message: string) => sendError(res, 400, 'invalid_value', message, 'invalid_request_error', param);
    if (!prompt || prompt.length > 32000) return invalid('prompt', 'prompt must be 1-32000 characters.');
    if (!models.includes(model)) return invalid('model', `Invalid model '${model}'.`);
    if (!SECONDS.includes(seconds)) return invalid('seconds', `Invalid value '${seconds}' for seconds.`);
    if (!SIZES.includes(size) || (model === 'sora-2' && !['720x1280', '1280x720'].includes(size))) {
      return invalid('size', `Invalid size '${size}' for model '${model}'.`);
    }
    if (options.strictReferenceSize && (imageUrl !== undefined || body.input_reference !== undefined)) {
      const file = body.input_reference as { bytes?: Buffer } | undefined;
      const image = file?.bytes ?? (imageUrl !== undefined ? Buffer.from(await (await fetch(imageUrl)).arrayBuffer()) : undefined);
      const actual = image && (await imageSize(image));
      if (actual !== size) return invalid('input_reference', `Inpaint image must match the requested width and height (${actual ?? 'unreadable'}, not ${size}).`);
    }
    const key = options.honoursIdempotencyKey ? record.headers['idempotency-key'] : undefined;
    const known = typeof key === 'string' ? jobByKey.get(key) : undefined;
    if (known) return sendJson(res, 200, videoObject(known));
    const job: FakeJob = {
      id: `video_${String(nextId++).padStart(6, '0')}`,
      model,
      prompt,
      size,
      seconds,
      ...(imageUrl !== undefined && { image_url: imageUrl }),
      created_at_ms: Date.now(),
      duration_ms: jobDurationMs,
    };
    options.onCreate?.(job);
    jobs.set(job.id, job);
    if (typeof key === 'string') jobByKey.set(key, job);
    // --- lost and late create answers, unknown statuses (issue 10, adapters) ---
    if (mode.kind === 'lost_answer') return void res.socket?.destroy();
    if (mode.kind === 'late_answer') return void setTimeout(() => res.writable && sendJson(res, 200, videoObject(job)), mode.delayMs);
    if (mode.kind === 'unknown_status') return sendJson(res, 200, { ...videoObject(job), status: mode.status });
    sendJson(res, 200, videoObject(job));
  }

  /** GET /v1/videos: `order` (desc default), `limit` (default 20, at most 100), `after` (an id). */
  function list(record: FakeRequest, res: http.ServerResponse): void {
    const all = [...jobs.values()].sort((a, b) => a.created_at_ms - b.created_at_ms || a.id.localeCompare(b.id));
    if (record.query.order !== 'asc') all.reverse();
    const from = record.query.after ? all.findIndex((j) => j.id === record.query.after) + 1 : 0;
    const limit = Math.min(100, Number(record.query.limit ?? 20));
    const page = all.slice(from, from + limit);
    sendJson(res, 200, { object: 'list', data: page.map((j) => videoObject(j)), first_id: page[0]?.id ?? null, last_id: page.at(-1)?.id ?? null, has_more: from + limit < all.length });
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    jobs,
    requests,
    setMode(mode, { route, times = Infinity } = {}) {
      const m: FakeMode = typeof mode === 'string' ? ({ kind: mode } as FakeMode) : mode;
      if (m.kind === 'normal') modes.delete(route ?? 'all');
      else modes.set(route ?? 'all', { mode: m, left: times });
    },
    resetModes: () => modes.clear(),
    failJob(id, code, message) {
      const job = jobs.get(id);
      if (job) job.error = { code, message: message ?? `generation failed: ${code}` };
    },
    completeJob(id) {
      const job = jobs.get(id);
      if (job) job.duration_ms = Math.min(job.duration_ms, Date.now() - job.created_at_ms);
    },
    requestsTo: (route) => requests.filter((r) => routeOf(r.method, r.path)?.name === route),
    close() {
      server.closeAllConnections();
      return new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}

/** The Video object for a job as of now (every key present, as upstream). */
function videoObject(job: FakeJob, nowMs = Date.now()) {
  const fraction = job.duration_ms <= 0 ? 1 : (nowMs - job.created_at_ms) / job.duration_ms;
  const status = job.error ? 'failed' : fraction >= 1 ? 'completed' : fraction < 0.1 ? 'queued' : 'in_progress';
  const completedAtS = Math.floor((job.created_at_ms + job.duration_ms) / 1000);
  return {
    id: job.id,
    object: 'video',
    model: job.model,
    status,
    progress: status === 'completed' ? 100 : status === 'failed' ? 0 : Math.floor(Math.min(fraction, 0.99) * 100),
    created_at: Math.floor(job.created_at_ms / 1000),
    completed_at: status === 'completed' ? completedAtS : null,
    expires_at: status === 'completed' ? completedAtS + 3600 : null,
    prompt: job.prompt,
    size: job.size,
    seconds: job.seconds,
    remixed_from_video_id: job.remixed_from ?? null,
    error: job.error ?? null,
  };
}

/** `WxH` of an image, read by ffprobe; undefined when it is not one. */
async function imageSize(bytes: Buffer): Promise<string | undefined> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vidgate-fake-image-'));
  try {
    await fs.writeFile(path.join(dir, 'image'), bytes);
    const args = ['-v', 'error', '-show_entries', 'stream=width,height', '-of', 'csv=p=0:s=x', path.join(dir, 'image')];
    return (await promisify(execFile)(ffprobe.path, args)).stdout.trim() || undefined;
  } catch {
    return undefined;
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

function routeOf(method: string, path: string): { name: FakeRoute; id: string } | undefined {
  if (path === '/v1/videos') return method === 'POST' ? { name: 'create', id: '' } : method === 'GET' ? { name: 'list', id: '' } : undefined;
  const m = /^\/v1\/videos\/([^/]+)(\/content|\/remix)?$/.exec(path);
  if (!m) return undefined;
  const id = decodeURIComponent(m[1]!);
  if (m[2] === '/remix') return method === 'POST' ? { name: 'remix', id } : undefined;
  if (m[2]) return method === 'GET' ? { name: 'content', id } : undefined;
  if (method === 'GET') return { name: 'retrieve', id };
  if (method === 'DELETE') return { name: 'delete', id };
  return undefined;
}

async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Multipart via the WHATWG Request parser (Node 20's undici), JSON directly; other bodies are not kept. */
async function parseBody(contentType: string | undefined, raw: Buffer): Promise<Record<string, unknown> | undefined> {
  if (raw.length === 0 || !contentType) return undefined;
  if (contentType.startsWith('multipart/form-data')) {
    const form = await new Request('http://fake/', { method: 'POST', headers: { 'content-type': contentType }, body: raw }).formData();
    const fields: Record<string, unknown> = {};
    for (const [name, value] of form) {
      fields[name] = typeof value === 'string' ? value : { filename: value.name, type: value.type, size: value.size, bytes: Buffer.from(await value.arrayBuffer()) };
    }
    return fields;
  }
  if (contentType.startsWith('application/json')) {
    try {
      return JSON.parse(raw.toString('utf8')) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { ...headers, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(text)) });
  res.end(text);
}

function sendError(res: http.ServerResponse, status: number, code: string, message: string, type = 'invalid_request_error', param: string | null = null): void {
  sendJson(res, status, { error: { message, type, param, code } });
}
