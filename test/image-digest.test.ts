// readImage against a real HTTP server: what it reads (compared by hash), and everything it refuses.
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readImage, type ImageReadOptions } from '../src/core/image-digest';
import { createOutbound } from '../src/net/outbound';

/** SHA-256 of what readImage read, or null when it refused. */
async function imageDigest(url: string, opts: ImageReadOptions): Promise<string | null> {
  const read = await readImage(url, opts);
  return 'bytes' in read ? createHash('sha256').update(read.bytes).digest('hex') : null;
}

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3, 4, 5, 6, 7, 8]);
const OTHER = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 8, 7, 6, 5, 4, 3, 2, 1]);
const MAX_BYTES = 1024;
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

const received: string[] = [];
let server: http.Server;
let origin: string;
let bigBodyAborted: Promise<boolean>;
let markBigBodyAborted: (aborted: boolean) => void;

beforeAll(async () => {
  bigBodyAborted = new Promise((resolve) => (markBigBodyAborted = resolve));
  server = http.createServer((req, res) => {
    received.push(req.url ?? '');
    switch (req.url) {
      case '/a.png':
      case '/copy/of/a.png?x=1':
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': PNG.length }).end(PNG);
        return;
      case '/b.png':
        res.writeHead(200, { 'content-type': 'image/png' }).end(OTHER);
        return;
      case '/untyped':
        res.writeHead(200).end(PNG);
        return;
      case '/missing.png':
        res.writeHead(404, { 'content-type': 'image/png' }).end(PNG);
        return;
      case '/moved.png':
        res.writeHead(302, { location: '/a.png', 'content-type': 'image/png' }).end();
        return;
      case '/page.html':
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end('<html></html>');
        return;
      case '/declared-big.png':
        // Declares too much, then stalls after a few bytes: only the content-length check refuses it quickly.
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': MAX_BYTES + 1 });
        res.write(PNG);
        return;
      case '/streamed-big.png': {
        // No content-length (chunked), and far more than MAX_BYTES, sent slowly: only the
        // client giving up ends it early.
        res.writeHead(200, { 'content-type': 'image/png' });
        let sent = 0;
        const timer = setInterval(() => {
          if (sent >= 200) {
            clearInterval(timer);
            res.end();
            markBigBodyAborted(false);
            return;
          }
          res.write(Buffer.alloc(256, sent++));
        }, 5);
        res.on('close', () => {
          clearInterval(timer);
          markBigBodyAborted(sent < 200);
        });
        return;
      }
      case '/hang.png':
        return; // never answers
      default:
        res.writeHead(500).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const trusted = (): ImageReadOptions => ({ maxBytes: MAX_BYTES, timeoutMs: 300, outbound: createOutbound({ trusted_origins: [origin] }) });

describe('readImage from a trusted origin', () => {
  it('is the SHA-256 of the bytes, whatever the URL', async () => {
    const a = await imageDigest(`${origin}/a.png`, trusted());
    const copy = await imageDigest(`${origin}/copy/of/a.png?x=1`, trusted());
    expect(a).toBe(sha256(PNG));
    expect(copy).toBe(a);
  });

  it('differs for different bytes', async () => {
    const b = await imageDigest(`${origin}/b.png`, trusted());
    expect(b).toBe(sha256(OTHER));
    expect(b).not.toBe(sha256(PNG));
  });

  it('accepts a body with no content-type', async () => {
    expect(await imageDigest(`${origin}/untyped`, trusted())).toBe(sha256(PNG));
  });

  it('refuses an HTTP error', async () => {
    expect(await imageDigest(`${origin}/missing.png`, trusted())).toBeNull();
  });

  it('refuses a redirect rather than following it', async () => {
    const before = received.length;
    expect(await imageDigest(`${origin}/moved.png`, trusted())).toBeNull();
    expect(received.slice(before)).toEqual(['/moved.png']);
  });

  it('refuses a body that is not an image', async () => {
    expect(await imageDigest(`${origin}/page.html`, trusted())).toBeNull();
  });

  it('refuses a declared content-length over maxBytes', async () => {
    const started = Date.now();
    expect(await imageDigest(`${origin}/declared-big.png`, { ...trusted(), timeoutMs: 4000 })).toBeNull();
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('refuses a streamed body once it passes maxBytes, and stops reading it', async () => {
    expect(await imageDigest(`${origin}/streamed-big.png`, { ...trusted(), timeoutMs: 5000 })).toBeNull();
    expect(await bigBodyAborted).toBe(true);
  });

  it('gives up after timeoutMs', async () => {
    const started = Date.now();
    expect(await imageDigest(`${origin}/hang.png`, trusted())).toBeNull();
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('returns null for a URL that does not parse', async () => {
    await expect(imageDigest('not a url', trusted())).resolves.toBeNull();
  });
});

describe('readImage from an untrusted origin', () => {
  it('refuses a private address without sending any request', async () => {
    const before = received.length;
    expect(await imageDigest(`${origin}/a.png`, { ...trusted(), outbound: createOutbound({ trusted_origins: [] }) })).toBeNull();
    expect(await imageDigest(`${origin}/a.png`, { ...trusted(), outbound: createOutbound({ trusted_origins: ['http://127.0.0.1:1'] }) })).toBeNull();
    expect(received.length).toBe(before);
  });
});
