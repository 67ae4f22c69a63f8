/**
 * How the commands other than serve open the database: never creating one unless asked (`--create`),
 * since a file the server never reads would hold nothing anyone sees; a missing one is refused with
 * what to do.
 */
import { resolve } from "node:path";
import { DB_FLAG_NAMES, type DbFlagNames } from "../config";
import { isPostgresUrl, openStore } from "../store/open";
import { StoreMissingError, type Store } from "../store/store";
import { dbPasswordFor } from "./db-password";
import { commandLine, dbArg } from "./invocation";

/**
 * Opens the database `db` names, a PostgreSQL one with the password `passwordFile` (or the URL, or
 * PGPASSWORD) holds; throws a one-line Error saying what to do when there is none (and `create` is false).
 */
export async function openExisting(db: string, create = false, passwordFile?: string, names: DbFlagNames = DB_FLAG_NAMES): Promise<Store> {
  const password = dbPasswordFor(db, passwordFile, process.env, names);
  try {
    return await openStore(db, { create, password });
  } catch (e) {
    if (!(e instanceof StoreMissingError)) throw e;
    // A PostgreSQL location is the URL as it may be shown (no password); never `db` itself.
    const where = isPostgresUrl(db) ? e.location : resolve(e.location) === db ? db : `${db} (${resolve(e.location)})`;
    throw new Error(`there is no scimd database at ${where}; pass the --db that your server uses (serve creates it on its first start: ${commandLine("serve", dbArg(db))})`);
  }
}
