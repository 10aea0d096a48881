// The HTTP app: the parts every door shares (health, metrics, the spec and its reference page, the playground, API keys,
// spec validation, the one error mapper), with each front door mounted from its own folder.
import crypto from 'node:crypto';
import fs from 'node:fs';
import type http from 'node:http';
import express, { type RequestHandler } from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
import YAML from 'yaml';
import { projectPath } from '../project-root';
import type { Logger } from '../core/logger';
import type { Metrics } from '../core/metrics';
import type { TeamService } from '../core/teams';
import { ApiError } from '../core/errors';
import { createAdminRouter } from './admin/routes';
import { API_REFERENCE_CSP, API_REFERENCE_HTML, REDOC_BUNDLE_PATH } from './api-reference';
import { requireAdminToken, requireApiKey } from './auth';
import { cacheOpenApiRouteMatching } from './openapi-route-cache';
import { createRouteTemplates } from './route-templates';
import { RAW_ANSWER_STATUS } from './server';
import { errorHandler } from './error-handler';
import { refuseInexactNumbers } from './exact-numbers';
import { createImageLinkRoutes, type ImageLinkRoutesDeps } from './image-links';
import { createGenerationHandler, createNativeRoutes, type NativeRoutesDeps } from './native/routes';
import { earlySubmission } from './early-submission';
import { operationValidators, type Spec } from './spec-validators';
import { createOpenAIRoutes } from './openai/routes';
import { createPlaygroundRoutes } from './playground';
import { inSequence } from './in-sequence';
import { sendJsonDirectly } from './send-json';
import { createProviderWebhookRoutes, keepWebhookBody, type ProviderWebhookRoutesDeps } from './provider-webhooks';
import { requestLogging, requestStartedMs } from './request-log';
import { withStatusPollLane } from './status-poll';

export const SPEC_PATH = projectPath('openapi/vidgate.yaml');
/** The largest uploaded file accepted (413 above): above the 10 MB an image may have, so that one a little over gets a 400 saying why. */
const MAX_UPLOAD_BYTES = 25 * 1024 * 1024;

/** What the app needs: the doors' dependencies and the shared middleware's. */
export interface AppDeps extends NativeRoutesDeps, ImageLinkRoutesDeps, ProviderWebhookRoutesDeps {
  teams: TeamService;
  metrics: Metrics;
  /** Enables /admin when set. */
  adminToken: string | undefined;
  /** When set, `GET /metrics` requires `Authorization: Bearer <metricsToken>` (`metrics.bearer_token_env`). */
  metricsToken?: string;
  log: Logger;
  bodyLimitBytes: number;
  isDraining: () => boolean;
  /** Check every response against the spec too (tests turn this on). */
  validateResponses?: boolean;
}

/**
 * The gateway's request listener: the Express app, behind the status-poll lane of ./status-poll.ts (not while
 * responses are checked against the spec: that check is express-openapi-validator's, on the general path).
 */
export function createApp(deps: AppDeps): http.RequestListener {
  const spec = YAML.parse(fs.readFileSync(SPEC_PATH, 'utf8'));
  const app = createExpressApp(deps, spec);
  return deps.validateResponses ? app : withStatusPollLane(spec, deps, app);
}

/** The Express app: every route of the spec, and the parts the doors share. */
function createExpressApp(deps: AppDeps, spec: Spec): express.Express {
  const { metrics } = deps;
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  // No ETags: a video's would be made from its file's time, and a hit would tell when the original was made.
  app.set('etag', false);
  sendJsonDirectly(app);

  const routeOf = createRouteTemplates(Object.keys(spec.paths));
  app.use(requestLogging(deps.log, routeOf));
  app.use(recordLatency(metrics, routeOf));
  app.use(headAsGet);
  const apiKey = requireApiKey(deps.store, deps.now);
  const json = express.json({ limit: deps.bodyLimitBytes, verify: keepWebhookBody });
  const exactNumbers = refuseInexactNumbers();
  // The create, the traffic's other half, ahead of the rest (see early-submission.ts). Not while responses are
  // checked against the spec: that check is express-openapi-validator's, on the general path.
  if (!deps.validateResponses) {
    const path = '/v1/videos/generations';
    app.post(path, ...earlySubmission(path, operationValidators(spec, path, 'post'), apiKey, json, exactNumbers, createGenerationHandler(deps)));
  }
  app.get('/healthz', (_req, res) => void res.json({ status: 'ok' }));
  app.get('/readyz', async (_req, res) => {
    if (deps.isDraining()) return void res.status(503).json({ status: 'draining' });
    const reachable = await deps.store.countApiKeys().then(() => true, () => false);
    res.status(reachable ? 200 : 503).json({ status: reachable ? 'ok' : 'unavailable' });
  });
  const metricsAuth = requireMetricsToken(deps.metricsToken);
  app.get('/metrics', async (req, res) => {
    metricsAuth(req.get('authorization'));
    res.type(metrics.registry.contentType).send(await metrics.registry.metrics());
  });
  app.get('/openapi.json', (_req, res) => void res.json(spec));
  app.get('/docs', (_req, res) => void res.type('html').set('Content-Security-Policy', API_REFERENCE_CSP).send(API_REFERENCE_HTML));
  app.get('/docs/redoc.standalone.js', (_req, res) => void res.sendFile(REDOC_BUNDLE_PATH, { headers: { 'Cache-Control': 'public, max-age=86400' } }));
  app.use(createPlaygroundRoutes());

  app.use('/v1', apiKey);
  app.use('/admin', requireAdminToken(deps.adminToken));
  app.use(json);
  app.use(refuseEncodedMultipart);
  cacheOpenApiRouteMatching();
  app.use(
    inSequence(OpenApiValidator.middleware({
      apiSpec: SPEC_PATH,
      validateRequests: { allowUnknownQueryParameters: false },
      validateResponses: deps.validateResponses ?? false,
      validateSecurity: false, // requireApiKey checks keys against the store
      // Multipart bodies (the OpenAI door) are parsed by multer into memory and validated like JSON ones.
      fileUploader: { limits: { fileSize: MAX_UPLOAD_BYTES, files: 1, fields: 20 } },
    })),
  );
  app.use(exactNumbers);

  app.use(createNativeRoutes(deps));
  app.use(createOpenAIRoutes(deps));
  app.use(createImageLinkRoutes(deps));
  app.use(createProviderWebhookRoutes(deps));
  app.use('/admin', createAdminRouter({ store: deps.store, teams: deps.teams, microUsdPerCredit: deps.microUsdPerCredit, now: deps.now, webhooks: deps.webhooks, log: deps.log }));
  // Whatever the validator let through and no route took: JSON, never Express's HTML 404.
  app.use((_req, _res, next) => next(new ApiError(404, 'not_found_error', 'route_not_found', 'no such route; see /docs')));

  app.use(errorHandler(deps.log));
  return app;
}

/**
 * Times every request into `vidgate_http_request_duration_seconds`, labelled with the spec's route template of its
 * path (`routeOf`), so a request refused by any stage (auth, rate limits, validation, the server's
 * own 408 for a body not received in time) has its route. A request whose client went away unanswered is not counted.
 */
function recordLatency(metrics: Metrics, routeOf: (path: string) => string): RequestHandler {
  return (req, res, next) => {
    const startedMs = requestStartedMs(req);
    const { method } = req;
    // The path as it came: the routers below rewrite req.url while they run.
    const url = req.originalUrl;
    const end = (status: number) => metrics.httpRequestDuration.observe({ method, route: routeOf(url), status: String(status) }, (performance.now() - startedMs) / 1000);
    res.on('finish', () => end(res.statusCode));
    res.on('close', () => {
      const raw = (res as typeof res & { [RAW_ANSWER_STATUS]?: number })[RAW_ANSWER_STATUS];
      if (!res.writableFinished && raw !== undefined) end(raw);
    });
    next();
  };
}

/**
 * A check of `GET /metrics`' Authorization header against `token` (nothing to check without one): the header's
 * token and `token` are compared by their SHA-256 digests in constant time, so neither their contents nor their
 * lengths show in the time taken.
 * @throws ApiError 401 `invalid_metrics_token` when the header does not carry the token.
 */
function requireMetricsToken(token: string | undefined): (authorization: string | undefined) => void {
  if (token === undefined) return () => {};
  const expected = crypto.createHash('sha256').update(token).digest();
  return (authorization) => {
    const given = /^Bearer (.+)$/i.exec(authorization ?? '')?.[1] ?? '';
    if (crypto.timingSafeEqual(crypto.createHash('sha256').update(given).digest(), expected)) return;
    throw new ApiError(401, 'authentication_error', 'invalid_metrics_token', 'GET /metrics needs Authorization: Bearer <metrics token> (metrics.bearer_token_env)', null, { 'WWW-Authenticate': 'Bearer' });
  };
}

/** The multipart parser reads bodies as they are: a compressed one would be misread, so it is refused. */
const refuseEncodedMultipart: RequestHandler = (req, _res, next) => {
  const encoding = (req.get('content-encoding') ?? 'identity').trim().toLowerCase();
  if (encoding === 'identity' || !req.is('multipart/form-data')) return next();
  next(new ApiError(415, 'unsupported_media_type_error', 'unsupported_media_type', 'send multipart bodies uncompressed (no Content-Encoding)', 'Content-Encoding'));
};

/**
 * HEAD is GET without the body (RFC 9110 §9.3.2), on every GET route of the spec: it is validated, counted and routed
 * as GET. The response was made for a HEAD request, so Node sends the headers only.
 */
const headAsGet: RequestHandler = (req, _res, next) => {
  if (req.method === 'HEAD') req.method = 'GET';
  next();
};
