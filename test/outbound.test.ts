// src/net/outbound.ts: every address class refused, names resolved at submission (both doors, through the HTTP
// API), the connection made only to the address checked at that moment, no redirects, the operator's CA file.
// Safety of these tests themselves: the injected resolvers answer a public address only where the code refuses
// or never connects (checkUrl, submission); every connection made here goes to 127.0.0.1.
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOutbound, isPublicAddress, OutboundRefused, type Resolver } from '../src/net/outbound';
import { createGateway, StartupError } from '../src/core/gateway';
import { createLogger } from '../src/core/logger';
import { KEY_A, auth, startTestGateway, tempDir, testConfig } from './support/gateway';
import { makeTestCa } from './support/test-ca';

/** A public address (example.com's) that nothing in these tests ever connects to. */
const PUBLIC = '93.184.215.14';

/** A resolver answering from `answers` (a name not there does not resolve), counting its calls per name. */
function resolverOf(answers: Record<string, string | string[]>): Resolver & { calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const resolve = async (host: string) => {
    calls.set(host, (calls.get(host) ?? 0) + 1);
    const found = answers[host];
    if (found === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return [found].flat().map((address) => ({ address, family: net.isIPv6(address) ? (6 as const) : (4 as const) }));
  };
  return Object.assign(resolve, { calls });
}

/** Listens on 127.0.0.1; resolves with the port once listening. */
async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function close(server: net.Server): Promise<void> {
  (server as http.Server).closeAllConnections?.();
  await new Promise((resolve) => server.close(resolve));
}

describe('urlProblem: the URL as written', () => {
  const outbound = createOutbound({ trusted_origins: [] });
  it.each([
    // The three of issue 12.
    ['https://[::ffff:0:7f00:1]/', 'private or reserved address'], // SIIT (::ffff:0:0:0/96), 127.0.0.1 inside
    ['https://[64:ff9b:1::a00:1]/', 'private or reserved address'], // local-use NAT64 (RFC 8215)
    ['https://localhost../', 'malformed host name'],
    // IPv4 special ranges, however written.
    ['https://127.0.0.1/', 'private or reserved address'],
    ['https://127.1/', 'private or reserved address'],
    ['https://2130706433/', 'private or reserved address'],
    ['https://0x7f.0.0.1/', 'private or reserved address'],
    ['https://0.0.0.0/', 'private or reserved address'],
    ['https://10.0.0.1/', 'private or reserved address'],
    ['https://172.16.0.1/', 'private or reserved address'],
    ['https://192.168.1.1/', 'private or reserved address'],
    ['https://169.254.169.254/', 'private or reserved address'],
    ['https://100.64.0.1/', 'private or reserved address'],
    ['https://192.0.0.8/', 'private or reserved address'],
    ['https://192.0.2.1/', 'private or reserved address'],
    ['https://198.18.0.1/', 'private or reserved address'],
    ['https://224.0.0.1/', 'private or reserved address'],
    ['https://240.0.0.1/', 'private or reserved address'],
    ['https://255.255.255.255/', 'private or reserved address'],
    // IPv6 special ranges.
    ['https://[::]/', 'private or reserved address'],
    ['https://[::1]/', 'private or reserved address'],
    ['https://[fe80::1]/', 'private or reserved address'],
    ['https://[fd00::1]/', 'private or reserved address'],
    ['https://[ff02::1]/', 'private or reserved address'],
    ['https://[2001:db8::1]/', 'private or reserved address'],
    // IPv6 forms that carry an IPv4 address.
    ['https://[::ffff:127.0.0.1]/', 'private or reserved address'], // IPv4-mapped
    ['https://[::ffff:a00:1]/', 'private or reserved address'], // IPv4-mapped, 10.0.0.1 in hex
    ['https://[::127.0.0.1]/', 'private or reserved address'], // IPv4-compatible (deprecated)
    ['https://[::5db8:d70e]/', 'private or reserved address'], // IPv4-compatible, even of a public address
    ['https://[64:ff9b::7f00:1]/', 'private or reserved address'], // NAT64 well-known prefix, 127.0.0.1
    ['https://[64:ff9b::a9fe:a9fe]/', 'private or reserved address'], // NAT64, 169.254.169.254
    ['https://[64:ff9b:1::5db8:d70e]/', 'private or reserved address'], // local-use NAT64: refused whatever it embeds
    ['https://[2002:7f00:1::]/', 'private or reserved address'], // 6to4 of 127.0.0.1
    ['https://[2002:5db8:d70e::1]/', 'private or reserved address'], // 6to4 of a public address: refused too
    ['https://[2001:0:4136:e378:8000:63bf:80ff:fffe]/', 'private or reserved address'], // Teredo
    // Names.
    ['https://localhost/', 'internal host name'],
    ['https://LOCALHOST./', 'internal host name'],
    ['https://api.localhost/', 'internal host name'],
    ['https://printer.local/', 'internal host name'],
    ['https://metadata.google.internal/', 'internal host name'],
    ['https://nas.home.arpa/', 'internal host name'],
    ['https://box.localdomain./', 'internal host name'],
    ['https://metadata/', 'internal host name'],
    ['https://hooks..example.com/', 'malformed host name'],
    ['https://example.com../', 'malformed host name'],
    // The rest of the rule.
    ['http://hooks.example.com/', 'must use https'],
    ['ftp://hooks.example.com/', 'must use https'],
    ['https://user:pw@hooks.example.com/', 'must not carry credentials'],
    [`https://hooks.example.com/${'a'.repeat(2048)}`, 'longer than 2048 characters'],
    ['not a url', 'is not a valid URL'],
  ])('refuses %s', (url, reason) => {
    expect(outbound.urlProblem(url)).toContain(reason);
  });

  it.each([
    'https://hooks.example.com/vidgate',
    'https://hooks.example.com./vidgate', // one trailing dot: the same public name
    `https://${PUBLIC}/x`,
    'https://[2606:2800:21f:cb07:6820:80da:af6b:10c8]/x',
    'https://[::ffff:5db8:d70e]/x', // IPv4-mapped public address
    'https://[64:ff9b::5db8:d70e]/x', // NAT64 of a public address (an IPv6-only network's way to reach it)
  ])('accepts %s', (url) => {
    expect(outbound.urlProblem(url)).toBeNull();
  });

  it('lets a trusted origin through (http too), and only that origin', () => {
    const trusting = createOutbound({ trusted_origins: ['http://127.0.0.1:8080'] });
    expect(trusting.urlProblem('http://127.0.0.1:8080/hook')).toBeNull();
    expect(trusting.urlProblem('http://127.0.0.1:8081/hook')).toBe('must use https');
    expect(trusting.urlProblem('https://127.0.0.1:8080/hook')).toBe('points at a private or reserved address');
    expect(trusting.trusting(['https://127.0.0.1:8443']).urlProblem('https://127.0.0.1:8443/x')).toBeNull();
  });

  it('a trusted origin skips only the address, name and https checks: credentials and the length still apply', () => {
    const trusting = createOutbound({ trusted_origins: ['https://127.0.0.1:9443', 'http://127.0.0.1:8080'] });
    expect(trusting.urlProblem('https://user@127.0.0.1:9443/')).toBe('must not carry credentials');
    expect(trusting.urlProblem('https://user:pw@127.0.0.1:9443/')).toBe('must not carry credentials');
    expect(trusting.urlProblem('http://:pw@127.0.0.1:8080/')).toBe('must not carry credentials');
    expect(trusting.urlProblem(`https://127.0.0.1:9443/${'a'.repeat(2048)}`)).toBe('is longer than 2048 characters');
    expect(trusting.urlProblem('https://127.0.0.1:9443/hook')).toBeNull();
  });

  it('isPublicAddress: only unicast, embedded IPv4 judged where it is the address', () => {
    expect([PUBLIC, '8.8.8.8', '2606:4700::1111', '::ffff:8.8.8.8'].map(isPublicAddress)).toEqual([true, true, true, true]);
    expect(['127.0.0.1', '::ffff:10.0.0.1', '64:ff9b::a00:1', 'fe80::1%eth0', 'localhost', ''].map(isPublicAddress)).toEqual([false, false, false, false, false, false]);
  });
});

describe('checkUrl: the host name resolved', () => {
  const resolve = resolverOf({
    'loopback.example.com': '127.0.0.1',
    'private.example.com': '10.0.0.1',
    'mapped.example.com': '::ffff:127.0.0.1',
    'nat64.example.com': '64:ff9b::a00:1',
    'ula.example.com': 'fd00::1',
    'every-private.example.com': ['10.0.0.1', '192.168.0.1', '::1'],
    'public.example.com': PUBLIC,
    'mixed.example.com': ['10.0.0.1', PUBLIC],
    'empty.example.com': [],
  });
  const outbound = createOutbound({ trusted_origins: ['https://trusted.example.com'], resolve });

  it.each(['loopback', 'private', 'mapped', 'nat64', 'ula', 'every-private'])('refuses a name that resolves only to internal addresses (%s)', async (name) => {
    expect(await outbound.checkUrl(`https://${name}.example.com/hook`)).toBe('resolves only to private or reserved addresses');
  });

  it('refuses a name that does not resolve, or to nothing', async () => {
    expect(await outbound.checkUrl('https://nowhere.example.com/hook')).toBe('does not resolve');
    expect(await outbound.checkUrl('https://empty.example.com/hook')).toBe('does not resolve');
  });

  it('accepts a name with a public address (a connection is checked again by fetch)', async () => {
    expect(await outbound.checkUrl('https://public.example.com/hook')).toBeNull();
    expect(await outbound.checkUrl('https://public.example.com./hook')).toBeNull();
    expect(await outbound.checkUrl('https://mixed.example.com/hook')).toBeNull();
  });

  it('refuses as written before resolving, and resolves neither a literal address nor a trusted origin', async () => {
    expect(await outbound.checkUrl('https://localhost/hook')).toBe('points at an internal host name');
    expect(await outbound.checkUrl(`https://${PUBLIC}/hook`)).toBeNull();
    expect(await outbound.checkUrl('https://trusted.example.com/hook')).toBeNull();
    expect([...resolve.calls.keys()]).not.toContain('localhost');
    expect([...resolve.calls.keys()]).not.toContain('trusted.example.com');
  });
});

describe('submission through the HTTP API refuses names that resolve to internal addresses', () => {
  let h: Awaited<ReturnType<typeof startTestGateway>>;
  beforeAll(async () => {
    h = await startTestGateway({}, { resolve: resolverOf({ 'hooks.example.com': '127.0.0.1', 'images.example.com': '10.0.0.1', 'cdn.example.com': '::ffff:127.0.0.1' }) });
  });
  afterAll(async () => {
    await h.close();
  });
  const native = (body: object) => h.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ prompt: 'a boat', ...body });

  it.each([
    [{ callback_url: 'https://hooks.example.com/vidgate' }, 'callback_url', 'callback_url resolves only to private or reserved addresses'],
    [{ image_urls: ['https://images.example.com/a.png'] }, 'image_urls', 'image_urls[0] resolves only to private or reserved addresses'],
    [{ image_urls: ['https://cdn.example.com/a.png'] }, 'image_urls', 'image_urls[0] resolves only to private or reserved addresses'],
    [{ callback_url: 'https://unknown.example.com/vidgate' }, 'callback_url', 'callback_url does not resolve'],
  ])('native door %j', async (body, param, message) => {
    for (const res of [await native(body), await h.http.post('/v1/estimates').set(auth(KEY_A)).send({ prompt: 'a boat', ...body })]) {
      expect(res.status).toBe(400);
      expect(res.body).toEqual({ error: { type: 'invalid_request_error', code: 'invalid_url', param, message } });
    }
  });

  it.each(['https://images.example.com/a.png', 'https://hooks.example.com/a.png'])('OpenAI door input_reference %s', async (image_url) => {
    const res = await h.http.post('/v1/videos').set(auth(KEY_A)).send({ prompt: 'a boat', input_reference: { image_url } });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'invalid_url', param: 'input_reference', message: 'input_reference.image_url resolves only to private or reserved addresses' });
  });

  it('a callback URL with credentials on a trusted origin is refused by both doors', async () => {
    const t = await startTestGateway({ outbound: { trusted_origins: ['https://127.0.0.1:9443'] } });
    try {
      const callback_url = 'https://user@127.0.0.1:9443/';
      const nativeRes = await t.http.post('/v1/videos/generations').set(auth(KEY_A)).send({ prompt: 'a boat', callback_url });
      expect(nativeRes.status).toBe(400);
      expect(nativeRes.body).toEqual({ error: { type: 'invalid_request_error', code: 'invalid_url', param: 'callback_url', message: 'callback_url must not carry credentials' } });
      const openai = await t.http.post('/v1/videos').set(auth(KEY_A)).send({ prompt: 'a boat', callback_url });
      expect(openai.status).toBe(400);
      expect(openai.body.error).toMatchObject({ code: 'invalid_url', param: 'callback_url', message: 'callback_url must not carry credentials' });
      expect((await t.http.get('/v1/tasks').set(auth(KEY_A))).body.data).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it('made no task', async () => {
    expect((await h.http.get('/v1/tasks').set(auth(KEY_A))).body.data).toEqual([]);
  });
});

describe('fetch: connects only to an address checked at that moment', () => {
  let listener: net.Server;
  let port: number;
  let connections = 0;
  let requests: string[] = [];
  beforeAll(async () => {
    listener = http.createServer((req, res) => {
      requests.push(req.url!);
      if (req.url === '/redirect') res.writeHead(302, { location: '/target' }).end();
      else res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello ${req.method} ${req.url}`);
    });
    listener.on('connection', () => connections++);
    port = await listen(listener);
  });
  afterAll(async () => {
    await close(listener);
  });

  it('refuses a name that resolved to a public address at the check and to 127.0.0.1 at the fetch, without connecting', async () => {
    let answer = PUBLIC;
    const resolve: Resolver = async () => [{ address: answer, family: 4 }];
    const outbound = createOutbound({ trusted_origins: [], resolve });
    const url = `https://rebind.example.com:${port}/hook`;
    expect(await outbound.checkUrl(url)).toBeNull(); // submission time: public
    answer = '127.0.0.1'; // the name now points inside
    const before = connections;
    const err = await outbound.fetch(url, { method: 'POST', body: '{}' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OutboundRefused);
    expect((err as OutboundRefused).reason).toBe('resolves only to private or reserved addresses');
    expect(connections).toBe(before);
  });

  it('refuses as written without resolving or connecting', async () => {
    const resolve = resolverOf({});
    const outbound = createOutbound({ trusted_origins: [], resolve });
    const before = connections;
    for (const url of [`https://127.0.0.1:${port}/`, `http://127.0.0.1:${port}/`, `https://[::ffff:0:7f00:1]:${port}/`, `https://localhost..:${port}/`]) {
      await expect(outbound.fetch(url)).rejects.toBeInstanceOf(OutboundRefused);
    }
    expect(connections).toBe(before);
    expect(resolve.calls.size).toBe(0);
  });

  it('connects to the address its resolver gave (a trusted origin named only in the injected resolver)', async () => {
    const resolve = resolverOf({ 'receiver.example.com': '127.0.0.1' });
    const outbound = createOutbound({ trusted_origins: [`http://receiver.example.com:${port}`], resolve });
    const res = await outbound.fetch(`http://receiver.example.com:${port}/hello`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' });
    expect(await res.text()).toBe('hello POST /hello');
    expect(resolve.calls.get('receiver.example.com')).toBe(1);
  });

  it('returns a redirect as it is, never following it', async () => {
    const outbound = createOutbound({ trusted_origins: [`http://127.0.0.1:${port}`] });
    requests = [];
    const res = await outbound.fetch(`http://127.0.0.1:${port}/redirect`);
    expect(res.status).toBe(302);
    expect(res.headers.get('location')).toBe('/target');
    expect(requests).toEqual(['/redirect']);
  });
});

describe('outbound.ca_file: a private receiver with its own CA', () => {
  const dir = tempDir('vidgate-ca-');
  const file = (name: string) => path.join(dir, name);
  let server: https.Server;
  let origin: string;
  beforeAll(async () => {
    const ca = makeTestCa(dir);
    server = https.createServer({ key: fs.readFileSync(ca.keyFile), cert: fs.readFileSync(ca.certFile) }, (_req, res) => void res.end('private hello'));
    origin = `https://127.0.0.1:${await listen(server)}`;
  });
  afterAll(async () => {
    await close(server);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('works only when ca_file names the receiver CA', async () => {
    const without = await createOutbound({ trusted_origins: [origin] }).fetch(`${origin}/hook`).catch((e: unknown) => e);
    expect(without).toBeInstanceOf(TypeError);
    expect(String((without as Error & { cause?: Error }).cause?.message)).toMatch(/certificate/i);

    const res = await createOutbound({ trusted_origins: [origin], ca_file: file('ca.pem') }).fetch(`${origin}/hook`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('private hello');
  });

  it('an unreadable or empty ca_file stops the start, naming the setting', async () => {
    expect(() => createOutbound({ trusted_origins: [], ca_file: file('missing.pem') })).toThrow(/cannot read outbound\.ca_file/);
    fs.writeFileSync(file('empty.pem'), '');
    expect(() => createOutbound({ trusted_origins: [], ca_file: file('empty.pem') })).toThrow(/holds no PEM certificate/);
    const start = createGateway(testConfig(path.join(dir, 'data'), { outbound: { ca_file: file('missing.pem') } }), { log: createLogger('silent') });
    await expect(start).rejects.toBeInstanceOf(StartupError);
    await expect(start).rejects.toThrow(/VIDGATE_OUTBOUND__CA_FILE/);
  });
});
