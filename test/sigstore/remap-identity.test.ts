// remapIdentity as containers/image applies it: the project prefix matches only at a path
// boundary, and the rest of the name is kept; docker.io names are normalised.
import test from 'ava';
import fc from 'fast-check';
import { defaultSignedPrefix, normalise, remappedRepository, signedPrefixProblem } from '../../sigstore/remap-identity.js';

test('the prefix is replaced at a path boundary only', (t) => {
  t.deepEqual(remappedRepository('redhat/ubi8/ubi', 'redhat', 'registry.access.redhat.com'), {
    host: 'registry.access.redhat.com',
    repository: 'ubi8/ubi',
  });
  t.deepEqual(remappedRepository('redhat/ubi8/ubi', 'redhat', 'quay.io/org'), { host: 'quay.io', repository: 'org/ubi8/ubi' });
  t.is(remappedRepository('redhatx/ubi8/ubi', 'redhat', 'registry.access.redhat.com'), undefined);
  t.is(remappedRepository('redhat', 'redhat', 'registry.access.redhat.com'), undefined, 'a host alone names no repository');
  t.deepEqual(remappedRepository('hub/library/busybox', 'hub', 'docker.io'), { host: 'docker.io', repository: 'library/busybox' });
});

test('a remapped name that is not canonical matches no signature, as ParseNamed refuses it in containers/image', (t) => {
  // docker.io/busybox reads as docker.io/library/busybox: not what was written, so not canonical.
  const problem = remappedRepository('hub/busybox', 'hub', 'docker.io');
  t.is(typeof problem, 'string');
  t.regex(typeof problem === 'string' ? problem : '', /docker\.io\/busybox.*docker\.io\/library\/busybox: not a canonical name/);
  t.deepEqual(remappedRepository('hub/org/app', 'hub', 'docker.io'), { host: 'docker.io', repository: 'org/app' });
  t.deepEqual(remappedRepository('local/app', 'local', 'localhost:5000/ns'), { host: 'localhost:5000', repository: 'ns/app' });
});

test('signatures are read as ParseNormalizedNamed reads them: index.docker.io is docker.io', (t) => {
  t.deepEqual(normalise({ host: 'index.docker.io', repository: 'busybox', tag: '1' }), {
    host: 'docker.io',
    repository: 'library/busybox',
    tag: '1',
  });
  t.deepEqual(normalise({ host: 'index.docker.io', repository: 'org/app' }), { host: 'docker.io', repository: 'org/app' });
  t.deepEqual(normalise({ host: 'quay.io', repository: 'app' }), { host: 'quay.io', repository: 'app' });
});

test('a repository of another project never maps into the mirror', (t) => {
  const component = fc.stringMatching(/^[a-z0-9]{1,8}$/);
  fc.assert(
    fc.property(component, component, fc.array(component, { minLength: 1, maxLength: 3 }), (project, other, rest) => {
      fc.pre(project !== other);
      return remappedRepository([other, ...rest].join('/'), project, 'up.example.com') === undefined;
    }),
  );
  t.pass();
});

test('signed prefixes are what containers/image takes', (t) => {
  for (const ok of ['registry.access.redhat.com', 'localhost:5000', 'quay.io/org/team', '127.0.0.1:8080/ns'])
    t.is(signedPrefixProblem(ok), undefined, ok);
  t.is(signedPrefixProblem('localhost'), undefined);
  t.is(signedPrefixProblem('docker.io'), undefined, 'docker.io/<org>/<app> names are canonical');
  // Every name remapped under these reads as something else in containers/image.
  for (const never of ['myregistry', 'myregistry/ns', 'index.docker.io', 'index.docker.io/org'])
    t.truthy(signedPrefixProblem(never), never);
  for (const bad of ['quay.io/Org', 'quay.io/org:tag', 'quay.io/org@sha256:' + 'a'.repeat(64), 'org/team', 'https://quay.io', '']) {
    t.truthy(signedPrefixProblem(bad), bad);
  }
  t.is(defaultSignedPrefix('https://registry.example.com:8443/ns/'), 'registry.example.com:8443/ns');
});
