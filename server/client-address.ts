// Who is calling, by network address, for the per-caller bounds on uploads and downloads (and
// anything else keyed by address). Behind a reverse proxy every connection comes from the proxy,
// so all anonymous clients would share one bucket; `X-Forwarded-For` names the client, but any
// client can send that header. It is believed only on connections from the proxies named in
// REGISTRY_HTTP_TRUSTEDPROXIES, and read from the right: each trusted proxy appends the address it
// saw, so the rightmost address that is not a trusted proxy is the client; what lies to its left
// was written by the client itself and is never used.
import net from 'node:net';

/** `a.b.c.d`, an IPv6 address, or either with a `/prefix`: what REGISTRY_HTTP_TRUSTEDPROXIES takes. */
export function parseProxyEntry(entry: string): { address: string; prefix?: number; family: 'ipv4' | 'ipv6' } | undefined {
  const [address = '', prefixText, extra] = entry.trim().split('/');
  const version = net.isIP(address);
  if (version === 0 || extra !== undefined) return undefined;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  if (prefixText === undefined) return { address, family };
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= (version === 4 ? 32 : 128))) return undefined;
  return { address, prefix, family };
}

/** An IPv4 address as Node shows it on a dual-stack socket (`::ffff:10.0.0.1`) is that IPv4 address. */
function plain(address: string): string {
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
}

/**
 * The client address of a request: the peer's, unless the peer is a trusted proxy; then the
 * rightmost address in X-Forwarded-For that is not a trusted proxy (or, when all are, the leftmost).
 */
/** Whether a connection's peer is one of REGISTRY_HTTP_TRUSTEDPROXIES. */
export function createProxyCheck(trustedProxies: string[]): (peer: string | undefined) => boolean {
  const trusted = new net.BlockList();
  for (const entry of trustedProxies) {
    const parsed = parseProxyEntry(entry);
    if (!parsed) throw new Error(`not an IP address or CIDR range: ${entry}`);
    if (parsed.prefix === undefined) trusted.addAddress(parsed.address, parsed.family);
    else trusted.addSubnet(parsed.address, parsed.prefix, parsed.family);
  }
  return (peer) => {
    const address = plain(peer ?? '');
    const version = net.isIP(address);
    return trustedProxies.length > 0 && version !== 0 && trusted.check(address, version === 4 ? 'ipv4' : 'ipv6');
  };
}

export function createClientAddress(trustedProxies: string[]): (peer: string | undefined, forwardedFor: string | undefined) => string {
  const isTrusted = createProxyCheck(trustedProxies);
  return (peer, forwardedFor) => {
    let client = plain(peer ?? '');
    if (trustedProxies.length === 0 || !forwardedFor || !isTrusted(client)) return client;
    const hops = forwardedFor.split(',').map((hop) => plain(hop.trim()));
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!;
      // A hop that is not an address: nothing left of it can be told apart from the client's own
      // writing, so the last trusted proxy is the one to hold to account.
      if (net.isIP(hop) === 0) return client;
      client = hop;
      if (!isTrusted(hop)) return client;
    }
    return client;
  };
}
