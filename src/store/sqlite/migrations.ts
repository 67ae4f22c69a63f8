/**
 * Numbered schema migrations, applied in order at start inside one transaction each; `PRAGMA
 * user_version` records the last one applied. Never edit a released migration: add the next one.
 * A migration is SQL text, or a function for a step that SQL alone cannot say deterministically.
 */
import type { Database } from "bun:sqlite";
import { userNameKey } from "../../scim/compare-keys";

export const APPLICATION_ID = 0x5343494d; // "SCIM"

export type Migration = string | ((db: Database) => void);

/**
 * 3: token names become unique, and a token may have rotated-out secrets that expire.
 *
 * Databases from before this step may hold several tokens with one name (the old rotation advice
 * was "generate a new one, then revoke the old one", and `revoke <name>` took both). No secret is
 * invalidated by the migration: the oldest token of a name keeps it, each later one is renamed to
 * `<name>-2`, `<name>-3`, … in creation order (skipping suffixes some token already has), so every
 * secret can be told apart in `tokens list` and revoked alone — `tokens revoke <name>` now removes
 * the old one the admin meant to revoke.
 */
function uniqueTokenNames(db: Database): void {
  const rows = db.query("SELECT id, name FROM tokens ORDER BY name, created, rowid").all() as { id: string; name: string }[];
  const taken = new Set(rows.map((r) => r.name));
  const seen = new Set<string>();
  const rename = db.prepare("UPDATE tokens SET name = ? WHERE id = ?");
  for (const r of rows) {
    if (!seen.has(r.name)) {
      seen.add(r.name);
      continue;
    }
    let n = 2;
    while (taken.has(`${r.name}-${n}`)) n++;
    taken.add(`${r.name}-${n}`);
    rename.run(`${r.name}-${n}`, r.id);
  }
  rename.finalize();
  db.exec(`
    ALTER TABLE tokens ADD COLUMN expires TEXT;
    -- One current secret per name; rotated-out secrets (expires set) keep the name until revoked.
    CREATE UNIQUE INDEX tokens_current_name ON tokens(name) WHERE expires IS NULL;
  `);
}

/**
 * 4: a revoked secret keeps its row, with when it was revoked, so that a refusal can say "revoked" and
 * `tokens list --all` can still name it. A column rather than a tombstone table: a secret is one row
 * already, found by its unique hash, and a refusal, a lookup and the history stay one read of one table.
 * Nothing is revoked by the migration (secrets revoked before it were deleted and stay unknown).
 * A revoked name is free for a new token, so the one-current-secret-per-name index leaves revoked
 * rows out; otherwise a name once revoked could never be used again.
 */
const revokedTokens = `
  ALTER TABLE tokens ADD COLUMN revoked TEXT;
  DROP INDEX tokens_current_name;
  CREATE UNIQUE INDEX tokens_current_name ON tokens(name) WHERE expires IS NULL AND revoked IS NULL;
`;

/**
 * 5: the activity log. One row per committed change of a resource, inserted in the change's own
 * write. An entry holds what it needs to be read alone (the name at that moment, the changed
 * attributes, the ids of members added or removed, the groups a deleted resource left), so reading
 * the log never reads users or groups, and a deleted User stays findable by its last userName.
 * A group PATCH adding 1,000 members is one row with the 1,000 ids, not 1,000 rows.
 * Indexes serve `scimd activity`: by time (and pruning), by resource id, by name key (userName /
 * displayName as the uniqueness keys fold them); newest first is the seq order. Each index is paid
 * on every write, so there is none by token: `--token` reads the entries newest first (within the
 * time window asked for) and stops at --limit. (Migration 7 drops the index by resource id.)
 */
const activityLog = `
  CREATE TABLE activity (
    -- Not AUTOINCREMENT (which costs a write of sqlite_sequence in every transaction): pruning deletes
    -- the oldest rows only, so a new row's seq (the largest + 1) is still above every one kept.
    seq INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    request_id TEXT,
    token TEXT,
    via TEXT NOT NULL,
    op TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    name TEXT,
    name_key TEXT,
    -- JSON array of {attr, old?, new?, changed?}; writeOnly attributes never have a value here.
    changes TEXT NOT NULL,
    -- JSON arrays of member ids, and of {value, display} groups left by a delete; NULL when none.
    members_added TEXT,
    members_removed TEXT,
    left_groups TEXT
  );
  CREATE INDEX activity_at ON activity(at);
  CREATE INDEX activity_resource ON activity(resource_id);
  -- name_key is set only on the entries that give a resource a name (create, a rename), so the index
  -- costs nothing on the other writes; every name a resource had is still found through it.
  CREATE INDEX activity_name ON activity(resource_type, name_key) WHERE name_key IS NOT NULL;
`;

/**
 * 7: the activity log's index by resource id goes. Every write paid a random insert into it (ids are
 * random), the largest part of the log's cost, for reads it did not speed up: `scimd activity --user`
 * scans the log anyway for the group entries that mention the user, and a resource's current name is
 * now found through its own table. From here on only renames and deletes write a name key (the name
 * they give up); the keys of earlier entries stay, and still name their resources.
 */
const activityWithoutResourceIndex = `
  DROP INDEX activity_resource;
`;

/**
 * 6: token scopes and lifetimes. `scope` is what a token may do ('write' for every existing token: they
 * could always write). `expires_at` is the end of the lifetime chosen with --expires-in (none for
 * every existing token); the lookup keeps checking `expires` alone, which from now on holds whatever
 * ends the secret first (its lifetime, a rotation's grace, a revocation), so that an older scimd
 * running beside the migrated file refuses an expired token too (src/store/sqlite/tokens.ts).
 * Since `expires` no longer marks a rotated-out secret, `rotated` does: set here for each unrevoked
 * secret that has an end (only a rotation gave one before), to when the next secret of its name was
 * created; the one-current-secret-per-name index moves to it. Independent of migration 5.
 */
const tokenScopesAndLifetimes = `
  ALTER TABLE tokens ADD COLUMN scope TEXT NOT NULL DEFAULT 'write' CHECK (scope IN ('read', 'write'));
  ALTER TABLE tokens ADD COLUMN expires_at TEXT;
  ALTER TABLE tokens ADD COLUMN rotated TEXT;
  UPDATE tokens SET rotated = coalesce(
    (SELECT min(n.created) FROM tokens n WHERE n.name = tokens.name AND (n.created > tokens.created OR (n.created = tokens.created AND n.rowid > tokens.rowid))),
    expires
  ) WHERE expires IS NOT NULL AND revoked IS NULL;
  DROP INDEX tokens_current_name;
  CREATE UNIQUE INDEX tokens_current_name ON tokens(name) WHERE rotated IS NULL AND revoked IS NULL;
`;

export const MIGRATIONS: Migration[] = [
  // 1: users, groups, membership, tokens.
  `
  CREATE TABLE users (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    user_name_key TEXT NOT NULL UNIQUE,
    external_id TEXT,
    created TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    search TEXT NOT NULL
  );
  CREATE INDEX users_external_id ON users(external_id);
  CREATE INDEX users_last_modified ON users(last_modified);
  -- A narrow index on the creation order: counting and deep pages read it instead of the wide rows.
  CREATE INDEX users_seq ON users(seq);
  CREATE INDEX users_display_name ON users(json_extract(search, '$."displayName"'));

  CREATE TABLE user_emails (
    user_seq INTEGER NOT NULL REFERENCES users(seq) ON DELETE CASCADE,
    value_key TEXT NOT NULL,
    PRIMARY KEY (value_key, user_seq)
  ) WITHOUT ROWID;
  CREATE INDEX user_emails_user ON user_emails(user_seq);

  CREATE TABLE groups (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    display_name_key TEXT NOT NULL UNIQUE,
    external_id TEXT,
    created TEXT NOT NULL,
    last_modified TEXT NOT NULL,
    version INTEGER NOT NULL,
    data TEXT NOT NULL,
    search TEXT NOT NULL
  );
  CREATE INDEX groups_external_id ON groups(external_id);
  CREATE INDEX groups_last_modified ON groups(last_modified);
  CREATE INDEX groups_seq ON groups(seq);

  -- A member is (member_kind, member_seq): 0 = users.seq, 1 = groups.seq. Integer keys keep rows
  -- small, and members added in creation order go to the end of the b-tree, so adding 100 members
  -- to a group of 100,000 writes a few pages, not a hundred scattered ones.
  CREATE TABLE group_members (
    group_seq INTEGER NOT NULL REFERENCES groups(seq) ON DELETE CASCADE,
    member_kind INTEGER NOT NULL CHECK (member_kind IN (0, 1)),
    member_seq INTEGER NOT NULL,
    PRIMARY KEY (group_seq, member_kind, member_seq)
  ) WITHOUT ROWID;
  CREATE INDEX group_members_member ON group_members(member_kind, member_seq);

  CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL,
    last_used TEXT
  );
  `,
  // 2: userName keys gain the width mapping (RFC 8265, src/scim/username.ts): "ａｌｉｃｅ" is keyed as
  // "alice". Only keys with a non-ASCII character can change. A user whose new key another user
  // already holds (both "alice" and "ａｌｉｃｅ" were stored) keeps its old key, so the upgrade loses
  // and merges nothing; the store keeps that key while the userName stays as it is.
  (db) => {
    const rows = db
      .query("SELECT seq, user_name_key AS key, json_extract(data, '$.userName') AS userName FROM users WHERE length(user_name_key) <> length(CAST(user_name_key AS BLOB))")
      .all() as { seq: number; key: string; userName: unknown }[];
    const taken = db.query("SELECT 1 FROM users WHERE user_name_key = ?");
    const rekey = db.query("UPDATE users SET user_name_key = ? WHERE seq = ?");
    for (const r of rows) {
      if (typeof r.userName !== "string") continue;
      const key = userNameKey(r.userName);
      if (key !== r.key && !taken.get(key)) rekey.run(key, r.seq);
    }
  },
  uniqueTokenNames,
  revokedTokens,
  activityLog,
  tokenScopesAndLifetimes,
  activityWithoutResourceIndex,
];
