// The provider adapter contract. Everything a provider differs in is data (its catalog);
// everything the gateway asks of it is these calls.
import type { Readable } from 'node:stream';

/** Output sizes, by orientation and tier (see docs/architecture.md, "Sizes and tiers"). */
export const SIZES = ['1280x720', '720x1280', '1792x1024', '1024x1792'] as const;
export type VideoSize = (typeof SIZES)[number];
export type SizeTier = 'standard' | 'high';
export const DURATIONS_S = [4, 8, 12] as const;
export type DurationS = (typeof DURATIONS_S)[number];

export function tierOfSize(size: VideoSize): SizeTier {
  return size === '1792x1024' || size === '1024x1792' ? 'high' : 'standard';
}

/** One request, whatever front door it came through. */
export interface NormalizedRequest {
  model: string;
  prompt: string;
  size: VideoSize;
  duration_s: DurationS;
  image_url?: string;
  /** An uploaded reference image, stored by vidgate under its SHA-256; its bytes reach the adapter in CallContext.image. */
  image_asset?: { sha256: string; media_type: 'image/jpeg' | 'image/png' | 'image/webp' };
  resize_mode?: 'pad' | 'crop';
  /** A remix: a new video from the provider's own earlier job (only that provider can serve it). */
  remix_of?: RemixSource;
}

/** The video a remix starts from: the provider and upstream job that made it, and its public id. */
export interface RemixSource {
  video_id: string;
  provider_id: string;
  upstream_id: string;
}

/** One model as one provider offers it. Prices are USD per generated second. */
export interface ModelOffer {
  model: string;
  upstream_model: string;
  sizes: VideoSize[];
  durations_s: DurationS[];
  image_input: boolean;
  usd_per_second: { standard: number; high?: number };
}

export interface CallContext {
  /** Stable across retries of the same attempt, so that a resubmission after a crash is not a second job. */
  idempotencyKey?: string;
  signal?: AbortSignal;
  /**
   * The request's reference image for an adapter whose `reference_image` capability is `bytes`: fitted by vidgate
   * to the request's exact size (PNG), or an upload as it was given where it could not be fitted. Absent when there
   * is no image, or a URL's image could not be read: the adapter then sends the URL.
   */
  image?: { bytes: Buffer; media_type: string };
  /** For a create whose lost answer nothing else could recover: see LateAnswer. */
  lateAnswer?: LateAnswer;
}

/**
 * A create's answer awaited past the timeout: at the timeout `onTimeout` is told (the provider is late, which
 * counts against it at once), and the answer is awaited `grace_ms` longer, so that a job made by a slow
 * provider that neither honours idempotency keys nor lists its jobs is still learned, not orphaned.
 */
export interface LateAnswer {
  grace_ms: number;
  onTimeout: () => void;
}

/**
 * What the workers and routing must know about a provider, declared as data (after vercel/ai's video model
 * contract, whose optional members declare capabilities). Optional methods of ProviderAdapter (`cancel`,
 * `findJob`) declare theirs by their presence.
 */
export interface ProviderCapabilities {
  /**
   * The provider honours `CallContext.idempotencyKey`: a create sent again under the same key answers with the
   * first job, never a second (paid) one. Where false, a create whose answer was lost is never sent again.
   */
  idempotency_keys: boolean;
  /**
   * How the provider takes a reference image. `bytes`: the adapter uploads the image that vidgate fitted to the
   * requested size (`CallContext.image`), so its pixel size is never refused. `url`: the adapter sends the URL
   * with `resize_mode` (pad by default), and the provider fits the image itself.
   */
  reference_image: 'bytes' | 'url';
}

/** Bounds of a search for the job a create made: the create was sent within [from_ms, to_ms] (epoch ms). */
export interface CreateWindow {
  from_ms: number;
  to_ms: number;
}

/**
 * Logs something worth an operator's eye once per adapter (e.g. an upstream status the wire format does not
 * list). Adapters import nothing of core, so the composition root passes the logger's warn in.
 */
export type AdapterWarn = (message: string, fields: Record<string, unknown>) => void;

/**
 * A job's state. `poll_after_ms`: how long the provider asks its clients to wait before asking again, where it
 * says so (OpenAI-shaped hosts: the `openai-poll-after-ms` response header, upstream-apis.md section 1).
 */
export type PollResult =
  | { state: 'pending' | 'processing'; progress: number; poll_after_ms?: number }
  | { state: 'completed' }
  | { state: 'failed'; error: ProviderError };

export interface ProviderAdapter {
  readonly id: string;
  readonly kind: string;
  readonly catalog: readonly ModelOffer[];
  readonly capabilities: ProviderCapabilities;
  submit(request: NormalizedRequest, ctx: CallContext): Promise<{ upstreamId: string }>;
  poll(upstreamId: string, ctx: CallContext): Promise<PollResult>;
  /** The finished MP4 as a byte stream. */
  download(upstreamId: string, ctx: CallContext): Promise<Readable>;
  /** Absent where the provider cannot cancel. */
  cancel?(upstreamId: string, ctx: CallContext): Promise<void>;
  /**
   * An active health check: one cheap authenticated call that creates nothing and costs nothing (e.g. GET of a
   * job id that cannot exist, which must answer a well-formed 404). Resolves when the provider is up; throws a
   * ProviderError (with `retryAfterMs` when the provider sent one) when not. Absent: the breaker's cool-down
   * alone decides when a task may probe the provider again.
   */
  checkHealth?(ctx: CallContext): Promise<void>;
  /**
   * Reconciliation of a create whose answer was lost: the ids of upstream jobs that match this request
   * (model, prompt, size, seconds) and were created within `window`, oldest first. Absent where the
   * provider cannot list its jobs.
   */
  findJob?(request: NormalizedRequest, window: CreateWindow, ctx: CallContext): Promise<string[]>;
  /** Frees the provider's copy of a finished video once the gateway has stored its own; absent where there is none to free. */
  release?(upstreamId: string, ctx: CallContext): Promise<void>;
  /**
   * A new job that remixes the finished job `upstreamId` with `request.prompt`; absent where the provider
   * cannot remix (its presence is the capability).
   */
  remix?(upstreamId: string, request: NormalizedRequest, ctx: CallContext): Promise<{ upstreamId: string }>;
}

/**
 * Every failure an adapter reports. `retryable` means the provider is at fault (network, timeout,
 * 408, 429, 5xx, provider-side task errors): try again or elsewhere. Otherwise the request is at
 * fault and retrying anywhere would fail the same way.
 */
export class ProviderError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable: boolean,
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ProviderError';
  }
}

function serves(offer: ModelOffer, request: NormalizedRequest): boolean {
  return (
    offer.model === request.model &&
    offer.sizes.includes(request.size) &&
    offer.durations_s.includes(request.duration_s) &&
    (!(request.image_url || request.image_asset) || offer.image_input)
  );
}

/**
 * Whether this adapter may serve the request at all: a remix goes only to the provider of its original, if it
 * can remix; an uploaded image only to one that sends bytes, unless vidgate can serve the image at a link
 * (`imageLinks`).
 */
export function canTake(adapter: ProviderAdapter, request: NormalizedRequest, imageLinks = false): boolean {
  if (request.image_asset && adapter.capabilities.reference_image === 'url' && !imageLinks) return false;
  return !request.remix_of || (adapter.id === request.remix_of.provider_id && adapter.remix !== undefined);
}

export function offerFor(adapter: ProviderAdapter, request: NormalizedRequest): ModelOffer | undefined {
  return adapter.catalog.find((o) => serves(o, request));
}

/** The catalog's offer for this exact request; a terminal `invalid_parameters` error saying why when none. */
export function requireOffer<O extends ModelOffer>(catalog: readonly O[], request: NormalizedRequest): O {
  const offer = catalog.find((o) => serves(o, request));
  if (offer) return offer;
  const { model, size, duration_s } = request;
  const sameModel = catalog.filter((o) => o.model === model);
  const reason =
    sameModel.length === 0
      ? `unknown model '${model}'`
      : !sameModel.some((o) => o.sizes.includes(size))
        ? `model '${model}' does not support size '${size}'`
        : !sameModel.some((o) => o.durations_s.includes(duration_s))
          ? `model '${model}' does not support duration ${duration_s}s`
          : `model '${model}' does not accept an input image`;
  throw new ProviderError('invalid_parameters', reason, false);
}
