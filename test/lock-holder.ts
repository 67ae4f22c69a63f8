/**
 * Another process holding a SQLite database's write lock: a child `bun` that opens the file with
 * bun:sqlite, runs BEGIN IMMEDIATE and keeps the transaction open until released (or until the test
 * process goes away: the child exits when its stdin closes).
 */
const SCRIPT = `
const { Database } = require("bun:sqlite");
const db = new Database(process.argv[process.argv.length - 1]);
db.exec("BEGIN IMMEDIATE");
process.stdout.write("locked\\n");
(async () => {
  for await (const _ of Bun.stdin.stream()) break;
  db.exec("ROLLBACK");
  db.close();
  process.stdout.write("released\\n");
  process.exit(0);
})();
`;

export interface LockHolder {
  readonly pid: number;
  /** Rolls the transaction back and waits until the process has exited. */
  release(): Promise<void>;
}

/** Starts the holder and resolves once it holds the lock; `started` gets the process (for a cleanup that kills leftovers). */
export async function holdWriteLock(dbPath: string, started?: Set<Bun.Subprocess>): Promise<LockHolder> {
  const proc = Bun.spawn([process.execPath, "-e", SCRIPT, dbPath], { stdin: "pipe", stdout: "pipe", stderr: "pipe" });
  started?.add(proc);
  void proc.exited.then(() => started?.delete(proc));
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let out = "";
  const until = async (word: string) => {
    const deadline = Date.now() + 5000;
    while (!out.includes(word)) {
      if (Date.now() > deadline) throw new Error(`the lock holder did not say '${word}'; stderr: ${await new Response(proc.stderr).text()}`);
      const { value, done } = await reader.read();
      if (done) throw new Error(`the lock holder exited before saying '${word}' (${await proc.exited}); stderr: ${await new Response(proc.stderr).text()}`);
      out += decoder.decode(value, { stream: true });
    }
  };
  await until("locked");
  return {
    pid: proc.pid,
    release: async () => {
      proc.stdin.write("go\n");
      await proc.stdin.flush();
      await until("released");
      await proc.exited;
    },
  };
}
