/**
 * API tokens in the SQLite store: one row per secret (only its hash), a name with one current secret
 * and the rotated-out ones, each accepted until its `expires`. Revoking sets `revoked` and keeps the
 * row, so that a refusal can say why and `tokens list --all` can still name it.
 */
import { TokenNameTaken, type RotatedToken, type TokenRecord, type TokenRefusal, type TokenStore } from "../store";
import { nowIso, type SqliteDatabase } from "./database";

type TokenRow = { id: string; name: string; created: string; last_used: string | null; expires: string | null; revoked: string | null };
const TOKEN_COLUMNS = "id, name, created, last_used, expires, revoked";
const tokenRecord = (r: TokenRow): TokenRecord => ({
  id: r.id,
  name: r.name,
  created: r.created,
  lastUsed: r.last_used,
  expires: r.expires,
  ...(r.revoked === null ? {} : { revoked: r.revoked }),
});

export class SqliteTokens implements TokenStore {
  /** When this process last recorded each token's use. */
  private readonly touched = new Map<string, number>();

  constructor(private readonly d: SqliteDatabase) {}

  async createToken(name: string, hash: string): Promise<TokenRecord> {
    const rec: TokenRecord = { id: crypto.randomUUID(), name, created: nowIso(), lastUsed: null, expires: null };
    // One statement: the name check and the insert cannot be split by another process's insert.
    // Revoked secrets do not hold the name: it is free again once the token is revoked.
    const inserted = this.d.q("INSERT INTO tokens (id, name, hash, created) SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM tokens WHERE name = ?2 AND revoked IS NULL)").run(
      rec.id,
      name,
      hash,
      rec.created,
    ).changes;
    if (inserted === 0) throw new TokenNameTaken(name);
    return rec;
  }

  async rotateToken(name: string, hash: string, graceMs: number): Promise<RotatedToken | undefined> {
    const now = Date.now();
    const created = new Date(now).toISOString();
    const until = new Date(now + graceMs).toISOString();
    return this.d.db
      .transaction((): RotatedToken | undefined => {
        // A revoked token stays revoked: rotating it would bring the name back under its old history.
        if (!this.d.q("SELECT 1 FROM tokens WHERE name = ? AND revoked IS NULL").get(name)) return undefined;
        // Every older secret of the name stops at `until` at the latest (one rotated before keeps its earlier end).
        this.d.q("UPDATE tokens SET expires = ?2 WHERE name = ?1 AND revoked IS NULL AND (expires IS NULL OR expires > ?2)").run(name, until);
        const token: TokenRecord = { id: crypto.randomUUID(), name, created, lastUsed: null, expires: null };
        this.d.q("INSERT INTO tokens (id, name, hash, created) VALUES (?, ?, ?, ?)").run(token.id, name, hash, created);
        const retiring = (this.d.q(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE name = ?1 AND revoked IS NULL AND expires > ?2 ORDER BY created, rowid`).all(name, created) as TokenRow[]).map(tokenRecord);
        return { token, retiring };
      })
      .immediate();
  }

  async refusal(hash: string): Promise<TokenRefusal> {
    const row = this.d.q("SELECT revoked FROM tokens WHERE hash = ?").get(hash) as { revoked: string | null } | null;
    // Revoked wins over expired: a rotated-out secret revoked with its token was revoked, whatever its grace.
    return row === null ? "no such token" : row.revoked !== null ? "revoked" : "expired";
  }

  async findToken(hash: string): Promise<TokenRecord | undefined> {
    // An expired or revoked secret is not found: the check is part of the lookup, so a running server
    // refuses it on its first request after the grace period or the revocation, with no restart or cache.
    const row = this.d.q(`SELECT ${TOKEN_COLUMNS} FROM tokens WHERE hash = ? AND revoked IS NULL AND (expires IS NULL OR expires > ?)`).get(hash, nowIso()) as TokenRow | null;
    if (!row) return undefined;
    const now = Date.now();
    if ((this.touched.get(row.id) ?? 0) < now - 60_000) {
      this.touched.set(row.id, now);
      try {
        this.d.q("UPDATE tokens SET last_used = ? WHERE id = ?").run(new Date(now).toISOString(), row.id);
      } catch {
        // Recording last use is best effort: a busy database must not fail the request.
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
}
