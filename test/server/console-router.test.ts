// The console's address (#/r/<project>/<repository>) names what its pages read and delete through
// the API: only names of the registry's grammar get through, so no `..` can redirect a page (and
// its delete buttons) to another project's repository.
import test from 'ava';
import fc from 'fast-check';
import { href, parseRoute } from '../../console/src/router.js';

test('routes the console links to', (t) => {
  t.deepEqual(parseRoute(href.repository('team', 'base/app')), { page: 'repository', project: 'team', repository: 'base/app' });
  t.deepEqual(parseRoute(href.project('team', 'keys')), { page: 'project', project: 'team', tab: 'keys' });
  t.deepEqual(parseRoute('#/admin'), { page: 'admin' });
  t.deepEqual(parseRoute(''), { page: 'projects' });
});

test('a dot segment, an escaped slash or a malformed escape leads to the projects page, never into an API path', (t) => {
  for (const hash of [
    '#/r/team/innocent/../../../other/repositories/app',
    '#/r/team/%2E%2E/other',
    '#/r/team/./app',
    '#/r/..%2F..%2Fother/app',
    '#/r/team/a%2F..%2Fb',
    '#/p/../keys',
    '#/p/team%2F..%2Fother/keys',
    '#/r/team/%E0%A4%A',
    '#/r/Team/app',
  ]) {
    t.deepEqual(parseRoute(hash), { page: 'projects' }, hash);
  }
});

test('property: whatever the address, a repository route names only grammar components', (t) => {
  const segment = fc.oneof(fc.constantFrom('..', '.', '%2E%2E', '%2F', 'team', 'app', 'a.b', 'x--y', '%'), fc.string({ maxLength: 6 }));
  fc.assert(
    fc.property(fc.array(segment, { maxLength: 6 }), (segments) => {
      const route = parseRoute(`#/r/${segments.join('/')}`);
      if (route.page !== 'repository') return true;
      return [route.project, ...route.repository.split('/')].every((c) => /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/.test(c));
    }),
  );
  t.pass();
});
