/**
 * API tokens in the SQLite store: one row per secret (only its hash), a name with one current secret
 * and the rotated-out ones. Revoking sets `revoked` and keeps the row, so that a refusal can say why
 * and `tokens list --all` can still name it.
 *
 * `expires` is the one column that says when a secret stops being accepted, whatever ends it: the
 * lifetime chosen with --expires-in (also kept in `expires_at`, which a rotation does not change), the
 * grace period after a rotation (`rotated` says when that happened), or a revocation. Every lookup
 * checks that one column, and so does every older scimd: a server still running an older binary while
 * a newer one migrated the file (it knows neither `expires_at` nor `revoked`) refuses an expired or a
 * revoked token too.
 *
 * For the same older binary, a read-scoped secret's hash is stored with the prefix `read:`: an older
 * scimd knows no scopes, looks the bare hash up and so refuses a read token (401) instead of letting it
 * write. This store looks both spellings up in one indexed lookup (`hash IN (h, 'read:' || h)`); the
 * `scope` column stays the record's scope, written with the prefixed hash in the same row.
 */
import { keptLifetimeMs, TokenNameTaken, type RotatedToken, type RotateOptions, type TokenCopy, type TokenOptions, type TokenRecord, type TokenRefusalDetail, type TokenScope, type TokenStore } from "../store";
import { nowIso, type SqliteDatabase } from "./database";

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

/** The prefix of a read-scoped secret's stored hash (see the file's comment). */
const READ_PREFIX = "read:";
const storedHash = (hash: string, scope: TokenScope) => (scope === "read" ? READ_PREFIX + hash : hash);
/** Matches a secret's row by its hash, whichever scope it was stored with; ?1 is the hash. */
const BY_HASH = `hash IN (?1, '${READ_PREFIX}' || ?1)`;

export class SqliteTokens implements TokenStore {
  /** When this process last recorded each token's use. */
  private readonly touched = new Map<string, number>();

  constructor(private readonly d: SqliteDatabase) {}

  async createToken(name: string, hash: string, opts: TokenOptions = {}): Promise<TokenRecord> {
    const scope = opts.scope ?? "write";
    const expiresAt = opts.expiresAt ?? null;
    const rec: TokenRecord = { id: crypto.randomUUID(), name, created: nowIso(), lastUsed: null, scope, expires: expiresAt, expiresAt };
    // One statement: the name check and the insert cannot be split by another process's insert.
    // Revoked secrets do not hold the name: it is free again once the token is revoked.
    const inserted = this.d
      .q("INSERT INTO tokens (id, name, hash, created, scope, expires, expires_at) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6 WHERE NOT EXISTS (SELECT 1 FROM tokens WHERE name = ?2 AND revoked IS NULL)")
      .run(rec.id, name, storedHash(hash, scope), rec.created, scope, expiresAt).changes;
    if (inserted === 0) throw new TokenNameTaken(name);
    return rec;
  }

  async rotateToken(name: string, hash: string, graceMs: number, opts: RotateOptions = {}): Promise<RotatedToken | undefined> {
    const now = Date.now();
    const created = new Date(now).toISOString();
    const until = new Date(now + graceMs).toISOString();
    return this.d.db
      .transaction((): RotatedToken | undefined => {
        // A revoked token stays revoked: rotating it would bring the name back under its old history.
        // The newest unrevoked secret gives the scope and the lifetime to keep (an expired one too:
        // rotating is how an expired token gets a working secret under its name and scope).
        const cur = this.d.q("SELECT scope, created, expires_at FROM tokens WHERE name = ? AND revoked IS NULL ORDER BY rotated IS NULL DESC, created DESC, rowid DESC LIMIT 1").get(name) as
          | { scope: TokenScope; created: string; expires_at: string | null }
          | null;
        if (!cur) return undefined;
        const expiresAt =
          opts.expiresAt !== undefined
            ? opts.expiresAt
            : cur.expires_at === null
              ? null
              : new Date(now + keptLifetimeMs(cur.created, cur.expires_at)).toISOString();
        // Every older secret stops at `until` at the latest (one rotated before, or one whose lifetime
        // ends sooner, keeps its earlier end); the current one is marked as replaced now.
        this.d
          .q("UPDATE tokens SET rotated = coalesce(rotated, ?3), expires = CASE WHEN expires IS NULL OR expires > ?2 THEN ?2 ELSE expires END WHERE name = ?1 AND revoked IS NULL")
          .run(name, until, created);
        const token: TokenRecord = { id: crypto.randomUUID(), name, created, lastUsed: null, scope: cur.scope, expires: expiresAt, expiresAt };
        this.d
          .q("INSERT INTO tokens (id, name, hash, created, scope, expires, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)")
          .run(token.id, name, storedHash(hash, cur.scope), created, cur.scope, expiresAt);
        const retiring = (
          this.d.q(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE name = ?1 AND revoked IS NULL AND rotated IS NOT NULL AND expires > ?2 ORDER BY created, rowid`).all(name, created) as TokenRow[]
        ).map(tokenRecord);
        return { token, retiring };
      })
      .immediate();
  }

  async refusal(hash: string): Promise<TokenRefusalDetail> {
    const row = this.d.q(`SELECT revoked, expires, expires_at FROM tokens WHERE ${BY_HASH}`).get(hash) as { revoked: string | null; expires: string | null; expires_at: string | null } | null;
    if (row === null) return { reason: "no such token" };
    // Revoked wins over expired: a rotated-out secret revoked with its token was revoked, whatever its grace.
    if (row.revoked !== null) return { reason: "revoked" };
    // Not revoked and not ended: findToken must have missed it in a race (created just now); not expired.
    if (row.expires === null || row.expires > nowIso()) return { reason: "no such token" };
    // `expires` is the earlier of the lifetime's end and the rotation's grace end: equal to the first, the lifetime ended it.
    return { reason: "expired", at: row.expires, by: row.expires_at !== null && row.expires_at <= row.expires ? "lifetime" : "rotation" };
  }

  async findToken(hash: string): Promise<TokenRecord | undefined> {
    // An expired or revoked secret is not found: the check is part of the lookup, so a running server
    // refuses it on its first request after its lifetime, the grace period or the revocation, with no
    // restart or cache.
    const row = this.d.q(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE ${BY_HASH} AND revoked IS NULL AND (expires IS NULL OR expires > ?2)`).get(hash, nowIso()) as TokenRow | null;
    if (!row) return undefined;
    const now = Date.now();
    if ((this.touched.get(row.id) ?? 0) < now - 60_000) {
      this.touched.set(row.id, now);
      // Best effort, never waiting: while another process holds the write lock, this use is not
      // recorded (a later request tries again), where a waiting UPDATE would stall the event loop for
      // the busy timeout. A failing database must not fail the request either.
      try {
        if (!this.d.writeNowIfFree("UPDATE tokens SET last_used = ? WHERE id = ?", new Date(now).toISOString(), row.id)) this.touched.delete(row.id);
      } catch {
        this.touched.delete(row.id);
      }
    }
    return tokenRecord(row);
  }

  async listTokens(): Promise<TokenRecord[]> {
    return (this.d.q(`SELECT ${TOKEN_COLUMNS} FROM tokens ORDER BY created, rowid`).all() as TokenRow[]).map(tokenRecord);
  }

  async revokeToken(idOrName: string): Promise<number> {
    // One statement revokes every secret of a name at the same instant, its rotated-out ones too. It
    // also ends `expires` there: a server still running an older scimd (which knows no `revoked`
    // column, and kept running while a newer binary migrated the file) then refuses the token too.
    return this.d
      .q("UPDATE tokens SET revoked = ?2, expires = CASE WHEN expires IS NULL OR expires > ?2 THEN ?2 ELSE expires END WHERE (id = ?1 OR name = ?1) AND revoked IS NULL")
      .run(idOrName, nowIso()).changes;
  }

  async tokenCount(): Promise<number> {
    return (this.d.q("SELECT count(*) AS n FROM tokens WHERE revoked IS NULL AND (expires IS NULL OR expires > ?)").get(nowIso()) as { n: number }).n;
  }

  /** CopyStore.tokenCopies: every row, the hash without its `read:` spelling. */
  async copies(): Promise<TokenCopy[]> {
    const rows = this.d.q(`SELECT ${TOKEN_COLUMNS}, hash FROM tokens ORDER BY created, rowid`).all() as (TokenRow & { hash: string })[];
    return rows.map((r) => ({ ...tokenRecord(r), hash: r.scope === "read" && r.hash.startsWith(READ_PREFIX) ? r.hash.slice(READ_PREFIX.length) : r.hash }));
  }

  /** CopyStore.insertTokenCopies: the rows as they are, in one write unit (all or none). */
  async insertCopies(tokens: readonly TokenCopy[]): Promise<void> {
    if (!tokens.length) return;
    await this.d.write(() => {
      const insert = this.d.q("INSERT INTO tokens (id, name, hash, created, last_used, scope, expires, expires_at, rotated, revoked) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
      for (const t of tokens)
        insert.run(t.id, t.name, storedHash(t.hash, t.scope), t.created, t.lastUsed, t.scope, t.expires, t.expiresAt, t.rotated ?? null, t.revoked ?? null);
    });
  }
}
