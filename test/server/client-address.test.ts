// X-Forwarded-For is believed only from trusted proxies, and read from the right
// (server/client-address.ts); REGISTRY_HTTP_TRUSTEDPROXIES is checked at start-up.
import test from 'ava';
import { createClientAddress } from '../../server/client-address.js';
import { ConfigError, loadConfig } from '../../server/config.js';

test('without trusted proxies the peer is the client, whatever X-Forwarded-For says', (t) => {
  const address = createClientAddress([]);
  t.is(address('10.0.0.5', '203.0.113.9'), '10.0.0.5');
  t.is(address('::ffff:10.0.0.5', undefined), '10.0.0.5');
});

test('from a trusted proxy the rightmost untrusted hop is the client; what the client wrote is ignored', (t) => {
  const address = createClientAddress(['10.0.0.5', '172.31.250.0/24', 'fd00::/8']);
  t.is(address('10.0.0.5', '203.0.113.9'), '203.0.113.9');
  t.is(address('::ffff:10.0.0.5', '203.0.113.9'), '203.0.113.9');
  // The client sent its own X-Forwarded-For; the proxy appended the address it saw.
  t.is(address('10.0.0.5', '1.2.3.4, 203.0.113.9'), '203.0.113.9');
  // Two trusted proxies in a row.
  t.is(address('10.0.0.5', '1.2.3.4, 203.0.113.9, 172.31.250.7'), '203.0.113.9');
  t.is(address('fd00::1', '2001:db8::7'), '2001:db8::7');
  // Only proxies all the way: the leftmost.
  t.is(address('10.0.0.5', '172.31.250.8, 172.31.250.7'), '172.31.250.8');
  // A hop that is no address stops the walk at the last trusted proxy.
  t.is(address('10.0.0.5', 'garbage, 172.31.250.7'), '172.31.250.7');
  t.is(address('10.0.0.5', 'unknown'), '10.0.0.5');
  t.is(address('10.0.0.5', undefined), '10.0.0.5');
});

test('from an untrusted peer X-Forwarded-For is ignored', (t) => {
  const address = createClientAddress(['10.0.0.5']);
  t.is(address('198.51.100.1', '10.0.0.5'), '198.51.100.1');
  t.is(address('198.51.100.1', '203.0.113.9'), '198.51.100.1');
});

test('REGISTRY_HTTP_TRUSTEDPROXIES takes addresses and CIDR ranges, and names anything else at start-up', (t) => {
  const config = loadConfig({ env: { REGISTRY_HTTP_TRUSTEDPROXIES: '10.0.0.5, 172.31.250.0/24,::1' } });
  t.deepEqual(config.http.trustedproxies, ['10.0.0.5', '172.31.250.0/24', '::1']);
  for (const bad of ['nginx', '10.0.0.0/33', '10.0.0.1/8/9', '300.1.1.1']) {
    const err = t.throws(() => loadConfig({ env: { REGISTRY_HTTP_TRUSTEDPROXIES: bad } }), { instanceOf: ConfigError });
    t.regex(err?.message ?? '', /REGISTRY_HTTP_TRUSTEDPROXIES/, bad);
  }
});
