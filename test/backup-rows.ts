/**
 * Shared by the backup and restore tests: every row of a scimd SQLite file as comparable text, and the
 * consistency checks a snapshot must pass (memberships and e-mail keys point at rows that exist).
 */
import { Database } from "bun:sqlite";

/** Each table's rows (sorted JSON, so the order rows happen to be stored in does not matter), the AUTOINCREMENT counters and the schema version. */
export function dumpRows(path: string): Record<string, string[]> {
  const db = new Database(path, { readonly: true });
  try {
    const tables = (db.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((r) => r.name);
    const out: Record<string, string[]> = {};
    for (const t of tables) out[t] = (db.query(`SELECT * FROM "${t}"`).all() as unknown[]).map((r) => JSON.stringify(r)).sort();
    out["(user_version)"] = [String((db.query("PRAGMA user_version").get() as { user_version: number }).user_version)];
    out["(schema)"] = (db.query("SELECT type || ' ' || name || ' ' || coalesce(sql, '') AS s FROM sqlite_master ORDER BY type, name").all() as { s: string }[]).map((r) => r.s);
    return out;
  } finally {
    db.close();
  }
}

/** What is wrong with a snapshot: integrity findings, and rows that point at rows it does not hold. */
export function inconsistencies(path: string): string[] {
  const db = new Database(path, { readonly: true });
  try {
    const found = (db.query("PRAGMA integrity_check").all() as { integrity_check: string }[]).map((r) => r.integrity_check).filter((s) => s !== "ok");
    const q = (label: string, sql: string) => {
      const n = (db.query(sql).get() as { n: number }).n;
      if (n) found.push(`${n} ${label}`);
    };
    q("memberships of a missing group", "SELECT count(*) AS n FROM group_members m WHERE NOT EXISTS (SELECT 1 FROM groups g WHERE g.seq = m.group_seq)");
    q("memberships of a missing user", "SELECT count(*) AS n FROM group_members m WHERE m.member_kind = 0 AND NOT EXISTS (SELECT 1 FROM users u WHERE u.seq = m.member_seq)");
    q("memberships of a missing group member", "SELECT count(*) AS n FROM group_members m WHERE m.member_kind = 1 AND NOT EXISTS (SELECT 1 FROM groups g WHERE g.seq = m.member_seq)");
    q("e-mail keys of a missing user", "SELECT count(*) AS n FROM user_emails e WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.seq = e.user_seq)");
    q("users without their e-mail keys", "SELECT count(*) AS n FROM users u WHERE json_array_length(json_extract(u.data, '$.emails')) > 0 AND NOT EXISTS (SELECT 1 FROM user_emails e WHERE e.user_seq = u.seq)");
    return found;
  } finally {
    db.close();
  }
}

/** The userNames stored in a scimd file, sorted. */
export function userNames(path: string): string[] {
  const db = new Database(path, { readonly: true });
  try {
    return (db.query("SELECT json_extract(data, '$.userName') AS u FROM users ORDER BY 1").all() as { u: string }[]).map((r) => r.u);
  } finally {
    db.close();
  }
}
