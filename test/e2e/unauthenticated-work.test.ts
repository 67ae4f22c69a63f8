/**
 * Bounded unauthenticated work and body limits, proven against dist/scimd (issue 13): the listener's
 * body cap is Bun's, set in serve, so only the binary shows what a client really gets. An
 * unauthenticated request's body is never read: the 401 goes out with `Connection: close` and the
 * connection ends without waiting for the body it announced. A body over --max-body-bytes gets the
 * SCIM 413 (its detail naming the limit) whether it announces its length or comes chunked, and however
 * large it is — not Bun's bare 413 and a closed connection.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { userBody } from "../helpers";
import { BASE_PATH, buildBinaryInto, cleanEnv, startServe, stopAll, type Served } from "./harness";

let tmp = "";
let server: Served;
let token = "";
let port = 0;
const started = new Set<Bun.Subprocess>();
const LIMIT = 64 * 1024;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "scimd-e2e-unauth-"));
  const bin = buildBinaryInto(tmp);
  const db = join(tmp, "scimd.db");
  server = await startServe(bin, tmp, ["--db", db, "--max-body-bytes", String(LIMIT), "--auth-failures-per-minute", "1000000"], started);
  if (server.exited !== undefined) throw new Error(`serve exited ${server.exited}:\n${server.log()}`);
  const g = Bun.spawnSync([bin, "generate-token", "--name", "e2e-unauth", "--db", db], { cwd: tmp, env: cleanEnv(), stdout: "pipe", stderr: "pipe" });
  if (g.exitCode !== 0) throw new Error(`generate-token failed (${g.exitCode}):\n${g.stderr.toString()}`);
  token = g.stdout.toString().trim();
  port = Number(new URL(server.url).port);
}, 120_000);

afterAll(() => stopAll(started, tmp));

/** One raw connection: what it received so far, and whether the server ended it. */
interface Raw {
  socket: Socket;
  received: () => string;
  /** Resolves when the server ends the connection (or it fails). */
  ended: Promise<void>;
  /** Resolves once `re` matches what was received. */
  waitFor: (re: RegExp, ms?: number) => Promise<boolean>;
}

async function open(): Promise<Raw> {
  let text = "";
  const socket = connect(port, "127.0.0.1");
  await new Promise<void>((resolve, reject) => socket.once("connect", resolve).once("error", reject));
  const ended = new Promise<void>((resolve) => {
    socket.on("end", resolve);
    socket.on("close", resolve);
    socket.on("error", () => resolve());
  });
  socket.on("data", (d) => (text += d.toString("latin1")));
  return {
    socket,
    received: () => text,
    ended,
    waitFor: async (re, ms = 10_000) => {
      const until = Date.now() + ms;
      while (!re.test(text) && Date.now() < until) await Bun.sleep(10);
      return re.test(text);
    },
  };
}

/** Writes `data`, waiting while the socket's buffer is full; stops quietly when the server has closed it. */
async function write(socket: Socket, data: string | Uint8Array): Promise<void> {
  if (socket.destroyed) return;
  if (!socket.write(data)) await new Promise<void>((resolve) => (socket.once("drain", resolve), socket.once("close", resolve)));
}

/** The body of the first response in `text`, parsed (its Content-Length long). */
function firstBody(text: string): { status: number; head: string; body: Record<string, unknown> } {
  const split = text.indexOf("\r\n\r\n");
  const head = text.slice(0, split);
  const length = Number(/^content-length:\s*(\d+)/im.exec(head)?.[1]);
  return { status: Number(head.split(" ")[1]), head, body: JSON.parse(text.slice(split + 4, split + 4 + length)) };
}

const ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error";

describe("an unauthenticated request's body is not read (issue 13)", () => {
  it("answers 401 with Connection: close and ends the connection without waiting for the 50 MB body it announced", async () => {
    const c = await open();
    c.socket.write(`POST ${BASE_PATH}/Users HTTP/1.1\r\nHost: a\r\nContent-Type: application/scim+json\r\nContent-Length: ${50 << 20}\r\n\r\n`);
    c.socket.write("x".repeat(1024));
    // Nothing more is sent: the answer and the end of the connection come anyway.
    await c.ended;
    const r = firstBody(c.received());
    expect(r.status).toBe(401);
    expect(r.head).toMatch(/^connection: close$/im);
    expect(r.body.schemas).toEqual([ERROR_SCHEMA]);
  });

  it("ends the keep-alive connection after a 401 to a request without a body", async () => {
    const c = await open();
    c.socket.write(`GET ${BASE_PATH}/Users HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer wrong\r\n\r\n`);
    await c.ended;
    expect(firstBody(c.received()).status).toBe(401);
  });

  it("keeps serving authenticated requests and /healthz meanwhile", async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const r = await fetch(`${server.base}/Users?count=0`, { headers: { Authorization: `Bearer ${token}` } });
    expect(r.status).toBe(200);
  });
});

describe("a body over --max-body-bytes gets the SCIM 413 (issue 13)", () => {
  const tooLarge = (body: Record<string, unknown>) => {
    expect(body.schemas).toEqual([ERROR_SCHEMA]);
    expect(body.status).toBe("413");
    expect(String(body.detail)).toContain(`${LIMIT} bytes (--max-body-bytes)`);
  };

  it("answers a 3 MB body with Content-Length (far past Bun's former cap) with the SCIM 413, and the connection carries the next request", async () => {
    const c = await open();
    const size = 3 << 20;
    c.socket.write(`POST ${BASE_PATH}/Users HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/scim+json\r\nContent-Length: ${size}\r\n\r\n`);
    const chunk = new Uint8Array(64 * 1024).fill(0x20);
    for (let sent = 0; sent < size; sent += chunk.length) await write(c.socket, chunk);
    await write(c.socket, `GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n`);
    expect(await c.waitFor(/"status":"ok"/)).toBe(true);
    const r = firstBody(c.received());
    expect(r.status).toBe(413);
    tooLarge(r.body);
    c.socket.destroy();
  });

  it("answers a chunked body that grows past the limit with the SCIM 413", async () => {
    const payload = new TextEncoder().encode(JSON.stringify(userBody("chunked-big@example.com", { title: "y".repeat(3 << 20) })));
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < payload.length; i += 16 * 1024) controller.enqueue(payload.slice(i, i + 16 * 1024));
        controller.close();
      },
    });
    const res = await fetch(`${server.base}/Users`, {
      method: "POST",
      headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/scim+json" },
      body: stream,
      duplex: "half",
    });
    expect(res.status).toBe(413);
    expect(res.headers.get("content-type")).toContain("application/scim+json");
    tooLarge((await res.json()) as Record<string, unknown>);
  });

  it("stored nothing and logged no unexpected failure", async () => {
    const r = await fetch(`${server.base}/Users?filter=${encodeURIComponent('userName eq "chunked-big@example.com"')}`, { headers: { Authorization: `Bearer ${token}` } });
    expect(((await r.json()) as { totalResults: number }).totalResults).toBe(0);
    expect(server.log()).not.toMatch(/unexpected error/);
  });
});
