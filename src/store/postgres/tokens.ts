/**
 * API tokens in the PostgreSQL store: the same records and rules as the SQLite store
 * (src/store/sqlite/tokens.ts): one row per secret (its hash only), `expires` the one column a lookup
 * checks, revoked rows kept. Writes that read a name's secrets first (create, rotate) hold a
 * transaction-scoped advisory lock on the name, so replicas serialise them without locking the table.
 * No `read:` hash prefix: it exists in SQLite for older binaries sharing a file, which no PostgreSQL
 * database has had.
 */
import { keptLifetimeMs, TokenNameTaken, type RotatedToken, type RotateOptions, type TokenCopy, type TokenOptions, type TokenRecord, type TokenRefusalDetail, type TokenScope, type TokenStore } from "../store";
import { nowIso, type PostgresDatabase, type Tx } from "./database";

type TokenRow = {
  id: string;
  name: string;
  created: string;
  last_used: string | null;
  scope: TokenScope;
  expires: string | null;
  expires_at: string | null;
  rotated: string | null;
  revoked: string | null;
};
const TOKEN_COLUMNS = "id, name, created, last_used, scope, expires, expires_at, rotated, revoked";
const tokenRecord = (r: TokenRow): TokenRecord => ({
  id: r.id,
  name: r.name,
  created: r.created,
  lastUsed: r.last_used,
  scope: r.scope,
  expires: r.expires,
  expiresAt: r.expires_at,
  ...(r.rotated === null ? {} : { rotated: r.rotated }),
  ...(r.revoked === null ? {} : { revoked: r.revoked }),
});

/** Serialises the writes of one token name across connections and replicas, until the transaction ends. */
const lockName = (tx: Tx, name: string) => tx`SELECT pg_advisory_xact_lock(hashtextextended(${"scimd-token:" + name}, 0))`;

export class PostgresTokens implements TokenStore {
  private readonly touched = new Map<string, number>();

  constructor(private readonly d: PostgresDatabase) {}

  async createToken(name: string, hash: string, opts: TokenOptions = {}): Promise<TokenRecord> {
    const scope = opts.scope ?? "write";
    const expiresAt = opts.expiresAt ?? null;
    const rec: TokenRecord = { id: crypto.randomUUID(), name, created: nowIso(), lastUsed: null, scope, expires: expiresAt, expiresAt };
    const inserted = await this.d.write(async (tx) => {
      await lockName(tx, name);
      const r = await tx.unsafe(
        "INSERT INTO tokens (id, name, hash, created, scope, expires, expires_at) SELECT $1, $2, $3, $4, $5, $6, $6 WHERE NOT EXISTS (SELECT 1 FROM tokens WHERE name = $2 AND revoked IS NULL)",
        [rec.id, name, hash, rec.created, scope, expiresAt],
      );
      return r.count as number;
    });
    if (inserted === 0) throw new TokenNameTaken(name);
    return rec;
  }

  async rotateToken(name: string, hash: string, graceMs: number, opts: RotateOptions = {}): Promise<RotatedToken | undefined> {
    const now = Date.now();
    const created = new Date(now).toISOString();
    const until = new Date(now + graceMs).toISOString();
    return this.d.write(async (tx): Promise<RotatedToken | undefined> => {
      await lockName(tx, name);
      const [cur] = (await tx.unsafe(
        "SELECT scope, created, expires_at FROM tokens WHERE name = $1 AND revoked IS NULL ORDER BY rotated IS NULL DESC, created DESC, seq DESC LIMIT 1",
        [name],
      )) as { scope: TokenScope; created: string; expires_at: string | null }[];
      if (!cur) return undefined;
      const expiresAt =
        opts.expiresAt !== undefined ? opts.expiresAt : cur.expires_at === null ? null : new Date(now + keptLifetimeMs(cur.created, cur.expires_at)).toISOString();
      await tx.unsafe("UPDATE tokens SET rotated = coalesce(rotated, $3), expires = CASE WHEN expires IS NULL OR expires > $2 THEN $2 ELSE expires END WHERE name = $1 AND revoked IS NULL", [
        name,
        until,
        created,
      ]);
      const token: TokenRecord = { id: crypto.randomUUID(), name, created, lastUsed: null, scope: cur.scope, expires: expiresAt, expiresAt };
      await tx.unsafe("INSERT INTO tokens (id, name, hash, created, scope, expires, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $6)", [token.id, name, hash, created, cur.scope, expiresAt]);
      const retiring = (
        (await tx.unsafe(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE name = $1 AND revoked IS NULL AND rotated IS NOT NULL AND expires > $2 ORDER BY created, seq`, [name, created])) as TokenRow[]
      ).map(tokenRecord);
      return { token, retiring };
    });
  }

  async refusal(hash: string): Promise<TokenRefusalDetail> {
    const [row] = (await this.d.sql`SELECT revoked, expires, expires_at FROM tokens WHERE hash = ${hash}`) as { revoked: string | null; expires: string | null; expires_at: string | null }[];
    if (!row) return { reason: "no such token" };
    if (row.revoked !== null) return { reason: "revoked" };
    if (row.expires === null || row.expires > nowIso()) return { reason: "no such token" };
    return { reason: "expired", at: row.expires, by: row.expires_at !== null && row.expires_at <= row.expires ? "lifetime" : "rotation" };
  }

  async findToken(hash: string): Promise<TokenRecord | undefined> {
    const [row] = (await this.d.sql.unsafe(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE hash = $1 AND revoked IS NULL AND (expires IS NULL OR expires > $2)`, [hash, nowIso()])) as TokenRow[];
    if (!row) return undefined;
    const now = Date.now();
    if ((this.touched.get(row.id) ?? 0) < now - 60_000) {
      this.touched.set(row.id, now);
      try {
        await this.d.sql`UPDATE tokens SET last_used = ${new Date(now).toISOString()} WHERE id = ${row.id}`;
      } catch {
        // Recording last use is best effort: it must not fail the request.
      }
    }
    return tokenRecord(row);
  }

  async listTokens(): Promise<TokenRecord[]> {
    return ((await this.d.sql.unsafe(`SELECT ${TOKEN_COLUMNS} FROM tokens ORDER BY created, seq`)) as TokenRow[]).map(tokenRecord);
  }

  async revokeToken(idOrName: string): Promise<number> {
    const r = await this.d.sql.unsafe(
      "UPDATE tokens SET revoked = $2, expires = CASE WHEN expires IS NULL OR expires > $2 THEN $2 ELSE expires END WHERE (id = $1 OR name = $1) AND revoked IS NULL",
      [idOrName, nowIso()],
    );
    return r.count as number;
  }

  async tokenCount(): Promise<number> {
    const [{ n }] = await this.d.sql`SELECT count(*)::int AS n FROM tokens WHERE revoked IS NULL AND (expires IS NULL OR expires > ${nowIso()})`;
    return n as number;
  }

  /** CopyStore.tokenCopies: every row with its hash, oldest first. */
  async copies(): Promise<TokenCopy[]> {
    const rows = (await this.d.sql.unsafe(`SELECT ${TOKEN_COLUMNS}, hash FROM tokens ORDER BY created, seq`)) as (TokenRow & { hash: string })[];
    return rows.map((r) => ({ ...tokenRecord(r), hash: r.hash }));
  }

  /** CopyStore.insertTokenCopies: the rows as they are, in one transaction (all or none). */
  async insertCopies(tokens: readonly TokenCopy[]): Promise<void> {
    if (!tokens.length) return;
    await this.d.write(async (tx) => {
      for (const t of tokens)
        await tx.unsafe("INSERT INTO tokens (id, name, hash, created, last_used, scope, expires, expires_at, rotated, revoked) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)", [
          t.id,
          t.name,
          t.hash,
          t.created,
          t.lastUsed,
          t.scope,
          t.expires,
          t.expiresAt,
          t.rotated ?? null,
          t.revoked ?? null,
        ]);
    });
  }
}
