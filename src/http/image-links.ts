// GET /images/{sha256}: an uploaded reference image, for the provider that was given a signed link to it
// (src/core/image-links.ts). No API key: the signature and its expiry are the credential.
import express from 'express';
import { ApiError } from '../core/errors';
import { mediaTypeOf } from '../core/image-check';
import type { ImageLinks } from '../core/image-links';
import type { ReferenceImages } from '../core/reference-images';

export interface ImageLinkRoutesDeps {
  images: ReferenceImages;
  /** Absent without `server.public_url`: then no link exists, and every request answers 404. */
  imageLinks?: ImageLinks;
}

const notFound = () => new ApiError(404, 'not_found_error', 'image_not_found', 'no such image, or the link has expired');

export function createImageLinkRoutes(deps: ImageLinkRoutesDeps): express.Router {
  const routes = express.Router();
  routes.get('/images/:sha256', async (req, res) => {
    const { sha256 } = req.params;
    const { expires, signature } = req.query as unknown as { expires: number; signature: string };
    // A bad signature, an expired link and an unknown image answer alike.
    if (!deps.imageLinks?.verify(sha256, Number(expires), signature)) throw notFound();
    const bytes = await deps.images.read(sha256);
    if (!bytes) throw notFound();
    res.type(mediaTypeOf(bytes) ?? 'application/octet-stream').set('Cache-Control', 'private, no-store').send(bytes);
  });
  return routes;
}
