/**
 * The store contract again, with every filtered or sorted search run by a reader (a worker thread with
 * its own read-only connection, src/store/sqlite/readers.ts) whatever its plan: the searches that
 * scan go there in production, and they must answer exactly as the main connection does.
 */
import { afterAll } from "bun:test";
import { join } from "node:path";
import { SqliteStore } from "../../../src/store/sqlite/sqlite-store";
import { tempDir } from "../../helpers";
import { storeContract } from "../contract";

const tmp = tempDir("scimd-sqlite-readers-contract-");
afterAll(() => tmp.cleanup());
let seq = 0;

const open = (path: string) => new SqliteStore(path, { readers: { always: true, timeoutMs: 30_000 } });
const fresh = async () => {
  const path = join(tmp.dir, `db-${++seq}`, "scimd.db");
  return { store: open(path), reopen: async () => open(path) };
};

storeContract("SQLite, every search through a reader", fresh);
