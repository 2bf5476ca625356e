// The tag globs of mirror runs and sync rules: `*` and `?` as in a shell, everything else literal,
// matched without backtracking. A project admin's glob of 40 stars held the event loop
// indefinitely when globs were regular expressions (adversarial testing).
import test from 'ava';
import fc from 'fast-check';
import { matchesGlob } from '../../mirror/mirror-run.js';

/** The reference: the glob as an anchored regular expression (exponential on many stars, fine on short ones). */
function reference(glob: string, text: string): boolean {
  const source = [...glob].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&'))).join('');
  return new RegExp(`^${source}$`, 's').test(text);
}

test('property: the same answers as the glob read as a regular expression', (t) => {
  const glob = fc.string({ unit: fc.constantFrom('a', 'b', '.', '-', '*', '?', '+', '('), maxLength: 8 });
  const text = fc.string({ unit: fc.constantFrom('a', 'b', '.', '-', '+', '('), maxLength: 10 });
  fc.assert(
    fc.property(glob, text, (g, s) => {
      t.is(matchesGlob(g, s), reference(g, s), `${JSON.stringify(g)} against ${JSON.stringify(s)}`);
    }),
    { numRuns: 3000 },
  );
  t.true(matchesGlob('v1.*', 'v1.2.3'));
  t.false(matchesGlob('v1.*', 'v10'), 'a dot is literal');
  t.true(matchesGlob('*-alpine', '3.19-alpine'));
  t.false(matchesGlob('', 'x'));
  t.true(matchesGlob('*', ''));
});

test('globs of hundreds of stars against the longest tags are answered, not backtracked for ever', (t) => {
  // The longest glob the API takes against the longest tag there is; the old regular expression
  // did not finish these in minutes.
  const tag = 'a'.repeat(128);
  for (const glob of ['*'.repeat(254) + '!', '*a'.repeat(127) + '!', `${'*a*'.repeat(84)}b`]) {
    t.false(matchesGlob(glob, tag), glob.slice(0, 20));
  }
  t.true(matchesGlob('*a'.repeat(127), tag));
});
