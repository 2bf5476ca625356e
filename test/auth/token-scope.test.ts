// Scope parsing and what a token's access claim grants, over the whole space of what a client may
// send (fast-check); and the token mode's settings, refused when they cannot work.
import test from 'ava';
import fc from 'fast-check';
import { challengeScope, formatScope, MAX_SCOPES, parseScopes, TokenGrants, type AccessEntry } from '../../auth/token-scope.js';
import { ConfigError, loadConfig } from '../../server/config.js';
import { tokenServiceName } from '../../server/registry.js';

const component = fc.stringMatching(/^[a-z0-9]+(?:[._-][a-z0-9]+)*$/, { maxLength: 12 }).filter((s) => s.length > 0);
const name = fc
  .tuple(
    fc.option(fc.constantFrom('localhost:5000', 'registry.example.com'), { nil: undefined }),
    fc.array(component, { minLength: 1, maxLength: 4 }),
  )
  .map(([host, parts]) => [...(host ? [host] : []), ...parts].join('/'));
const action = fc.constantFrom('pull', 'push', 'delete', '*');
const entry = fc.record({
  type: fc.constantFrom('repository', 'registry'),
  name,
  actions: fc.uniqueArray(action, { minLength: 1, maxLength: 4 }),
});

test('a scope reads back as written, whatever the name (colons of a host and port included)', (t) => {
  fc.assert(
    fc.property(fc.uniqueArray(entry, { maxLength: 8, selector: (e) => `${e.type}:${e.name}` }), fc.boolean(), (entries, spaces) => {
      const written = entries.map(formatScope);
      // GET sends repeated parameters, the OAuth2 form one space-separated value.
      const parsed = parseScopes(spaces ? [written.join(' ')] : written);
      return JSON.stringify(parsed) === JSON.stringify(entries);
    }),
  );
  t.pass();
});

test('scopes of one resource merge; what is no scope is left out; too many are refused', (t) => {
  t.deepEqual(parseScopes(['repository:team/app:pull', 'repository:team/app:push,pull']), [
    { type: 'repository', name: 'team/app', actions: ['pull', 'push'] },
  ]);
  t.deepEqual(parseScopes(['repository(plugin):team/p:pull']), [{ type: 'repository', name: 'team/p', actions: ['pull'] }]);
  t.deepEqual(parseScopes(['', 'repository', 'repository:team', 'REPOSITORY:a:pull', 'repository::pull', 'repository:a:PULL']), []);
  const many = Array.from({ length: MAX_SCOPES + 1 }, (_, i) => `repository:team/app${i}:pull`);
  t.throws(() => parseScopes(many), { instanceOf: RangeError });
  t.is(parseScopes(many.slice(0, MAX_SCOPES)).length, MAX_SCOPES);
});

test('grants allow exactly the listed actions on exactly the listed repositories', (t) => {
  fc.assert(
    fc.property(
      fc.array(entry, { maxLength: 6 }),
      name,
      fc.constantFrom<'pull' | 'push' | 'delete'>('pull', 'push', 'delete'),
      (access: AccessEntry[], asked, wanted) => {
        const expected = access.some(
          (e) => e.type === 'repository' && e.name === asked && (e.actions.includes(wanted) || e.actions.includes('*')),
        );
        return new TokenGrants(access).allows(wanted, asked) === expected;
      },
    ),
  );
  t.pass();
});

test('challenges name the scope docker asks for', (t) => {
  t.is(challengeScope('pull', 'team/app'), 'repository:team/app:pull');
  t.is(challengeScope('push', 'team/app'), 'repository:team/app:pull,push');
  t.is(challengeScope('sign', 'team/app'), 'repository:team/app:pull,push');
  t.is(challengeScope('delete', 'team/app'), 'repository:team/app:delete');
  t.is(challengeScope('admin', 'team'), undefined);
});

test('token mode settings: on with REGISTRY_AUTH=token or any REGISTRY_AUTH_TOKEN_*; refused when it cannot work', (t) => {
  const users = { REGISTRY_AUTH_HTPASSWD_PATH: '/etc/htpasswd' };
  const on = loadConfig({ env: { ...users, REGISTRY_AUTH: 'token' } });
  t.like(on.auth.token, { issuer: 'signet', expiration: 300, refreshexpiration: 30 * 86_400 });
  t.is(on.auth.token?.realm, undefined);
  t.is(tokenServiceName(on), 'signet');
  const named = loadConfig({
    env: { ...users, REGISTRY_AUTH_TOKEN_REALM: 'https://registry.example.com/token', REGISTRY_HTTP_HOST: 'registry.example.com' },
  });
  t.is(named.auth.token?.realm, 'https://registry.example.com/token');
  t.is(tokenServiceName(named), 'registry.example.com');
  t.is(loadConfig({ env: { REGISTRY_AUTH: 'htpasswd', ...users } }).auth.token, undefined);

  const problems = (env: Record<string, string>): string[] => {
    try {
      loadConfig({ env });
      return [];
    } catch (err) {
      return err instanceof ConfigError ? err.problems : [String(err)];
    }
  };
  t.deepEqual(problems({ REGISTRY_AUTH: 'token' }), [
    'REGISTRY_AUTH_TOKEN: token mode takes its users from the htpasswd file: set REGISTRY_AUTH_HTPASSWD_PATH too',
  ]);
  t.regex(
    problems({ ...users, REGISTRY_AUTH_TOKEN_REALM: 'registry.example.com/token' }).join(),
    /REGISTRY_AUTH_TOKEN_REALM: expected an absolute http\(s\) URL/,
  );
  t.regex(
    problems({ ...users, REGISTRY_AUTH_TOKEN_EXPIRATION: '10s' }).join(),
    /REGISTRY_AUTH_TOKEN_EXPIRATION: must be between 60s and 24h/,
  );
  t.regex(
    problems({ ...users, REGISTRY_AUTH: 'token', REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE: '/certs/bundle.pem' }).join(),
    /REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE: not supported: Signet issues and checks its own tokens/,
  );
  t.regex(problems({ ...users, REGISTRY_AUTH_TOKEN_SERVICE: 'two words' }).join(), /REGISTRY_AUTH_TOKEN_SERVICE/);
});
