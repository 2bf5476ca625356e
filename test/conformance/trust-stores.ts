// The stores behind projects and trust, tested at their own interface (the HTTP suites test them
// only through the handlers): ProjectStore, KeyStore and SignatureStore, on embedded PostgreSQL
// (PGlite) and on a real PostgreSQL server, with what each writes to the audit log. Every test
// names its own projects and repositories (a random suffix), so the tests of a file run together.
import { randomBytes } from 'node:crypto';
import type { TestFn } from 'ava';
import type { Db } from '../../storage/db.js';
import { digestOf } from '../../storage/digest.js';
import { createPostgresKeyStore, type NewKey } from '../../storage/key-store.js';
import { createPostgresMetadataStore } from '../../storage/postgres-metadata-store.js';
import { createPostgresProjectStore } from '../../storage/project-store.js';
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
}
