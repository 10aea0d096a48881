// Outbound URLs supplied by callers (callback_url, image_urls) must not reach internal addresses.
// This checks the URL as written; whoever later connects must check the resolved address too
// (isPublicAddress), since a public name can resolve to a private address.
import dns from 'node:dns/promises';
import net from 'node:net';

const privateRanges = new net.BlockList();
for (const [prefix, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16],
  ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15],
  ['198.51.100.0', 24], ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) privateRanges.addSubnet(prefix, bits, 'ipv4');
for (const [prefix, bits] of [
  ['::', 96], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8], ['2001::', 32], ['2001:db8::', 32],
  ['2002::', 16], ['64:ff9b::', 96],
] as const) privateRanges.addSubnet(prefix, bits, 'ipv6');

const internalNames = /(^|\.)(localhost|local|internal|localdomain|home\.arpa)$/i;

export function isPublicAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 0) return false;
  if (family === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
    if (mapped) return isPublicAddress(mapped[1]!);
    return !privateRanges.check(address, 'ipv6');
  }
  return !privateRanges.check(address, 'ipv4');
}

/** Why the URL is refused, or null when it is an HTTPS URL naming a public host. */
export function outboundUrlProblem(raw: string): string | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return 'is not a valid URL';
  }
  if (url.protocol !== 'https:') return 'must use https';
  if (url.username || url.password) return 'must not carry credentials';
  const host = url.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '');
  if (net.isIP(host)) return isPublicAddress(host) ? null : 'points at a private or reserved address';
  if (!host.includes('.') || internalNames.test(host)) return 'points at an internal host name';
  return null;
}

/** The origins of the URLs an operator exempted from these checks (a private host, or tests), for isTrustedOrigin. */
export function originsOf(urls: readonly string[]): ReadonlySet<string> {
  return new Set(urls.map((u) => new URL(u).origin));
}

/** Whether the URL's origin is one of `trusted` (made by originsOf). */
export function isTrustedOrigin(raw: string, trusted: ReadonlySet<string>): boolean {
  if (trusted.size === 0) return false;
  try {
    return trusted.has(new URL(raw).origin);
  } catch {
    return false;
  }
}

/** Why the URL is refused once its host name is resolved (every address must be public), or null. */
export async function resolvedUrlProblem(raw: string): Promise<string | null> {
  const problem = outboundUrlProblem(raw);
  if (problem) return problem;
  const host = new URL(raw).hostname.replace(/^\[|\]$/g, '');
  if (net.isIP(host)) return null;
  try {
    const addresses = await dns.lookup(host, { all: true, verbatim: true });
    return addresses.every((a) => isPublicAddress(a.address)) ? null : 'resolves to a private or reserved address';
  } catch {
    return 'does not resolve';
  }
}
