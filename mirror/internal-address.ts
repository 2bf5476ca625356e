// Addresses a public upstream may not send the mirror to. An upstream answers with redirects,
// Bearer realms and (configured with it) a lookaside URL, and the mirror fetches, caches and serves
// what it finds there: a public upstream's `307 Location: http://127.0.0.1:…/` made the mirror
// pull an image from an unauthenticated registry on the registry's own host (adversarial testing).
// So, unless the configured upstream is itself on such an address (a registry on loopback or on
// the LAN, which may redirect within its network), the mirror connects to no loopback, link-local,
// unique-local/private or unspecified address. Names are judged by the addresses they resolve to
// when the connection is made (the connector's lookup), so a name that resolves to a public
// address when checked and to a private one when connecting (DNS rebinding) is refused too.
import { lookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import type { buildConnector } from 'undici';

const INTERNAL = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], // unspecified ("this network")
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (cloud metadata services)
  ['10.0.0.0', 8],
  ['172.16.0.0', 12],
  ['192.168.0.0', 16],
] as const) {
  INTERNAL.addSubnet(network, prefix, 'ipv4');
}
for (const [network, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['fe80::', 10], // link-local
  ['fc00::', 7], // unique-local
] as const) {
  INTERNAL.addSubnet(network, prefix, 'ipv6');
}

/** Whether an IP address is loopback, link-local, private/unique-local or unspecified (IPv4-mapped IPv6 too). */
export function isInternalAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  return INTERNAL.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** Whether an upstream's host is internal: an internal address, `localhost`, or a name resolving to one. */
export async function isInternalHost(hostname: string): Promise<boolean> {
  const host = hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) return isInternalAddress(host);
  if (host === 'localhost' || host.endsWith('.localhost')) return true;
  const addresses = await new Promise<LookupAddress[]>((resolve) => lookup(host, { all: true }, (err, found) => resolve(err ? [] : found)));
  return addresses.some((a) => isInternalAddress(a.address));
}

export class InternalAddressError extends Error {
  readonly code = 'ERR_INTERNAL_ADDRESS';
  constructor(
    readonly host: string,
    readonly address: string,
  ) {
    super(
      `refused to connect to ${host === address ? address : `${host} (${address})`}: a loopback, link-local or private address, which a public upstream may not send this registry to`,
    );
    this.name = 'InternalAddressError';
  }
}

/** dns.lookup as net.connect calls it, keeping only public addresses (none: refused). */
const publicLookup: LookupFunction = (hostname, options, callback) => {
  lookup(hostname, { ...options, all: true }, (err, addresses) => {
    if (err) return callback(err, []);
    const allowed = addresses.filter((a) => !isInternalAddress(a.address));
    if (allowed.length === 0) return callback(new InternalAddressError(hostname, addresses[0]?.address ?? hostname), []);
    if (options.all) return callback(null, allowed);
    callback(null, allowed[0]!.address, allowed[0]!.family);
  });
};

/**
 * undici's connector, refusing internal addresses: a literal one before connecting, a name by what
 * it resolves to. Connections through a proxy are the proxy's (undici's ProxyAgent does not use it).
 */
export function publicOnlyConnector(build: typeof buildConnector): ReturnType<typeof buildConnector> {
  const connect = build({ lookup: publicLookup });
  return (options, callback) => {
    if (isIP(options.hostname) && isInternalAddress(options.hostname)) {
      callback(new InternalAddressError(options.hostname, options.hostname), null);
      return;
    }
    connect(options, callback);
  };
}
