/**
 * Which processes have a SQLite database open, found the way SQLite itself finds out: its locks.
 *
 * SQLite's unix VFS locks with POSIX advisory locks (fcntl). Every connection to a database in WAL
 * mode holds a shared lock on one byte of the `-shm` file (the "DMS" byte, offset 128) for as long as
 * it is open, and a shared lock on the database file's SHARED range while it reads; `fcntl(F_GETLK)`
 * asks the kernel whether a write lock could be taken there and, if not, which process holds the
 * conflicting lock. The kernel drops a process's locks when it exits, however it exits, so a server
 * killed with SIGKILL never blocks a restore afterwards, and a pid reused by an unrelated process holds
 * no lock (unlike a pid file, which would have to be trusted and cleaned up).
 *
 * Limits: F_GETLK never reports locks of the calling process itself (POSIX locks are per process), so
 * this looks only at other processes; and it needs libc through bun:ffi (Linux, glibc), returning
 * `undefined` where that is not there. The caller then relies on SQLite's own exclusive lock alone.
 */
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";

/** A process holding one of SQLite's locks on the database, and which lock it is. */
export interface LockHolder {
  pid: number;
  /** Its command line as /proc shows it (shortened), or undefined when it cannot be read. */
  command?: string;
  /** Which lock, in words, for the refusal: how scimd knows. */
  lock: string;
}

/** Byte offsets of SQLite's unix VFS locks (os_unix.c): the -shm DMS byte, and the database file's lock bytes. */
const SHM_DMS_BYTE = 128;
const PENDING_BYTE = 0x40000000;
/** PENDING, RESERVED and the 510-byte SHARED range. */
const DB_LOCK_BYTES = 512;

/** Linux's fcntl commands and lock types (the same on x86-64 and arm64; F_GETLK is the 64-bit one there). */
const F_GETLK = 5;
const F_WRLCK = 1;
const F_UNLCK = 2;

type Fcntl = (fd: number, cmd: number, lock: Uint8Array) => number;
let fcntl: Fcntl | null | undefined;

/** libc's fcntl through bun:ffi, or null where it cannot be loaded (not Linux, no glibc). */
async function loadFcntl(): Promise<Fcntl | null> {
  if (fcntl !== undefined) return fcntl;
  if (process.platform !== "linux") return (fcntl = null);
  try {
    const { dlopen, ptr } = await import("bun:ffi");
    const libc = dlopen("libc.so.6", { fcntl: { args: ["i32", "i32", "ptr"], returns: "i32" } });
    fcntl = (fd, cmd, lock) => libc.symbols.fcntl(fd, cmd, ptr(lock)) as number;
  } catch {
    fcntl = null;
  }
  return fcntl;
}

/**
 * The process holding a lock that conflicts with a write lock on [start, start+len) of `file`, or
 * undefined when none does (or the file is not there). `struct flock` on 64-bit Linux: l_type (i16)
 * at 0, l_whence (i16) at 2, l_start (i64) at 8, l_len (i64) at 16, l_pid (i32) at 24; 32 bytes.
 */
function holderOf(call: Fcntl, file: string, start: number, len: number): number | undefined {
  let fd: number;
  try {
    fd = openSync(file, "r");
  } catch {
    return undefined;
  }
  try {
    const lock = new Uint8Array(32);
    const v = new DataView(lock.buffer);
    v.setInt16(0, F_WRLCK, true);
    v.setInt16(2, 0, true); // SEEK_SET
    v.setBigInt64(8, BigInt(start), true);
    v.setBigInt64(16, BigInt(len), true);
    if (call(fd, F_GETLK, lock) !== 0) return undefined;
    return v.getInt16(0, true) === F_UNLCK ? undefined : v.getInt32(24, true);
  } finally {
    closeSync(fd);
  }
}

/** A process's command line from /proc, NULs as spaces, at most 200 characters. */
function commandOf(pid: number): string | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0+$/, "").replaceAll("\0", " ");
    return raw.length > 200 ? `${raw.slice(0, 199)}…` : raw || undefined;
  } catch {
    return undefined;
  }
}

/**
 * The other processes that have the database at `path` open, by SQLite's locks: [] when none does,
 * undefined when this platform cannot ask (see the module comment).
 */
export async function lockHolders(path: string): Promise<LockHolder[] | undefined> {
  const call = await loadFcntl();
  if (!call) return undefined;
  const found = new Map<number, LockHolder>();
  const add = (pid: number | undefined, lock: string) => {
    if (pid !== undefined && pid > 0 && !found.has(pid)) found.set(pid, { pid, command: commandOf(pid), lock });
  };
  const shm = `${path}-shm`;
  if (existsSync(shm))
    add(holderOf(call, shm, SHM_DMS_BYTE, 1), `SQLite's shared lock on byte ${SHM_DMS_BYTE} of ${shm}, which every connection to the database holds while it is open`);
  add(holderOf(call, path, PENDING_BYTE, DB_LOCK_BYTES), `a SQLite lock on ${path} itself (a reader, a writer, or a connection in rollback-journal mode)`);
  return [...found.values()];
}
