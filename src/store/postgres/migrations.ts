/**
 * Numbered schema migrations of the PostgreSQL store, applied in order at start (database.ts), each in
 * its own transaction, under an advisory lock so that replicas starting together migrate once; the
 * table `scimd_schema` records the last one applied. Never edit a released migration: add the next one.
 *
 * The shape follows the SQLite store's schema as it is after its own migrations: the same tables,
 * the same keys computed in JS (src/scim/compare-keys.ts: userName and displayName NFC + lower case,
 * so both engines agree on what is a duplicate), `data` as the canonical JSON text (served without
 * re-serialising it; jsonb would reorder keys) beside `search` as jsonb for the filter compiler.
 * Times are ISO 8601 UTC text as `new Date().toISOString()` writes it, as in SQLite, so that they
 * compare the same way on both engines.
 */

export const MIGRATIONS: string[] = [
  // 1: users, groups, membership, tokens, activity.
  `
  -- Keys, ids and times are compared and sorted by code point (COLLATE "C"), as SQLite does and the
  -- filter compiler asks, so their indexes serve those comparisons whatever the database's collation.
  CREATE TABLE users (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text COLLATE "C" NOT NULL UNIQUE,
    user_name_key text COLLATE "C" NOT NULL UNIQUE,
    external_id text COLLATE "C",
    -- What a Group shows for this User as a member: displayName, else name.formatted.
    display text,
    created text COLLATE "C" NOT NULL,
    last_modified text COLLATE "C" NOT NULL,
    version integer NOT NULL,
    data text NOT NULL,
    search jsonb NOT NULL
  );
  CREATE INDEX users_external_id ON users (external_id);
  CREATE INDEX users_last_modified ON users (last_modified);

  CREATE TABLE groups (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text COLLATE "C" NOT NULL UNIQUE,
    display_name_key text COLLATE "C" NOT NULL UNIQUE,
    external_id text COLLATE "C",
    -- displayName as written, for the groups of a User and the members of a Group.
    display text,
    created text COLLATE "C" NOT NULL,
    last_modified text COLLATE "C" NOT NULL,
    version integer NOT NULL,
    data text NOT NULL,
    search jsonb NOT NULL
  );
  CREATE INDEX groups_external_id ON groups (external_id);
  CREATE INDEX groups_last_modified ON groups (last_modified);

  -- A member is (member_kind, member_seq): 0 = users.seq, 1 = groups.seq, as in SQLite.
  CREATE TABLE group_members (
    group_seq bigint NOT NULL REFERENCES groups (seq) ON DELETE CASCADE,
    member_kind smallint NOT NULL CHECK (member_kind IN (0, 1)),
    member_seq bigint NOT NULL,
    PRIMARY KEY (group_seq, member_kind, member_seq)
  );
  CREATE INDEX group_members_member ON group_members (member_kind, member_seq);

  CREATE TABLE tokens (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id text COLLATE "C" NOT NULL UNIQUE,
    name text NOT NULL,
    hash text NOT NULL UNIQUE,
    created text COLLATE "C" NOT NULL,
    last_used text,
    scope text NOT NULL CHECK (scope IN ('read', 'write')),
    -- Whatever ends the secret first: its lifetime, a rotation's grace, its revocation (see tokens.ts).
    expires text,
    expires_at text,
    rotated text,
    revoked text
  );
  CREATE UNIQUE INDEX tokens_current_name ON tokens (name) WHERE rotated IS NULL AND revoked IS NULL;

  CREATE TABLE activity (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at text NOT NULL,
    request_id text,
    token text,
    via text NOT NULL,
    op text NOT NULL,
    resource_type text NOT NULL,
    resource_id text NOT NULL,
    name text,
    name_key text,
    changes text NOT NULL,
    members_added text,
    members_removed text,
    left_groups text
  );
  CREATE INDEX activity_at ON activity (at);
  CREATE INDEX activity_name ON activity (resource_type, name_key) WHERE name_key IS NOT NULL;
  `,
];
