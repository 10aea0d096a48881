// The HTTP app: the parts every door shares (health, metrics, the spec and its reference page, the playground, API keys,
// spec validation, the one error mapper), with each front door mounted from its own folder.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type RequestHandler } from 'express';
import * as OpenApiValidator from 'express-openapi-validator';
import YAML from 'yaml';
import type { Logger } from '../core/logger';
import type { Metrics } from '../core/metrics';
import type { TeamService } from '../core/teams';
import { ApiError } from '../core/errors';
import { createAdminRouter } from './admin/routes';
import { API_REFERENCE_CSP, API_REFERENCE_HTML, REDOC_BUNDLE_PATH } from './api-reference';
import { requireAdminToken, requireApiKey } from './auth';
import { cacheOpenApiRouteMatching } from './openapi-route-cache';
import { errorHandler } from './error-handler';
import { refuseInexactNumbers } from './exact-numbers';
import { createImageLinkRoutes, type ImageLinkRoutesDeps } from './image-links';
import { createNativeRoutes, getTaskHandler, type NativeRoutesDeps } from './native/routes';
import { earlyRoute, pathParamsValidator } from './early-route';
import { createOpenAIRoutes } from './openai/routes';
import { createPlaygroundRoutes } from './playground';
import { inSequence } from './in-sequence';
import { sendJsonDirectly } from './send-json';
import { createProviderWebhookRoutes, keepWebhookBody, type ProviderWebhookRoutesDeps } from './provider-webhooks';
import { requestLogging } from './request-log';

export const SPEC_PATH = fileURLToPath(new URL('../../openapi/vidgate.yaml', import.meta.url));
/** The largest uploaded file accepted (413 above): above the 10 MB an image may have, so that one a little over gets a 400 saying why. */
const MAX_UPLOAD_BYTES = 25 * 1024 * 1024;

/** What the app needs: the doors' dependencies and the shared middleware's. */
export interface AppDeps extends NativeRoutesDeps, ImageLinkRoutesDeps, ProviderWebhookRoutesDeps {
  teams: TeamService;
  metrics: Metrics;
  /** Enables /admin when set. */
  adminToken: string | undefined;
  log: Logger;
  bodyLimitBytes: number;
  isDraining: () => boolean;
  /** Check every response against the spec too (tests turn this on). */
  validateResponses?: boolean;
}

export function createApp(deps: AppDeps): express.Express {
  const { metrics } = deps;
  const spec = YAML.parse(fs.readFileSync(SPEC_PATH, 'utf8'));
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', false);
  // No ETags: a video's would be made from its file's time, and a hit would tell when the original was made.
  app.set('etag', false);
  sendJsonDirectly(app);

  app.use(requestLogging(deps.log));
  app.use(recordLatency(metrics));
  app.use(headAsGet);
  const apiKey = requireApiKey(deps.store, deps.now);
  // The status poll, most of the traffic, ahead of the rest (see early-route.ts). Not while responses are checked
  // against the spec: that check is express-openapi-validator's, on the general path.
  if (!deps.validateResponses) {
    app.get('/v1/tasks/:id', ...earlyRoute(pathParamsValidator(spec, '/v1/tasks/{id}', 'get'), apiKey, getTaskHandler(deps)));
  }
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
  app.get('/docs', (_req, res) => void res.type('html').set('Content-Security-Policy', API_REFERENCE_CSP).send(API_REFERENCE_HTML));
  app.get('/docs/redoc.standalone.js', (_req, res) => void res.sendFile(REDOC_BUNDLE_PATH, { headers: { 'Cache-Control': 'public, max-age=86400' } }));
  app.use(createPlaygroundRoutes());

  app.use('/v1', apiKey);
  app.use('/admin', requireAdminToken(deps.adminToken));
  app.use(express.json({ limit: deps.bodyLimitBytes, verify: keepWebhookBody }));
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
  app.use(refuseInexactNumbers());

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
