// The HTTP app: spec-validated routes, thin handlers over the task service, one error mapper.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type ErrorRequestHandler, type Request, type RequestHandler, type Response } from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
import YAML from 'yaml';
import type { components } from '../generated/vidgate-api';
import type { Router } from '../routing/router';
import type { Store, TaskRecord, TaskStatus } from '../store/types';
import { renderApiReference } from './api-reference';
import { createAdminRouter } from './admin';
import { requireAdminToken, requireApiKey, type Caller } from './auth';
import { ApiError, internalError } from './errors';
import type { Logger } from './logger';
import type { Metrics } from './metrics';
import { normalizeGeneration } from './normalize';
import { presentTask } from './present';
import { describeCatalog } from './catalog';
import { estimate } from './estimate';
import { describeProviders } from './provider-status';
import type { DisabledProvider } from './providers-from-config';
import type { TaskService } from './tasks';
import type { TeamService } from './teams';
import { usageReport, type UsageQuery } from './usage';

export const SPEC_PATH = fileURLToPath(new URL('../../openapi/vidgate.yaml', import.meta.url));

export interface AppDeps {
  store: Store;
  router: Router;
  tasks: TaskService;
  teams: TeamService;
  metrics: Metrics;
  /** Enables /admin when set. */
  adminToken: string | undefined;
  now: () => number;
  log: Logger;
  bodyLimitBytes: number;
  publicUrl?: string;
  retentionMs: number;
  usdPerCredit: number;
  /** Origins exempt from the public-address check of image and callback URLs (url-guard's originsOf). */
  trustedOrigins: ReadonlySet<string>;
  disabledProviders: readonly DisabledProvider[];
  isDraining: () => boolean;
  /** Check every response against the spec too (tests turn this on). */
  validateResponses?: boolean;
}

export function createApp(deps: AppDeps): express.Express {
  const { tasks, metrics } = deps;
  const spec = YAML.parse(fs.readFileSync(SPEC_PATH, 'utf8'));
  const referenceHtml = renderApiReference(spec);
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  // No ETags: a video's would be made from its file's time, and a hit would tell when the original was made.
  app.set('etag', false);

  app.use(recordLatency(metrics));
  app.get('/healthz', (_req, res) => void res.json({ status: 'ok' }));
  app.get('/readyz', async (_req, res) => {
    if (deps.isDraining()) return void res.status(503).json({ status: 'draining' });
    const reachable = await deps.store.countApiKeys().then(() => true, () => false);
    res.status(reachable ? 200 : 503).json({ status: reachable ? 'ok' : 'unavailable' });
  });
  app.get('/metrics', async (_req, res) => {
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.get('/openapi.json', (_req, res) => void res.json(spec));
  app.get('/docs', (_req, res) => void res.type('html').send(referenceHtml));

  app.use('/v1', requireApiKey(deps.store, deps.now));
  app.use('/admin', requireAdminToken(deps.adminToken));
  app.use(express.json({ limit: deps.bodyLimitBytes }));
  app.use(
    OpenApiValidator.middleware({
      apiSpec: SPEC_PATH,
      validateRequests: { allowUnknownQueryParameters: false },
      validateResponses: deps.validateResponses ?? false,
      validateSecurity: false, // requireApiKey checks keys against the store
      ignorePaths: /^\/(healthz|readyz|metrics|openapi\.json|docs)$/,
    }),
  );

  const caller = (res: Response) => res.locals.caller as Caller;
  /** Tasks in the public shape, with their attempts. */
  const present = async (req: Request, list: TaskRecord[]) => {
    const baseUrl = deps.publicUrl ?? `${req.protocol}://${req.get('host')}`;
    const attempts = await tasks.attemptsOf(list);
    return list.map((t) => presentTask(t, attempts.get(t.id) ?? [], { baseUrl, retentionMs: deps.retentionMs }));
  };
  const presentOne = async (req: Request, t: TaskRecord) => (await present(req, [t]))[0];

  app.post('/v1/videos/generations', async (req, res) => {
    const generation = normalizeGeneration(req.body as components['schemas']['GenerationRequest'], deps.router, deps.trustedOrigins);
    if (/\bno-(cache|store)\b/i.test(req.get('cache-control') ?? '')) generation.cache = false;
    const task = await tasks.submit(caller(res), generation);
    res.status(task.cache_status === 'hit' ? 200 : 202).json(await presentOne(req, task));
  });

  app.get('/v1/tasks', async (req, res) => {
    const query = req.query as { status?: TaskStatus; limit?: number; after?: string };
    const page = await tasks.list(caller(res), { status: query.status, limit: Number(query.limit ?? 20), after: query.after });
    res.json({ object: 'list', data: await present(req, page.tasks), has_more: page.nextCursor !== null, next_cursor: page.nextCursor });
  });

  app.get('/v1/tasks/:id', async (req, res) => {
    res.json(await presentOne(req, await tasks.get(caller(res), req.params.id!)));
  });

  app.post('/v1/tasks/:id/cancel', async (req, res) => {
    res.json(await presentOne(req, await tasks.cancel(caller(res), req.params.id!)));
  });

  app.get('/v1/tasks/:id/content', async (req, res) => {
    const file = await tasks.videoPath(caller(res), req.params.id!);
    // sendFile answers Range requests (206, 416) and conditional requests itself.
    // No Last-Modified either, for the same reason as the ETag.
    res.sendFile(file, { lastModified: false, headers: { 'Content-Type': 'video/mp4', 'Cache-Control': 'private, max-age=3600' } });
  });

  app.get('/v1/models', (_req, res) => {
    res.json({ object: 'list', data: describeCatalog(deps.router), usd_per_credit: deps.usdPerCredit });
  });

  app.post('/v1/estimates', async (req, res) => {
    const { request } = normalizeGeneration(req.body as components['schemas']['GenerationRequest'], deps.router, deps.trustedOrigins);
    res.json(estimate(request, deps.router, await deps.store.countActiveByProvider(), deps.usdPerCredit));
  });

  app.get('/v1/usage', async (req, res) => {
    const { team, key } = caller(res);
    res.json(await usageReport(deps.store, team, key, req.query as UsageQuery, deps.now(), deps.usdPerCredit));
  });

  app.use('/admin', createAdminRouter({ store: deps.store, teams: deps.teams, usdPerCredit: deps.usdPerCredit, now: deps.now }));

  app.get('/v1/providers', async (_req, res) => {
    res.json({ object: 'list', data: describeProviders(deps.router, deps.disabledProviders, await deps.store.countActiveByProvider()) });
  });

  app.use(errorHandler(deps.log));
  return app;
}

function recordLatency(metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const end = metrics.httpRequestDuration.startTimer({ method: req.method });
    res.on('finish', () => {
      const route = req.route ? path.posix.join(req.baseUrl ?? '', String(req.route.path)) : 'unmatched';
      end({ route, status: String(res.statusCode) });
    });
    next();
  };
}

type HttpLikeError = Error & {
  status?: number;
  type?: string;
  headers?: Record<string, string>;
  errors?: { path: string; message: string; errorCode?: string }[];
};

/** Every error, whatever threw it, leaves in the documented shape. */
function toApiError(err: HttpLikeError): ApiError {
  if (err instanceof ApiError) return err;
  if (err.type === 'entity.too.large') {
    return new ApiError(413, 'request_too_large_error', 'body_too_large', 'the request body is over the size limit');
  }
  if (err.type === 'entity.parse.failed') {
    return new ApiError(400, 'invalid_request_error', 'invalid_json', 'the request body is not valid JSON');
  }
  if (err.type === 'charset.unsupported' || err.type === 'encoding.unsupported') {
    return new ApiError(415, 'unsupported_media_type_error', 'unsupported_media_type', 'send the body as JSON in UTF-8, uncompressed or gzip/deflate');
  }
  if (err.status === 416) {
    // From sendFile; its headers carry the Content-Range with the file's size.
    return new ApiError(416, 'invalid_request_error', 'range_not_satisfiable', 'the requested range is outside the video', 'Range', err.headers);
  }
  if (Array.isArray(err.errors) && typeof err.status === 'number') return fromValidationError(err);
  return internalError();
}

function fromValidationError(err: HttpLikeError): ApiError {
  const first = err.errors?.[0];
  switch (err.status) {
    case 404:
      return new ApiError(404, 'not_found_error', 'route_not_found', 'no such route; see /docs');
    case 405:
      return new ApiError(405 as number, 'invalid_request_error', 'method_not_allowed', err.message);
    case 413:
      return new ApiError(413, 'request_too_large_error', 'body_too_large', 'the request body is over the size limit');
    case 415:
      return new ApiError(415, 'unsupported_media_type_error', 'unsupported_media_type', 'send the body as application/json');
  }
  if (err.status !== 400 || !first) return internalError();
  // Paths look like "/body/duration", "/query/limit" or "/body/image_urls/0".
  const [, where, ...rest] = first.path.split('/');
  const param = rest.length ? rest.join('.') : (where ?? null);
  const code = first.errorCode?.startsWith('required') ? 'missing_field' : first.errorCode?.startsWith('additionalProperties') ? 'unknown_field' : 'invalid_value';
  return new ApiError(400, 'invalid_request_error', code, `${param ?? 'request'}: ${first.message}`, param);
}

function errorHandler(log: Logger): ErrorRequestHandler {
  return (err: HttpLikeError, req, res, _next) => {
    const apiError = toApiError(err);
    if (apiError.status >= 500) log.error('request failed', { method: req.method, path: req.path, error: err.message, stack: err.stack });
    if (res.headersSent) return void res.end();
    res.status(apiError.status).set(apiError.headers).json(apiError.toBody());
  };
}
