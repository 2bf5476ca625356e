// The stores behind projects and trust, tested at their own interface (the HTTP suites test them
// only through the handlers): ProjectStore, QuotaStore, KeyStore and SignatureStore, on embedded PostgreSQL
// (PGlite) and on a real PostgreSQL server, with what each writes to the audit log. Every test
// names its own projects and repositories (a random suffix), so the tests of a file run together.
import { randomBytes } from 'node:crypto';
import type { TestFn } from 'ava';
import type { Db } from '../../storage/db.js';
import { digestOf } from '../../storage/digest.js';
import { createPostgresKeyStore, type NewKey } from '../../storage/key-store.js';
import { createPostgresMetadataStore } from '../../storage/postgres-metadata-store.js';
import { createPostgresProjectStore } from '../../storage/project-store.js';
import { createQuotaStore } from '../../storage/quota-store.js';
import { createReplicaStore } from '../../storage/replica-store.js';
import {
  createSignatureStore,
  MAX_SIGNATURE_BYTES_PER_MANIFEST,
  MAX_SIGNATURES_PER_MANIFEST,
  type NewSignature,
} from '../../storage/signature-store.js';

export interface TrustStoresFixture {
  db: Db;
  cleanup(): Promise<void>;
}

function assertTrue(value: boolean): void {
  if (!value) throw new Error('fixture step failed');
}

const unique = (prefix: string): string => `${prefix}${randomBytes(5).toString('hex')}`;

function key(fingerprint = randomBytes(20).toString('hex'), material = randomBytes(64)): NewKey {
  return { kind: 'openpgp', fingerprint, keyIds: [fingerprint.slice(-16)], userIds: ['Test <t@example.com>'], material };
}

function signature(digest: string, content: Buffer = randomBytes(100)): NewSignature {
  return {
    name: `${digest}@${randomBytes(16).toString('hex')}`,
    content,
    signerKeyId: randomBytes(8).toString('hex'),
    identity: 'registry.example.com/p/app:v1',
    signedAt: new Date('2026-01-01T00:00:00Z'),
    createdBy: 'alice',
  };
}

export function trustStoresConformance(test: TestFn, makeFixture: () => Promise<TrustStoresFixture>): void {
  let fixture: TrustStoresFixture | undefined;
  test.before(async () => {
    fixture = await makeFixture();
  });
  test.after.always(async () => {
    await fixture?.cleanup();
  });
  const db = (): Db => {
    if (!fixture) throw new Error('fixture not ready');
    return fixture.db;
  };
  const auditOf = async (project: string) =>
    (
      await db().query<{ actor: string | null; action: string; detail: Record<string, unknown> }>(
        'SELECT actor, action, detail FROM audit_log WHERE project = $1 ORDER BY id',
        [project],
      )
    ).map((r) => ({ ...r, detail: typeof r.detail === 'string' ? (JSON.parse(r.detail) as Record<string, unknown>) : r.detail }));

  test('projects: create once, update, members, remove; every change audited with its actor', async (t) => {
    const projects = createPostgresProjectStore(db());
    const name = unique('p');
    t.true(await projects.create(name, { public: false, actor: 'root', admin: 'alice' }));
    t.false(await projects.create(name, { public: true }), 'a second create of the same name');
    const created = await projects.find(name);
    t.is(created?.public, false);
    t.is(created?.signedOnly, false);
    t.is(created?.members.get('alice'), 'admin');
    t.true(await projects.update(name, { signedOnly: true, quotaBytes: 1000 }, 'alice'));
    t.true(await projects.setMember(name, 'bob', 'developer', 'alice'));
    t.true(await projects.setMember(name, 'bob', 'maintainer', 'alice'), 'a role changes in place');
    const updated = await projects.find(name);
    t.is(updated?.signedOnly, true);
    t.is(updated?.quotaBytes, 1000);
    t.is(updated?.members.get('bob'), 'maintainer');
    t.true(await projects.removeMember(name, 'bob', 'alice'));
    t.false(await projects.removeMember(name, 'bob', 'alice'), 'already gone');
    t.false(await projects.update(unique('missing'), { public: true }));
    t.true((await projects.list()).some((p) => p.name === name));
    t.true(await projects.remove(name, 'root'));
    t.is(await projects.find(name), undefined);
    t.deepEqual(
      (await auditOf(name)).map((e) => [e.actor, e.action]),
      [
        ['root', 'project.create'],
        ['alice', 'project.update'],
        ['alice', 'member.set'],
        ['alice', 'member.set'],
        ['alice', 'member.remove'],
        ['root', 'project.delete'],
      ],
    );
  });

  test('keys: save adds, merges under the row lock, leaves unchanged; remove; audit with digests of the material', async (t) => {
    const keys = createPostgresKeyStore(db());
    const project = unique('k');
    await createPostgresProjectStore(db()).create(project, { public: false });
    const first = key();
    const added = await keys.save(project, first, async () => t.fail('no merge for a new key'), 'alice');
    t.is(added.outcome, 'created');
    const unchanged = await keys.save(project, first, async () => undefined, 'alice');
    t.deepEqual(unchanged, { id: added.id, outcome: 'unchanged' });
    const grown = { ...first, keyIds: [...first.keyIds, 'aaaaaaaaaaaaaaaa'], material: Buffer.concat([first.material, randomBytes(10)]) };
    let seen: Buffer | undefined;
    const updated = await keys.save(
      project,
      first,
      async (stored) => {
        seen = stored;
        return grown;
      },
      'bob',
    );
    t.deepEqual(updated, { id: added.id, outcome: 'updated' });
    t.deepEqual(seen, first.material, 'merge is given the stored material');
    const listed = await keys.list(project);
    t.is(listed.length, 1);
    t.deepEqual(listed[0]!.material, grown.material);
    t.deepEqual(listed[0]!.keyIds, grown.keyIds);
    t.is(listed[0]!.createdBy, 'alice');
    const other = key();
    const second = await keys.save(project, other, async () => undefined);
    t.deepEqual(
      (await keys.list(project)).map((k) => k.id),
      [added.id, second.id],
      'in the order added',
    );
    t.true(await keys.remove(project, added.id, 'carol'));
    t.false(await keys.remove(project, added.id, 'carol'));
    t.false(await keys.remove(unique('other'), second.id), 'a key of another project');
    const audit = (await auditOf(project)).filter((e) => e.action.startsWith('key.'));
    t.deepEqual(
      audit.map((e) => [e.actor, e.action]),
      [
        ['alice', 'key.add'],
        ['bob', 'key.update'],
        [null, 'key.add'],
        ['carol', 'key.remove'],
      ],
    );
    t.is(audit[1]!.detail.before, digestOf('sha256', first.material));
    t.is(audit[1]!.detail.after, digestOf('sha256', grown.material));
  });

  test('keys: concurrent saves of one new key create it once', async (t) => {
    const keys = createPostgresKeyStore(db());
    const project = unique('kc');
    await createPostgresProjectStore(db()).create(project, { public: false });
    const k = key();
    const results = await Promise.allSettled(Array.from({ length: 4 }, () => keys.save(project, k, async () => undefined)));
    const outcomes = results.map((r) => (r.status === 'fulfilled' ? r.value.outcome : 'failed'));
    t.is(outcomes.filter((o) => o === 'created').length, 1, JSON.stringify(outcomes));
    t.is((await keys.list(project)).length, 1);
  });

  test('signatures: numbered in order, duplicates by bytes or name, bounded by count and bytes, go with their manifest', async (t) => {
    const metadata = createPostgresMetadataStore(db());
    const signatures = createSignatureStore(db());
    const repository = `${unique('s')}/app`;
    const content = Buffer.from(JSON.stringify({ schemaVersion: 2, n: unique('m') }));
    const digest = digestOf('sha256', content);
    t.deepEqual(await signatures.add(repository, digest, signature(digest)), { result: 'no-manifest' });
    await metadata.manifests.save(
      repository,
      { digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', content, size: content.length },
      [],
      'v1',
    );
    const one = signature(digest);
    t.deepEqual(await signatures.add(repository, digest, one), { result: 'created', position: 1 });
    t.deepEqual(await signatures.add(repository, digest, { ...signature(digest), content: one.content }), {
      result: 'duplicate',
      position: 1,
    });
    t.deepEqual(await signatures.add(repository, digest, { ...signature(digest), name: one.name }), { result: 'duplicate', position: 1 });
    const two = signature(digest, randomBytes(MAX_SIGNATURE_BYTES_PER_MANIFEST - 100 - 10));
    t.deepEqual(await signatures.add(repository, digest, two), { result: 'created', position: 2 });
    const full = await signatures.add(repository, digest, signature(digest, randomBytes(11)));
    t.is(full.result, 'full', 'the bytes bound');
    const listed = await signatures.list(repository, digest);
    t.deepEqual(
      listed.map((s) => s.position),
      [1, 2],
    );
    t.deepEqual(listed[0]!.content, one.content);
    t.is(listed[0]!.createdBy, 'alice');
    const project = repository.split('/')[0]!;
    // Only while signature-1 is still that one: named by another's digest, nothing goes.
    t.false(await signatures.removeAt(repository, digest, 1, { project, contentDigest: listed[1]!.contentDigest }));
    t.true(await signatures.removeAt(repository, digest, 1, { project, actor: 'alice', contentDigest: listed[0]!.contentDigest }));
    t.deepEqual(
      (await signatures.list(repository, digest)).map((s) => s.content.length),
      [two.content.length],
      'numbering closes up',
    );
    await metadata.manifests.remove(repository, digest);
    t.deepEqual(await signatures.list(repository, digest), [], 'signatures go with their manifest');
  });

  test(`signatures: at most ${MAX_SIGNATURES_PER_MANIFEST} per manifest, even when added at once`, async (t) => {
    const metadata = createPostgresMetadataStore(db());
    const signatures = createSignatureStore(db());
    const repository = `${unique('sc')}/app`;
    const content = Buffer.from(JSON.stringify({ schemaVersion: 2, n: unique('m') }));
    const digest = digestOf('sha256', content);
    await metadata.manifests.save(
      repository,
      { digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', content, size: content.length },
      [],
      'v1',
    );
    const results = await Promise.all(
      Array.from({ length: MAX_SIGNATURES_PER_MANIFEST + 5 }, () => signatures.add(repository, digest, signature(digest, randomBytes(20)))),
    );
    t.is(results.filter((r) => r.result === 'created').length, MAX_SIGNATURES_PER_MANIFEST);
    t.is(results.filter((r) => r.result === 'full').length, 5);
    t.is((await signatures.list(repository, digest)).length, MAX_SIGNATURES_PER_MANIFEST);
  });

  /** A project with a quota, two replicas' quota stores (both heartbeats seen) and blob digests. */
  async function quotaFixture(quotaBytes: number) {
    const project = unique('q');
    const projects = createPostgresProjectStore(db());
    assertTrue(await projects.create(project, { public: false }));
    assertTrue(await projects.update(project, { quotaBytes }));
    const replicas = createReplicaStore(db());
    const ids = [unique('replica-a-'), unique('replica-b-')] as const;
    for (const id of ids) await replicas.beat({ id, host: 'test', version: 'test', startedAt: new Date() });
    const digest = () => digestOf('sha256', randomBytes(32));
    return { project, a: createQuotaStore(db(), ids[0]), b: createQuotaStore(db(), ids[1]), ids, digest, projects };
  }

  test('quota holds: every replica counts what another let through, until its content is linked', async (t) => {
    const { project, a, b, digest, projects } = await quotaFixture(1000);
    const metadata = createPostgresMetadataStore(db());
    const repository = `${project}/app`;
    const first = digest();
    const held = await a.hold(project, { repository, digest: first, size: 600, kind: 'blob' });
    t.is(held.outcome, 'held');
    t.deepEqual(await b.hold(project, { repository, digest: digest(), size: 600, kind: 'blob' }), {
      outcome: 'refused',
      usedBytes: 600,
      quotaBytes: 1000,
    });
    // Linked: the bytes count as usage, and the hold no more, removed or not.
    await metadata.blobs.save(repository, first, 600);
    t.is((await projects.usage(project)).usedBytes, 600);
    const second = await b.hold(project, { repository, digest: digest(), size: 400, kind: 'blob' });
    t.is(second.outcome, 'held');
    t.is((await a.hold(project, { repository, digest: digest(), size: 1, kind: 'blob' })).outcome, 'refused');
    // Released unlinked (its request failed): the room is back.
    if (second.outcome === 'held') await b.release(second.id);
    t.is((await a.hold(project, { repository, digest: digest(), size: 400, kind: 'blob' })).outcome, 'held');
    // What the project holds adds nothing; a manifest only when this repository holds it.
    t.deepEqual(await b.hold(project, { repository: `${project}/other`, digest: first, size: 600, kind: 'blob' }), { outcome: 'free' });
    if (held.outcome === 'held') await a.release(held.id);
    await a.release('no-such-hold');
    t.deepEqual(await a.hold(unique('none'), { repository: 'x/y', digest: first, size: 1, kind: 'blob' }), { outcome: 'free' });
  });

  test('quota holds: a manifest held counts until that repository holds it', async (t) => {
    const { project, a, b } = await quotaFixture(1200);
    const metadata = createPostgresMetadataStore(db());
    const repository = `${project}/app`;
    const content = Buffer.from(JSON.stringify({ schemaVersion: 2, pad: 'x'.repeat(500) }));
    const digest = digestOf('sha256', content);
    t.is((await a.hold(project, { repository, digest, size: content.length, kind: 'manifest' })).outcome, 'held');
    t.is((await b.hold(project, { repository, digest: `${digest.slice(0, -4)}0000`, size: 700, kind: 'manifest' })).outcome, 'refused');
    await metadata.manifests.save(
      repository,
      { digest, mediaType: 'application/vnd.oci.image.manifest.v1+json', content, size: content.length },
      [],
      'v1',
    );
    t.is((await b.hold(project, { repository, digest, size: content.length, kind: 'manifest' })).outcome, 'free');
    // The copy in another repository counts on its own.
    t.is((await b.hold(project, { repository: `${project}/copy`, digest, size: content.length, kind: 'manifest' })).outcome, 'held');
  });

  test('quota holds: those of a replica no longer seen count no more', async (t) => {
    const { project, a, b, ids, digest } = await quotaFixture(1000);
    const repository = `${project}/app`;
    t.is((await b.hold(project, { repository, digest: digest(), size: 900, kind: 'blob' })).outcome, 'held');
    t.is((await a.hold(project, { repository, digest: digest(), size: 900, kind: 'blob' })).outcome, 'refused');
    // A heartbeat late (a replica too busy to write it): its fresh hold still counts.
    await db().query(`UPDATE replicas SET seen_at = now() - interval '10 minutes' WHERE id = $1`, [ids[1]]);
    t.is((await a.hold(project, { repository, digest: digest(), size: 900, kind: 'blob' })).outcome, 'refused');
    // Gone for longer than a hold lives through a heartbeat gap: its hold counts no more.
    await db().query(`UPDATE quota_holds SET created_at = now() - interval '10 minutes' WHERE replica = $1`, [ids[1]]);
    t.is((await a.hold(project, { repository, digest: digest(), size: 900, kind: 'blob' })).outcome, 'held');
    const left = await db().query<{ replica: string }>('SELECT replica FROM quota_holds WHERE project = $1', [project]);
    t.deepEqual(
      left.map((r) => r.replica),
      [ids[0]],
      'the stale hold is removed',
    );
    // A process's own holds count before its first heartbeat is written.
    const fresh = createQuotaStore(db(), unique('unseen-'));
    t.is((await fresh.hold(project, { repository, digest: digest(), size: 50, kind: 'blob' })).outcome, 'held');
    t.is((await fresh.hold(project, { repository, digest: digest(), size: 60, kind: 'blob' })).outcome, 'refused');
  });

  test('quota holds: checks at once from two replicas never pass the quota together', async (t) => {
    const { project, a, b, digest } = await quotaFixture(1000);
    const repository = `${project}/app`;
    const answers = await Promise.all(
      Array.from({ length: 24 }, (_, i) => (i % 2 ? a : b).hold(project, { repository, digest: digest(), size: 300, kind: 'blob' })),
    );
    t.is(answers.filter((x) => x.outcome === 'held').length, 3);
    t.is(answers.filter((x) => x.outcome === 'refused').length, 21);
  });
}
