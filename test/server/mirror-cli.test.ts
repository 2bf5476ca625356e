// The one-line summary `signet mirror run` prints at the end of a run.
import test from 'ava';
import { summary } from '../../server/mirror-cli.js';

const REPORT = {
  repository: 'library/alpine',
  matched: 3,
  copied: 2,
  skipped: ['3.19'],
  failed: [],
  bytes: 5 * 1024 * 1024,
  signatures: 2,
  durationMs: 1500,
};

test('a complete run: what matched, was copied, skipped and failed', (t) => {
  const line = summary(REPORT);
  t.regex(line, /^library\/alpine: 3 tag\(s\) matched; copied 2, skipped 1 already present \(3\.19\), 0 failed; .* in 1\.5 s$/);
  t.false(line.includes('stopped'));
});

test('a run that stopped before the end of the upstream list says why, and failures are listed', (t) => {
  const line = summary({
    ...REPORT,
    stopped: 'more than 10000 tags match: copying the first 10000 matching tag(s) listed',
    failed: [{ tag: 'bad', error: 'upstream answered 500' }],
  });
  t.regex(line, /\n {2}stopped early: more than 10000 tags match: copying the first 10000 matching tag\(s\) listed/);
  t.regex(line, /\n {2}failed bad: upstream answered 500$/);
});
