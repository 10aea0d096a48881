// Sends a stored file (a video, or an image made from it) from either asset store: one code path over the
// store's `open`, with single-range requests (RFC 9110 §14), or a redirect to a presigned URL where allowed.
import type { Request, Response } from 'express';
import { pipeline } from 'node:stream/promises';
import rangeParser from 'range-parser';
import { AssetMissing, type AssetStore, type ByteRange } from '../assets/types';
import { ApiError, gone } from '../core/errors';
import type { StoredFile } from '../core/tasks';

export interface ContentSender {
  /**
   * Answers `req` with `file`: 200 with the whole file; 206 with `Content-Range` for one satisfiable byte range
   * (`bytes=a-b`, `bytes=a-`, `bytes=-n`); 416 `range_not_satisfiable` for none; the whole file for a malformed
   * Range, several ranges, or any `If-Range` (no validators are sent, so none can match). With a redirect TTL and a
   * store that presigns, 302 to a presigned URL instead. No ETag or Last-Modified: they would date a cache hit's original.
   * @throws ApiError 410 `video_expired` when the file was removed since it was found; AssetStoreError when the store fails.
   */
  send(req: Request, res: Response, file: StoredFile, contentType: string): Promise<void>;
}

/** `redirectTtlS`: answer 302 to a presigned URL valid that long (S3 only) rather than streaming the bytes. */
export function createContentSender(assets: AssetStore, redirectTtlS?: number): ContentSender {
  return {
    async send(req, res, file, contentType) {
      if (redirectTtlS !== undefined && assets.presign) {
        const url = await assets.presign(file.ref, redirectTtlS);
        // Not cached: the URL stops working after redirectTtlS.
        return void res.status(302).set({ Location: url, 'Cache-Control': 'no-store' }).end();
      }
      const size = file.size_bytes;
      const range = requestedRange(req, size);
      const body = req.method === 'HEAD' ? undefined : await assets.open(file.ref, range).catch((err: unknown) => {
        throw err instanceof AssetMissing ? gone('video_expired', 'the video has passed its retention and was deleted') : err;
      });
      res.status(range ? 206 : 200).set({
        'Content-Type': contentType,
        'Content-Length': String(range ? range.end - range.start + 1 : size),
        'Accept-Ranges': 'bytes',
        'Cache-Control': 'private, max-age=3600',
        ...(range && { 'Content-Range': `bytes ${range.start}-${range.end}/${size}` }),
      });
      if (!body) return void res.end();
      await pipeline(body, res);
    },
  };
}

/**
 * The one range to send, or undefined for the whole file.
 * @throws ApiError 416 when the Range header asks only for bytes past the end (with `Content-Range: bytes *\/size`).
 */
function requestedRange(req: Request, size: number): ByteRange | undefined {
  const header = req.headers.range;
  if (header === undefined || req.headers['if-range'] !== undefined) return undefined;
  const parsed = rangeParser(size, header, { combine: true });
  if (parsed === -1) {
    throw new ApiError(416, 'invalid_request_error', 'range_not_satisfiable', 'the requested range is outside the video', 'Range', { 'Content-Range': `bytes */${size}` });
  }
  return Array.isArray(parsed) && parsed.type === 'bytes' && parsed.length === 1 ? parsed[0] : undefined;
}
