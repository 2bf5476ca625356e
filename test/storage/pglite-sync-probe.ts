// Run under strace by embedded-durability.test.ts: creates an embedded database in the directory
// given, commits three statements, marks each commit with a stat of a named path (so the trace
// shows where each one ended), and closes.
import { statSync } from 'node:fs';
import path from 'node:path';
import { createPgliteDb } from '../../storage/db.js';

const dir = process.argv[2]!;
const db = await createPgliteDb(dir);
await db.query('CREATE TABLE kept (v int)');
for (let i = 0; i < 3; i++) {
  await db.query('INSERT INTO kept VALUES ($1)', [i]);
  try {
    statSync(path.join(dir, `committed-${i}`));
  } catch {
    // the path does not exist: only the system call in the trace matters
  }
}
await db.close();
