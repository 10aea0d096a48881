// The native front door (the seed's unified task API): its wire format -> the task use cases -> its Task shape.
// Mounted behind the shared middleware of ../app.ts (API key, spec validation, error mapper).
import type http from 'node:http';
import type { TLSSocket } from 'node:tls';
import express, { type Request, type RequestHandler, type Response } from 'express';
import { asksForFreshTake } from '../cache-control';
import type { components } from '../../generated/vidgate-api';
import { describeCatalog } from '../../core/catalog';
import { estimate, quotaOutlook } from '../../core/estimate';
import { describeProviders } from '../../core/provider-status';
import type { DisabledProvider } from '../../core/providers-from-config';
import type { Outbound } from '../../net/outbound';
import type { TaskService } from '../../core/tasks';
import type { Caller } from '../../core/teams';
import { usageReport, type UsageQuery } from '../../core/usage';
import { usdOf } from '../../routing/quote';
import type { Router } from '../../routing/router';
import type { Store, TaskRecord, TaskStatus } from '../../store/types';
import { normalizeGeneration } from './normalize';
import { presentTask, type Task } from './present';
import type { WebhookService } from '../../core/webhooks';
import { presentEvents } from '../webhook-events';
import type { ContentSender } from '../asset-content';

export interface NativeRoutesDeps {
  store: Store;
  router: Router;
  tasks: TaskService;
  now: () => number;
  /** Base of the result links; the request's own host when unset. */
  publicUrl?: string;
  retentionMs: number;
  /** The value of one credit, in whole micro-USD. */
  microUsdPerCredit: number;
  /** Checks image and callback URLs at submission. */
  outbound: Outbound;
  webhooks: WebhookService;
  disabledProviders: readonly DisabledProvider[];
  /** Sends stored videos and images (both doors). */
  content: ContentSender;
}

const caller = (res: Response) => res.locals.caller as Caller;

/**
 * The base of the result links: `publicUrl` when set, else the request's own scheme and `Host` (as Express's
 * `req.protocol` gives it without `trust proxy`: https only on a TLS socket); an HTTP/1.0 request without `Host`
 * gets the address and port it reached.
 */
export function requestBaseUrl(publicUrl: string | undefined, req: http.IncomingMessage): string {
  if (publicUrl !== undefined) return publicUrl;
  return `${(req.socket as TLSSocket).encrypted ? 'https' : 'http'}://${req.headers.host ?? reachedAt(req.socket)}`;
}

/** `address:port` of the socket's own end (each a call into the socket: only when there is no Host). */
function reachedAt(socket: http.IncomingMessage['socket']): string {
  const address = socket.localAddress ?? '';
  return `${address.includes(':') ? `[${address}]` : address}:${socket.localPort}`;
}

/** Tasks in the public shape, with their attempts; `baseUrl` from `requestBaseUrl`. */
async function presentAll(deps: NativeRoutesDeps, baseUrl: string, list: TaskRecord[]): Promise<Task[]> {
  const attempts = await deps.tasks.attemptsOf(list);
  return list.map((t) => presentTask(t, attempts.get(t.id) ?? [], { baseUrl, retentionMs: deps.retentionMs }));
}
const present = (deps: NativeRoutesDeps, req: Request, list: TaskRecord[]) => presentAll(deps, requestBaseUrl(deps.publicUrl, req), list);

/**
 * The caller's task `id` in the public shape (the answer to `GET /v1/tasks/{id}`, on the general path and in the
 * status-poll lane of ../status-poll.ts).
 * @throws ApiError 404 `task_not_found` for another owner's task, a deleted one or none.
 */
export async function presentOwnTask(deps: NativeRoutesDeps, caller: Caller, id: string, baseUrl: string): Promise<Task> {
  return (await presentAll(deps, baseUrl, [await deps.tasks.get(caller, id)]))[0]!;
}

/** `POST /v1/videos/generations`, after the API key and the spec's checks: also mounted early by ../app.ts. */
export function createGenerationHandler(deps: NativeRoutesDeps): RequestHandler {
  return async (req, res) => {
    const generation = await normalizeGeneration(req.body as components['schemas']['GenerationRequest'], deps.router, deps.outbound);
    if (asksForFreshTake(req)) generation.cache = false;
    const idempotencyKey = req.get('idempotency-key');
    if (idempotencyKey !== undefined) generation.idempotency_key = idempotencyKey;
    const task = await deps.tasks.submit(caller(res), generation);
    res.status(task.cache_status === 'hit' ? 200 : 202).json((await present(deps, req, [task]))[0]);
  };
}

/** The routes of the native door under /v1: generations, tasks, models, estimates, usage, providers. */
export function createNativeRoutes(deps: NativeRoutesDeps): express.Router {
  const { tasks } = deps;
  const routes = express.Router();
  const presentOne = async (req: Request, t: TaskRecord) => (await present(deps, req, [t]))[0];

  routes.post('/v1/videos/generations', createGenerationHandler(deps));

  routes.get('/v1/tasks', async (req, res) => {
    const query = req.query as { status?: TaskStatus; limit?: number; after?: string };
    const page = await tasks.list(caller(res), { status: query.status, limit: Number(query.limit ?? 20), after: query.after });
    res.json({ object: 'list', data: await present(deps, req, page.tasks), has_more: page.nextCursor !== null, next_cursor: page.nextCursor });
  });

  routes.get('/v1/tasks/:id', async (req, res) => {
    res.json(await presentOwnTask(deps, caller(res), String(req.params.id), requestBaseUrl(deps.publicUrl, req)));
  });

  routes.post('/v1/tasks/:id/cancel', async (req, res) => {
    res.json(await presentOne(req, await tasks.cancel(caller(res), req.params.id!)));
  });

  routes.get('/v1/tasks/:id/deliveries', async (req, res) => {
    res.json(presentEvents(await deps.webhooks.deliveries(caller(res), req.params.id!)));
  });

  routes.post('/v1/tasks/:id/deliveries/redeliver', async (req, res) => {
    res.status(202).json(presentEvents(await deps.webhooks.redeliver(caller(res), req.params.id!, deps.now())));
  });

  routes.get('/v1/tasks/:id/content', async (req, res) => {
    await deps.content.send(req, res, await tasks.videoFile(caller(res), req.params.id!), 'video/mp4');
  });

  routes.get('/v1/models', (_req, res) => {
    res.json({ object: 'list', data: describeCatalog(deps.router), usd_per_credit: usdOf(deps.microUsdPerCredit) });
  });

  routes.post('/v1/estimates', async (req, res) => {
    const { request } = await normalizeGeneration(req.body as components['schemas']['GenerationRequest'], deps.router, deps.outbound);
    const { image_sha256: imageSha256 } = req.query as { image_sha256?: string };
    const quote = estimate(request, deps.router, await deps.store.countActiveByProvider(), deps.microUsdPerCredit);
    const cached = await tasks.cacheOutlook(caller(res), request, imageSha256);
    const cache = cached && { ...cached, usd: usdOf(cached.credits * deps.microUsdPerCredit) };
    // What a submission would reserve: the cache's price, else the quote (the cheapest capable provider's when none is available now).
    const credits = cache?.credits ?? quote.credits ?? quote.options[0]?.credits ?? 0;
    const quota = await quotaOutlook(deps.store, caller(res), credits, deps.now());
    res.json({ ...quote, ...(cache && { cache }), ...(quota && { quota }) });
  });

  routes.get('/v1/usage', async (req, res) => {
    const { team, key } = caller(res);
    res.json(await usageReport(deps.store, team, key, req.query as UsageQuery, deps.now(), deps.microUsdPerCredit));
  });

  routes.get('/v1/providers', async (_req, res) => {
    res.json({ object: 'list', data: describeProviders(deps.router, deps.disabledProviders, await deps.store.countActiveByProvider()) });
  });

  return routes;
}
