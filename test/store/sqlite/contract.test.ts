/**
 * The store contract (test/store/contract.ts) run against the SQLite store: each database a real file
 * in a temp folder, opened the way `serve` opens it, through openStore.
 */
import { afterAll } from "bun:test";
import { join } from "node:path";
import { openStore } from "../../../src/store/open";
import { tempDir } from "../../helpers";
import { activityContract } from "../contract-activity";
import { storeContract } from "../contract";
import { tokenScopeContract } from "../contract-tokens-scope";
import { scanContract } from "../contract-scan";
import { copyContract } from "../contract-copy";

const tmp = tempDir("scimd-sqlite-contract-");
afterAll(() => tmp.cleanup());
let seq = 0;

const fresh = async () => {
  const path = join(tmp.dir, `db-${++seq}`, "scimd.db");
  return { store: await openStore(path), reopen: () => openStore(path) };
};

storeContract("SQLite", fresh);
activityContract("SQLite", fresh);
tokenScopeContract("SQLite", fresh);
scanContract("SQLite", fresh);
copyContract("SQLite", fresh);
