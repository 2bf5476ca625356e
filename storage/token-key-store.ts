// The token service's signing key, as one row: the first replica to start generates it, every other
// replica reads it, so a token signed by one replica is accepted by all. The key itself is made by
// auth/tokens.ts; this module only stores and loads it.
import type { Db } from './db.js';

export interface StoredSigningKey {
  kid: string;
  algorithm: string;
  privateJwk: Record<string, unknown>;
  publicJwk: Record<string, unknown>;
}

export interface TokenKeyStore {
  /** The stored key; `make` is called (and its key stored) only when there is none yet. */
  loadOrCreate(make: () => Promise<StoredSigningKey>): Promise<StoredSigningKey>;
}

interface Row {
  kid: string;
  algorithm: string;
  private_jwk: Record<string, unknown> | string;
  public_jwk: Record<string, unknown> | string;
}

const json = (value: Record<string, unknown> | string): Record<string, unknown> =>
  typeof value === 'string' ? (JSON.parse(value) as Record<string, unknown>) : value;

export function createPostgresTokenKeyStore(db: Db): TokenKeyStore {
  const load = async (): Promise<StoredSigningKey | undefined> => {
    const row = (await db.query<Row>('SELECT kid, algorithm, private_jwk, public_jwk FROM token_signing_keys WHERE id = 1'))[0];
    return row && { kid: row.kid, algorithm: row.algorithm, privateJwk: json(row.private_jwk), publicJwk: json(row.public_jwk) };
  };
  return {
    async loadOrCreate(make) {
      const stored = await load();
      if (stored) return stored;
      const made = await make();
      // Replicas starting together: the first insert wins and everyone reads it back.
      await db.query(
        `INSERT INTO token_signing_keys (id, kid, algorithm, private_jwk, public_jwk) VALUES (1, $1, $2, $3, $4)
         ON CONFLICT (id) DO NOTHING`,
        [made.kid, made.algorithm, JSON.stringify(made.privateJwk), JSON.stringify(made.publicJwk)],
      );
      return (await load())!;
    },
  };
}
