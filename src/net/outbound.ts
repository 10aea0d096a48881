// The one home of outbound URL safety: every URL a caller or a provider hands vidgate (callback_url, image
// URLs, result links) is checked here as written, resolved and checked at submission, and fetched here so that
// the connection goes only to an address that was checked at that moment (no DNS rebinding window).
// Address classes come from ipaddr.js (its IANA special-purpose ranges), not from hand-written lists.
import dns from 'node:dns/promises';
import fs from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import ipaddr from 'ipaddr.js';
import { Agent, fetch as undiciFetch } from 'undici';

/** One address of a resolved name, as `dns.lookup(host, { all: true })` gives it. */
export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to all its addresses; rejects when it does not resolve. */
export type Resolver = (host: string) => Promise<ResolvedAddress[]>;

/** What `Outbound.fetch` sends: no redirect option (3xx answers are returned as they are). */
export interface OutboundInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  signal?: AbortSignal;
}

/** Checks and fetches of URLs outside vidgate; made once by the composition root (createOutbound). */
export interface Outbound {
  /**
   * Why the URL is refused as written, as a phrase that follows the field's name ("must use https"), or null.
   * Refused: not a URL, longer than 2048 characters, not https, credentials in it, a literal address that is not
   * public, an internal or malformed host name. A URL of a trusted origin skips the https rule and the address and
   * name checks (http passes), never the length and credentials rules.
   */
  urlProblem(url: string): string | null;
  /**
   * urlProblem, then the host name resolved: refused when it resolves to no public address, or not at all.
   * For submission time; the connection is checked again by `fetch`. Never throws.
   */
  checkUrl(url: string): Promise<string | null>;
  /**
   * fetch that resolves the host at every new connection and connects only to a public address among those it
   * resolved (trusted origins: to any), follows no redirect (a 3xx answer is returned as it is), and trusts the
   * operator's extra CA file beside the system's CAs.
   * @throws OutboundRefused with `.reason` when the URL or every address it resolves to is refused; the usual
   *   fetch errors (TypeError 'fetch failed', AbortError/TimeoutError) otherwise.
   */
  fetch(url: string, init?: OutboundInit): Promise<Response>;
  /** The same checks and connections with `origins` trusted too (a provider's result CDN, for example). */
  trusting(origins: readonly string[]): Outbound;
}

/** A URL or connection refused by the outbound checks; `reason` is a phrase such as "must use https". */
export class OutboundRefused extends Error {
  override name = 'OutboundRefused';
  constructor(readonly reason: string) {
    super(`outbound URL refused: ${reason}`);
  }
}

export interface OutboundOptions {
  /** URLs whose origins skip the address and name checks (and the https rule), not the others: a private receiver, tests. */
  trusted_origins: readonly string[];
  /** A PEM file of extra CAs trusted for outbound HTTPS besides the system's (a private receiver's CA). */
  ca_file?: string;
  /** Resolves host names (tests inject one); `dns.lookup` with every address by default. */
  resolve?: Resolver;
}

/** The longest URL accepted (the spec's maxLength for callback and image URLs). */
export const MAX_URL_LENGTH = 2048;

/** Names of this machine or a private network (RFC 6761 localhost, RFC 6762 .local, .internal, RFC 8375 home.arpa). */
const INTERNAL_NAME = /(^|\.)(localhost|localdomain|local|internal|home\.arpa)$/;

const NAT64_WELL_KNOWN = ipaddr.parseCIDR('64:ff9b::/96');
/** The first 96 bits zero: IPv4-compatible (deprecated), ::1 and :: included. */
const IPV4_COMPATIBLE = ipaddr.parseCIDR('::/96');

/**
 * Whether a literal address is public: ipaddr.js's range is `unicast` (no loopback, private, link-local, CGNAT,
 * reserved, documentation, multicast...). An IPv4-mapped or well-known-prefix NAT64 (64:ff9b::/96) address is
 * judged by the IPv4 address it embeds; IPv4-compatible, local-use NAT64 (64:ff9b:1::/48), 6to4, Teredo and
 * SIIT (::ffff:0:0:0/96) addresses are refused: they can tunnel to any IPv4 address. Not an address: false.
 */
export function isPublicAddress(address: string): boolean {
  if (!ipaddr.isValid(address)) return false;
  const parsed = ipaddr.parse(address);
  if (parsed.kind() === 'ipv4') return parsed.range() === 'unicast';
  const v6 = parsed as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address().range() === 'unicast';
  if (v6.match(NAT64_WELL_KNOWN)) return ipaddr.fromByteArray(v6.toByteArray().slice(12)).range() === 'unicast';
  if (v6.match(IPV4_COMPATIBLE)) return false;
  return v6.range() === 'unicast';
}

/** The URL's host without IPv6 brackets, for net.isIP and resolving. */
function hostOf(url: URL): string {
  return url.hostname.replace(/^\[|\]$/g, '');
}

/** The name without the one trailing dot of a fully qualified name ('example.com.' is 'example.com'). */
function withoutRootDot(host: string): string {
  return host.endsWith('.') ? host.slice(0, -1) : host;
}

/**
 * Why a host name is refused, or null: malformed (an empty label, as in 'localhost..' or 'a..b'), or internal.
 * `host` is as WHATWG URL gives it (lowercase, punycode).
 */
function nameProblem(host: string): string | null {
  const name = withoutRootDot(host);
  if (name === '' || name.split('.').some((label) => label === '')) return 'has a malformed host name';
  if (!name.includes('.') || INTERNAL_NAME.test(name)) return 'points at an internal host name';
  return null;
}

/** `dns.lookup` with every address, in the resolver's own order. */
const defaultResolver: Resolver = async (host) =>
  (await dns.lookup(host, { all: true, verbatim: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));

/**
 * A `net.connect` lookup that resolves with `resolve` and, when `checked`, hands back only public addresses, so
 * that the socket can only connect to an address checked at this moment.
 */
function lookupWith(resolve: Resolver, checked: boolean): net.LookupFunction {
  return (host, options, callback) => {
    const family = options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family;
    resolve(host).then(
      (all) => {
        const wanted = family === 4 || family === 6 ? all.filter((a) => a.family === family) : all;
        const usable = checked ? wanted.filter((a) => isPublicAddress(a.address)) : wanted;
        if (usable.length === 0) {
          const reason = wanted.length === 0 ? 'does not resolve' : 'resolves only to private or reserved addresses';
          callback(Object.assign(new OutboundRefused(reason), { code: 'EOUTBOUNDREFUSED' }), '');
        } else if (options.all) callback(null, usable);
        else callback(null, usable[0]!.address, usable[0]!.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, ''),
    );
  };
}

/** The OutboundRefused somewhere in an error's `cause` chain (undici wraps connect errors), if any. */
function refusalIn(err: unknown): OutboundRefused | undefined {
  for (let e = err; e instanceof Error; e = e.cause) if (e instanceof OutboundRefused) return e;
  return undefined;
}

/**
 * Builds the Outbound from `outbound.*` config and an optional resolver.
 * @throws Error naming `ca_file` when that file cannot be read or holds no certificate.
 */
export function createOutbound(options: OutboundOptions): Outbound {
  const resolve = options.resolve ?? defaultResolver;
  let ca: string[] | undefined;
  if (options.ca_file !== undefined) {
    let pem: string;
    try {
      pem = fs.readFileSync(options.ca_file, 'utf8');
    } catch (err) {
      throw new Error(`cannot read outbound.ca_file ${options.ca_file}: ${(err as Error).message}`);
    }
    if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`outbound.ca_file ${options.ca_file} holds no PEM certificate`);
    ca = [...tls.rootCertificates, pem];
  }
  const agent = (checked: boolean) => new Agent({ connect: { lookup: lookupWith(resolve, checked), ...(ca && { ca }) } });
  return build(new Set(options.trusted_origins.map((u) => new URL(u).origin)), resolve, agent(true), agent(false));
}

function build(trusted: ReadonlySet<string>, resolve: Resolver, checkedAgent: Agent, trustedAgent: Agent): Outbound {
  const isTrusted = (url: URL) => trusted.has(url.origin);

  /** The parsed URL, or why it is refused as written. */
  function parse(raw: string): URL | string {
    if (raw.length > MAX_URL_LENGTH) return `is longer than ${MAX_URL_LENGTH} characters`;
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      return 'is not a valid URL';
    }
    // Every URL, trusted or not: the length (above), credentials (never sent to anyone), an http(s) scheme.
    if (url.username || url.password) return 'must not carry credentials';
    if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must use https';
    // A trusted origin is exempt from the https rule and the address and name checks only.
    if (isTrusted(url)) return url;
    if (url.protocol !== 'https:') return 'must use https';
    const host = hostOf(url);
    if (net.isIP(host)) return isPublicAddress(host) ? url : 'points at a private or reserved address';
    return nameProblem(host) ?? url;
  }

  const outbound: Outbound = {
    urlProblem(raw) {
      const url = parse(raw);
      return typeof url === 'string' ? url : null;
    },

    async checkUrl(raw) {
      const url = parse(raw);
      if (typeof url === 'string') return url;
      const host = hostOf(url);
      if (isTrusted(url) || net.isIP(host)) return null;
      let addresses: ResolvedAddress[];
      try {
        addresses = await resolve(withoutRootDot(host));
      } catch {
        return 'does not resolve';
      }
      if (addresses.length === 0) return 'does not resolve';
      return addresses.some((a) => isPublicAddress(a.address)) ? null : 'resolves only to private or reserved addresses';
    },

    async fetch(raw, init = {}) {
      const url = parse(raw);
      if (typeof url === 'string') throw new OutboundRefused(url);
      try {
        const res = await undiciFetch(url, { ...init, redirect: 'manual', dispatcher: isTrusted(url) ? trustedAgent : checkedAgent });
        return res as unknown as Response;
      } catch (err) {
        throw refusalIn(err) ?? err;
      }
    },

    trusting(origins) {
      if (origins.length === 0) return outbound;
      return build(new Set([...trusted, ...origins.map((u) => new URL(u).origin)]), resolve, checkedAgent, trustedAgent);
    },
  };
  return outbound;
}
