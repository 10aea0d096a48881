// Signed, expiring links to uploaded reference images, for providers that take an image only by URL (the task
// API). A link is `<public_url>/images/<sha256>?expires=<unix s>&signature=<hex>`, the signature an
// HMAC-SHA256 of "<sha256>.<expires>" under a key kept in the data directory (so every process of one
// installation, and a restarted one, accepts the others' links).
import crypto from 'node:crypto';
import { loadOrCreateKey } from './key-file';

/** How long a link works: long enough for a provider to fetch the image after the submission. */
export const IMAGE_LINK_TTL_MS = 60 * 60 * 1000;

export interface ImageLinks {
  /** A link to the stored image `sha256`, valid for IMAGE_LINK_TTL_MS from now. */
  sign(sha256: string): string;
  /** Whether `signature` is this installation's for `sha256` and `expiresS` (unix s), and has not expired. */
  verify(sha256: string, expiresS: number, signature: string): boolean;
}

/** `publicUrl` is the server's public base URL (config `server.public_url`); `keyFile` holds the HMAC key, made on first use. */
export function createImageLinks(publicUrl: string, keyFile: string, now: () => number): ImageLinks {
  const key = loadOrCreateKey(keyFile);
  const mac = (sha256: string, expiresS: number) => crypto.createHmac('sha256', key).update(`${sha256}.${expiresS}`).digest('hex');
  const base = publicUrl.replace(/\/+$/, '');
  return {
    sign(sha256) {
      const expiresS = Math.floor((now() + IMAGE_LINK_TTL_MS) / 1000);
      return `${base}/images/${sha256}?expires=${expiresS}&signature=${mac(sha256, expiresS)}`;
    },
    verify(sha256, expiresS, signature) {
      const expected = Buffer.from(mac(sha256, expiresS), 'hex');
      const given = Buffer.from(signature, 'hex');
      return given.length === expected.length && crypto.timingSafeEqual(given, expected) && expiresS * 1000 > now();
    },
  };
}
