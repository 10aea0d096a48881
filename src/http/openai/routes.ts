// The OpenAI-compatible door: the official `openai` SDK's `client.videos.*` works against vidgate by changing
// only `baseURL` and the key. Its wire format -> the task use cases -> the Video object. Mounted behind the
// shared middleware of ../app.ts (API key, spec validation with multipart parsing, error mapper).
import express, { type Response } from 'express';
import type { components } from '../../generated/vidgate-api';
import type { TaskService } from '../../core/tasks';
import type { Caller } from '../../core/teams';
import type { Outbound } from '../../net/outbound';
import type { ImageVariant } from '../../core/video-variants';
import type { Router } from '../../routing/router';
import type { TaskRecord } from '../../store/types';
import { asksForFreshTake } from '../cache-control';
import { normalizeVideoCreate } from './normalize';
import { POLL_AFTER_MS, presentVideo } from './present';
import type { WebhookService } from '../../core/webhooks';
import { presentEvents } from '../webhook-events';
import type { ContentSender } from '../asset-content';

export interface OpenAIRoutesDeps {
  router: Router;
  tasks: TaskService;
  retentionMs: number;
  /** Checks image and callback URLs at submission. */
  outbound: Outbound;
  webhooks: WebhookService;
  now: () => number;
  /** Sends stored videos and images (both doors). */
  content: ContentSender;
}

type ListQuery = { after?: string; limit?: number; order?: 'asc' | 'desc' };
/** What multer puts in `req.files` (memory storage). */
type UploadedFile = { fieldname: string; buffer: Buffer };

/** The headers of every Video answer: when to poll again, as OpenAI's API sends them. */
export const pollHeaders = { 'openai-poll-after-ms': String(POLL_AFTER_MS) } as const;

/**
 * The caller's task `id` as a Video (the answer to `GET /v1/videos/{id}`, on the general path and in the status-poll
 * lane of ../status-poll.ts).
 * @throws ApiError 404 `task_not_found` for another owner's task, a deleted one or none.
 */
export async function presentOwnVideo(deps: Pick<OpenAIRoutesDeps, 'tasks' | 'retentionMs'>, caller: Caller, id: string) {
  return presentVideo(await deps.tasks.get(caller, id), deps.retentionMs);
}

/** The routes of the OpenAI door under /v1/videos. */
export function createOpenAIRoutes(deps: OpenAIRoutesDeps): express.Router {
  const { tasks } = deps;
  const routes = express.Router();
  const caller = (res: Response) => res.locals.caller as Caller;
  const sendVideo = (res: Response, t: TaskRecord) => void res.set(pollHeaders).json(presentVideo(t, deps.retentionMs));
  const idempotencyKey = (value: string | undefined) => (value === undefined ? {} : { idempotency_key: value });

  routes.post('/v1/videos', async (req, res) => {
    const generation = await normalizeVideoCreate(req.body as components['schemas']['VideoCreateRequest'], deps.router, deps.outbound);
    // A file part, parsed into memory by the validator's multer (app.ts); its bytes are checked in the core.
    const file = (req.files as UploadedFile[] | undefined)?.find((f) => f.fieldname === 'input_reference');
    if (file) generation.image_upload = { bytes: file.buffer, param: 'input_reference' };
    if (asksForFreshTake(req)) generation.cache = false;
    sendVideo(res, await tasks.submit(caller(res), { ...generation, door: 'openai', ...idempotencyKey(req.get('idempotency-key')) }));
  });

  routes.get('/v1/videos', async (req, res) => {
    const { after, limit = 20, order = 'desc' } = req.query as ListQuery;
    const page = await tasks.list(caller(res), { limit: Number(limit), afterId: after, order });
    const data = page.tasks.map((t) => presentVideo(t, deps.retentionMs));
    res.json({ object: 'list', data, first_id: data[0]?.id ?? null, last_id: data.at(-1)?.id ?? null, has_more: page.nextCursor !== null });
  });

  routes.get('/v1/videos/:id', async (req, res) => {
    res.set(pollHeaders).json(await presentOwnVideo(deps, caller(res), req.params.id!));
  });

  routes.delete('/v1/videos/:id', async (req, res) => {
    const deleted = await tasks.delete(caller(res), req.params.id!);
    res.json({ id: deleted.id, object: 'video.deleted', deleted: true });
  });

  routes.get('/v1/videos/:id/deliveries', async (req, res) => {
    res.json(presentEvents(await deps.webhooks.deliveries(caller(res), req.params.id!)));
  });

  routes.post('/v1/videos/:id/deliveries/redeliver', async (req, res) => {
    res.status(202).json(presentEvents(await deps.webhooks.redeliver(caller(res), req.params.id!, deps.now())));
  });

  routes.get('/v1/videos/:id/content', async (req, res) => {
    const variant = (req.query.variant ?? 'video') as ImageVariant | 'video';
    const id = req.params.id!;
    if (variant === 'video') return deps.content.send(req, res, await tasks.videoFile(caller(res), id), 'video/mp4');
    await deps.content.send(req, res, await tasks.imageFile(caller(res), id, variant), 'image/jpeg');
  });

  routes.post('/v1/videos/:id/remix', async (req, res) => {
    const { prompt } = req.body as components['schemas']['VideoRemixRequest'];
    sendVideo(res, await tasks.remix(caller(res), req.params.id!, prompt, req.get('idempotency-key')));
  });

  return routes;
}
