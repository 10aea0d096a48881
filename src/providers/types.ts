// The provider adapter contract. Everything a provider differs in is data (its catalog);
// everything the gateway asks of it is these four calls.
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
  /** The bytes of the request's uploaded image (`image_asset`), for adapters that send them (`image_bytes`). */
  image?: { bytes: Buffer; media_type: string };
}

export type PollResult =
  | { state: 'pending' | 'processing'; progress: number }
  | { state: 'completed' }
  | { state: 'failed'; error: ProviderError };

export interface ProviderAdapter {
  readonly id: string;
  readonly kind: string;
  readonly catalog: readonly ModelOffer[];
  /** Sends an uploaded image's bytes itself (CallContext.image); without it, an uploaded image needs a link to it. */
  readonly image_bytes?: boolean;
  submit(request: NormalizedRequest, ctx: CallContext): Promise<{ upstreamId: string }>;
  poll(upstreamId: string, ctx: CallContext): Promise<PollResult>;
  /** The finished MP4 as a byte stream. */
  download(upstreamId: string, ctx: CallContext): Promise<Readable>;
  /** Absent where the provider cannot cancel. */
  cancel?(upstreamId: string, ctx: CallContext): Promise<void>;
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
  if (request.image_asset && !adapter.image_bytes && !imageLinks) return false;
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
