// The name grammars in one place: repository names, project names (one component of them) and
// robot short names, for the API, the robot accounts in Basic credentials and the mirror alike.
import test from 'ava';
import fc from 'fast-check';
import { isValidName, isValidProjectName, isValidRobotName } from '../../storage/oci-grammar.js';

test('a project name is exactly a one-component repository name', (t) => {
  const text = fc.string({ unit: fc.constantFrom(...[...'abz09._-/A '], '\u0000'), maxLength: 40 });
  fc.assert(fc.property(text, (name) => isValidProjectName(name) === (isValidName(name) && !name.includes('/'))));
  for (const good of ['team', 'a', 'my-team', 'my--team', 'my__team', 'v1.2', 'x'.repeat(255)]) t.true(isValidProjectName(good), good);
  for (const bad of ['', 'Team', 'team/app', '-team', 'team-', 'my___team', 'a..b', 'a\u0000b', 'x'.repeat(256)])
    t.false(isValidProjectName(bad), bad);
});

test('a robot short name is a project-name component of at most 64 characters', (t) => {
  t.true(isValidRobotName('ci'));
  t.true(isValidRobotName('x'.repeat(64)));
  t.false(isValidRobotName('x'.repeat(65)));
  for (const bad of ['', 'CI', 'ci+bot', 'ci/bot', 'ci\u0000']) t.false(isValidRobotName(bad), bad);
});
