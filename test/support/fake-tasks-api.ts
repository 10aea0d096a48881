// A fake upstream speaking the unified task API (upstream-apis.md, section 2) on 127.0.0.1, for adapter and
// gateway tests. Routes:
//   POST /v1/videos/generations   create a task (Bearer key required; body checked against the reference)
//   GET  /v1/tasks/{id}           query it; status follows the clock: pending, processing, completed
//   GET  /files/{name}.mp4        the result bytes (no key needed, like a CDN's signed link; any name is served)
// Every answer is recorded in `requests`. setMode() injects failures; see FakeMode.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import ffmpeg from '@ffmpeg-installer/ffmpeg';
import { mp4Of, type Mp4Source } from './mp4';

export type FakeRoute = 'create' | 'task' | 'file';

/**
 * What the fake does with the calls it affects, until set back to 'normal' (or `times` calls are used up):
 * - 'normal': answer as the reference says.
 * - { kind: 'http_error', status, retryAfter? }: answer `status` with the reference's error body
 *   `{"error": {"code": <status as int>, "message", "type"}}`, plus a Retry-After header when given. Any route.
 * - 'expired': 410 on the file route (a result link past its 24 hours).
 * - 'hang': never answer (the socket stays open until close()). Any route.
 * - 'reset': reset the TCP connection without answering. Any route.
 * - 'truncate': announce the full Content-Length, send half the body, destroy the socket. Any route.
 * - 'malformed_json': 200 with a body that is not JSON. API routes.
 * - { kind: 'fail_task', code, message? }: a queried task is failed from then on with `error: {code, message}`
 *   (e.g. 'service_error' retryable, 'content_policy_violation' terminal, 'resource_not_found'). Task route.
 * - 'lose_task': a queried task is forgotten: 404 not_found_error from then on. Task route.
 * Lost and late create answers, unknown statuses (issue 10, adapters); create route:
 * - { kind: 'late_answer', delayMs }: the task is created at once, its answer sent only after `delayMs`.
 * - 'lost_answer': the task is created, then the connection destroyed without an answer.
 * - { kind: 'unknown_status', status }: the task is created and answered with `status` (e.g. 'queued').
 */
export type FakeMode =
  | 'normal'
  | 'expired'
  | 'hang'
  | 'reset'
  | 'truncate'
  | 'malformed_json'
  | 'lose_task'
  | { kind: 'http_error'; status: number; retryAfter?: string }
  | { kind: 'fail_task'; code: string; message?: string }
  // --- lost and late create answers, unknown statuses (issue 10, adapters) ---
  | 'lost_answer'
  | { kind: 'late_answer'; delayMs: number }
  | { kind: 'unknown_status'; status: string };

export interface FakeTasksApiOptions {
  /** The Bearer key API routes accept. Default 'fake-tasks-api-key'. */
  apiKey?: string;
  /** Time from creation to completion; a quarter of it pending, the rest processing. Default 300. */
  durationMs?: number;
  /**
   * The bytes served as results: the same for every task, or per shape (`mp4Renderer()`: real MP4s of the task's
   * size and duration). Default: a few placeholder bytes (not a playable video).
   */
  mp4?: Mp4Source;
  /** Origin (or any base URL) result links point at, e.g. a second fake acting as CDN. Default: this fake. */
  resultsBaseUrl?: string;
}

/** A task as the fake keeps it; `toWire` derives the wire object from it and the clock. */
export interface FakeTask {
  id: string;
  /** The create body as received. */
  body: Record<string, unknown>;
  created_ms: number;
  failed?: { code: string; message: string };
  /** Replaces the computed result links of a completed task (e.g. [] for a completed task without results). */
  results?: string[];
}

export interface RecordedRequest {
  method: string;
  /** Path and query, e.g. '/v1/tasks/task-unified-...'. */
  path: string;
  headers: http.IncomingHttpHeaders;
  /** Parsed JSON when the body is JSON, the raw text otherwise, undefined when empty. */
  body: unknown;
}

export interface FakeTasksApi {
  /** The server root, e.g. 'http://127.0.0.1:41234' (the adapter's baseUrl). */
  url: string;
  apiKey: string;
  tasks: Map<string, FakeTask>;
  requests: RecordedRequest[];
  /** Sets the mode of every route, or only of `route`; with `times`, only for that many affected calls. */
  setMode(mode: FakeMode, options?: { route?: FakeRoute; times?: number }): void;
  /** The task's wire object as GET /v1/tasks/{id} would answer now. */
  toWire(task: FakeTask): Record<string, unknown>;
  close(): Promise<void>;
}

const ERROR_TYPES: Record<number, string> = {
  400: 'invalid_request_error',
  401: 'authentication_error',
  402: 'insufficient_quota_error',
  403: 'permission_error',
  404: 'not_found_error',
  410: 'not_found_error',
  413: 'request_too_large_error',
  429: 'rate_limit_error',
  500: 'internal_server_error',
  502: 'upstream_error',
  503: 'service_unavailable_error',
};

const CREATE_FIELDS = new Set(['model', 'prompt', 'aspect_ratio', 'duration', 'quality', 'image_urls', 'resize_mode', 'callback_url']);

export async function startFakeTasksApi(options: FakeTasksApiOptions = {}): Promise<FakeTasksApi> {
  const apiKey = options.apiKey ?? 'fake-tasks-api-key';
  const durationMs = options.durationMs ?? 300;
  const mp4 = options.mp4 ?? Buffer.from('placeholder, not a real mp4');
  const tasks = new Map<string, FakeTask>();
  const requests: RecordedRequest[] = [];
  const modes = new Map<FakeRoute, { mode: FakeMode; remaining: number }>();
  let url = '';

  function toWire(task: FakeTask): Record<string, unknown> {
    const elapsed = Date.now() - task.created_ms;
    const status = task.failed ? 'failed' : elapsed >= durationMs ? 'completed' : elapsed < durationMs / 4 ? 'pending' : 'processing';
    const progress = status === 'completed' ? 100 : status === 'processing' ? Math.min(99, Math.max(1, Math.floor((elapsed / durationMs) * 100))) : 0;
    const duration = typeof task.body.duration === 'number' ? task.body.duration : 4;
    return {
      created: Math.floor(task.created_ms / 1000),
      id: task.id,
      model: task.body.model,
      object: 'video.generation.task',
      progress,
      status,
      task_info: { can_cancel: status === 'pending' || status === 'processing', estimated_time: Math.ceil(durationMs / 1000), video_duration: duration },
      type: 'video',
      usage: { billing_rule: 'per_call', credits_reserved: 2 * duration, user_group: 'default' },
      ...(status === 'completed' && { results: task.results ?? [`${options.resultsBaseUrl ?? url}/files/${task.id}.mp4`] }),
      ...(task.failed && { error: task.failed }),
    };
  }

  /** The mode that applies to this call of `route`, counting it against `times`. */
  function modeFor(route: FakeRoute): FakeMode {
    const entry = modes.get(route);
    if (!entry || !affects(entry.mode, route)) return 'normal';
    if (--entry.remaining <= 0) modes.delete(route);
    return entry.mode;
  }

  function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), ...headers });
    res.end(text);
  }

  function sendError(res: http.ServerResponse, status: number, message: string, headers: http.OutgoingHttpHeaders = {}): void {
    sendJson(res, status, { error: { code: status, message, type: ERROR_TYPES[status] ?? 'internal_server_error' } }, headers);
  }

  /** Applies a transport-level mode; true when it answered (or deliberately did not). */
  function injected(mode: FakeMode, res: http.ServerResponse, normalBody: () => Buffer): boolean {
    if (mode === 'hang') return true;
    if (mode === 'reset') {
      res.socket?.resetAndDestroy();
      return true;
    }
    if (mode === 'truncate') {
      const body = normalBody();
      res.writeHead(200, { 'Content-Length': body.length });
      res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.socket?.destroy());
      return true;
    }
    if (mode === 'expired') {
      sendError(res, 410, 'the result link has expired');
      return true;
    }
    if (mode === 'malformed_json') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end('{"id": "task-unified-');
      return true;
    }
    if (typeof mode === 'object' && mode.kind === 'http_error') {
      sendError(res, mode.status, `injected HTTP ${mode.status}`, mode.retryAfter !== undefined ? { 'Retry-After': mode.retryAfter } : {});
      return true;
    }
    return false;
  }

  function handleCreate(body: unknown, res: http.ServerResponse, mode: FakeMode): void {
    const problem = createProblem(body);
    if (problem) return sendError(res, 400, problem);
    const created_ms = Date.now();
    const task: FakeTask = { id: `task-unified-${Math.floor(created_ms / 1000)}-${randomBytes(4).toString('hex')}`, body: body as Record<string, unknown>, created_ms };
    tasks.set(task.id, task);
    // --- lost and late create answers, unknown statuses (issue 10, adapters) ---
    if (mode === 'lost_answer') return void res.socket?.destroy();
    if (typeof mode === 'object' && mode.kind === 'late_answer') return void setTimeout(() => res.writable && sendJson(res, 200, toWire(task)), mode.delayMs);
    if (typeof mode === 'object' && mode.kind === 'unknown_status') return sendJson(res, 200, { ...toWire(task), status: mode.status });
    sendJson(res, 200, toWire(task));
  }

  function handleTask(id: string, mode: FakeMode, res: http.ServerResponse): void {
    const task = tasks.get(id);
    if (task && mode === 'lose_task') tasks.delete(id);
    if (!task || mode === 'lose_task') return sendError(res, 404, `task ${id} not found`);
    if (typeof mode === 'object' && mode.kind === 'fail_task') task.failed ??= { code: mode.code, message: mode.message ?? `injected ${mode.code}` };
    sendJson(res, 200, toWire(task));
  }

  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: unknown = text === '' ? undefined : text;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      // keep the raw text
    }
    const reqPath = req.url ?? '/';
    requests.push({ method: req.method ?? '', path: reqPath, headers: req.headers, body });

    const pathname = new URL(reqPath, 'http://fake').pathname;
    const taskMatch = /^\/v1\/tasks\/([^/]+)$/.exec(pathname);
    const route: FakeRoute | undefined =
      req.method === 'POST' && pathname === '/v1/videos/generations' ? 'create'
      : req.method === 'GET' && taskMatch ? 'task'
      : req.method === 'GET' && /^\/files\/[^/]+\.mp4$/.test(pathname) ? 'file'
      : undefined;
    if (!route) return sendError(res, 404, `no route for ${req.method} ${pathname}`);

    const mode = modeFor(route);
    const video = route === 'file' ? await mp4Of(mp4, shapeOf(tasks.get(/^\/files\/(.+)\.mp4$/.exec(pathname)![1]!)?.body)) : undefined;
    const normalBody = () => video ?? Buffer.from(JSON.stringify({ id: 'task-unified-0-truncated', status: 'pending' }));
    if (injected(mode, res, normalBody)) return;
    if (route !== 'file' && req.headers.authorization !== `Bearer ${apiKey}`) return sendError(res, 401, 'invalid API key');

    if (route === 'create') return handleCreate(body, res, mode);
    if (route === 'task') return handleTask(decodeURIComponent(taskMatch![1]!), mode, res);
    res.writeHead(200, { 'Content-Type': 'video/mp4', 'Content-Length': video!.length });
    res.end(video);
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    apiKey,
    tasks,
    requests,
    toWire,
    setMode(mode, { route, times = Infinity } = {}) {
      for (const r of route ? [route] : (['create', 'task', 'file'] as const)) {
        if (mode === 'normal') modes.delete(r);
        else modes.set(r, { mode, remaining: times });
      }
    },
    close() {
      server.closeAllConnections();
      return new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}

/** The size and seconds a create body asks for (either aspect_ratio style), defaults as the reference says. */
function shapeOf(body: Record<string, unknown> | undefined): { size: string; seconds: number } {
  const ratio = typeof body?.aspect_ratio === 'string' ? body.aspect_ratio : '9:16';
  const high = body?.quality === '1080p';
  const size = /^\d+x\d+$/.test(ratio) ? ratio : ratio === '16:9' ? (high ? '1792x1024' : '1280x720') : high ? '1024x1792' : '720x1280';
  return { size, seconds: typeof body?.duration === 'number' ? body.duration : 4 };
}

/** Which routes a mode can affect (the others answer normally). */
function affects(mode: FakeMode, route: FakeRoute): boolean {
  if (mode === 'expired') return route === 'file';
  if (mode === 'malformed_json') return route !== 'file';
  if (mode === 'lose_task' || (typeof mode === 'object' && mode.kind === 'fail_task')) return route === 'task';
  if (mode === 'lost_answer' || (typeof mode === 'object' && (mode.kind === 'late_answer' || mode.kind === 'unknown_status'))) return route === 'create';
  return true;
}

/** Why a create body breaks the reference's rules, if it does. */
function createProblem(body: unknown): string | undefined {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'body must be a JSON object';
  const b = body as Record<string, unknown>;
  const unknown = Object.keys(b).filter((k) => !CREATE_FIELDS.has(k));
  if (unknown.length > 0) return `unknown parameter(s): ${unknown.join(', ')}`;
  if (typeof b.model !== 'string' || b.model === '') return 'model is required';
  if (typeof b.prompt !== 'string' || b.prompt === '') return 'prompt is required';
  if (b.aspect_ratio !== undefined && !['16:9', '9:16', '1280x720', '720x1280'].includes(b.aspect_ratio as string)) return 'invalid aspect_ratio';
  if (b.duration !== undefined && ![4, 8, 12].includes(b.duration as number)) return 'duration must be the integer 4, 8 or 12';
  if (b.quality !== undefined && !['720p', '1080p'].includes(b.quality as string)) return 'quality must be 720p or 1080p';
  if (b.image_urls !== undefined && !(Array.isArray(b.image_urls) && b.image_urls.length <= 1 && b.image_urls.every((u) => typeof u === 'string'))) {
    return 'image_urls must be an array of at most 1 URL';
  }
  if (b.resize_mode !== undefined && !['pad', 'crop'].includes(b.resize_mode as string)) return 'resize_mode must be pad or crop';
  if (b.callback_url !== undefined && !(typeof b.callback_url === 'string' && b.callback_url.startsWith('https://'))) return 'callback_url must be HTTPS';
  return undefined;
}

/** A small real MP4 (320x240, 1 s, H.264) for the `mp4` option. */
export async function renderTestMp4(): Promise<Buffer> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vidgate-fake-mp4-'));
  try {
    const file = path.join(dir, 'test.mp4');
    const args = ['-v', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=4:duration=1', '-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-movflags', '+faststart', file];
    await promisify(execFile)(ffmpeg.path, args);
    return await fs.readFile(file);
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}
