// The native front door's request -> one NormalizedRequest, checked against what the providers offer.
// The spec has already checked types and enums; this checks what depends on the catalog.
import type { components } from '../../generated/vidgate-api';
import { tierOfSize, type NormalizedRequest, type VideoSize } from '../../providers/types';
import { assertOffered, offersOf } from '../offers';
import type { Router } from '../../routing/router';
import { invalidRequest } from '../../core/errors';
import type { NormalizedGeneration } from '../../core/tasks';
import type { Outbound } from '../../net/outbound';

type GenerationRequest = components['schemas']['GenerationRequest'];
type AspectRatio = components['schemas']['AspectRatio'];
type Quality = components['schemas']['Quality'];

const ORIENTATION_SIZES = {
  '16:9': { '720p': '1280x720', '1080p': '1792x1024' },
  '9:16': { '720p': '720x1280', '1080p': '1024x1792' },
} as const satisfies Record<string, Record<Quality, VideoSize>>;

export const DEFAULT_MODEL = 'sora-2';

/**
 * The request as one NormalizedGeneration. Image and callback URLs are checked by `outbound.checkUrl` (host names
 * resolved: one that resolves only to internal addresses is refused).
 * @throws ApiError 400 (invalid_value, invalid_url naming the field, or what assertOffered throws).
 */
export async function normalizeGeneration(body: GenerationRequest, router: Router, outbound: Outbound): Promise<NormalizedGeneration> {
  const model = body.model ?? DEFAULT_MODEL;
  offersOf(router, model, 'model');
  const prompt = body.prompt.trim();
  if (!prompt) throw invalidRequest('invalid_value', 'prompt must not be blank', 'prompt');
  const size = resolveSize(body.aspect_ratio ?? '9:16', body.quality);
  const duration_s = body.duration ?? 4;

  const image_url = body.image_urls?.[0];
  if (image_url !== undefined) {
    const problem = await outbound.checkUrl(image_url);
    if (problem) throw invalidRequest('invalid_url', `image_urls[0] ${problem}`, 'image_urls');
  }
  if (body.callback_url !== undefined) {
    const problem = await outbound.checkUrl(body.callback_url);
    if (problem) throw invalidRequest('invalid_url', `callback_url ${problem}`, 'callback_url');
  }

  const request: NormalizedRequest = { model, prompt, size, duration_s };
  if (image_url !== undefined) request.image_url = image_url;
  if (body.resize_mode !== undefined) request.resize_mode = body.resize_mode;
  assertOffered(request, router, { model: 'model', size: 'aspect_ratio', tier: 'quality', duration: 'duration' });
  return { request, callback_url: body.callback_url ?? null, cache: body.cache !== false };
}

function resolveSize(aspect: AspectRatio, quality: Quality | undefined): VideoSize {
  if (aspect === '16:9' || aspect === '9:16') return ORIENTATION_SIZES[aspect][quality ?? '720p'];
  if (quality && (quality === '1080p') !== (tierOfSize(aspect) === 'high')) {
    throw invalidRequest('invalid_value', `quality ${quality} contradicts aspect_ratio ${aspect}`, 'quality');
  }
  return aspect;
}
