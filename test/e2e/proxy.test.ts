/**
 * The README's Caddy and nginx snippets, taken from README.md as written, in front of dist/scimd:
 * only the public name, the ports and the certificate paths are replaced by the test's (a CA and a
 * localhost certificate made with openssl). A SCIM create through the proxy must answer 201 with the
 * public Location. Missing caddy or nginx is a visible skip.
 */
import { afterAll, beforeAll, describe, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { userBody } from "../helpers";
import { hasOpenssl, makeCa, makeLeaf, type Ca, type Leaf } from "./certs";
import { buildBinaryInto, cleanEnv, freePort, REPO, startServe, stopAll, type Served } from "./harness";

const hasCaddy = Bun.which("caddy") !== null;
const hasNginx = Bun.which("nginx") !== null || Bun.which("/usr/sbin/nginx") !== null;
if (!hasCaddy) console.warn("SKIP the README's Caddy snippet: no caddy (apt-get install caddy)");
if (!hasNginx) console.warn("SKIP the README's nginx snippet: no nginx (apt-get install nginx-light)");

const README = readFileSync(join(REPO, "README.md"), "utf8");
/** The first fenced block after `marker` in the README. */
function snippet(marker: string): string {
  const at = README.indexOf(marker);
  if (at < 0) throw new Error(`README.md has no '${marker}'`);
  const m = /```[a-z]*\n([\s\S]*?)```/.exec(README.slice(at));
  if (!m) throw new Error(`README.md has no code block after '${marker}'`);
  return m[1]!;
}

let tmp = "";
let bin = "";
let ca: Ca;
let site: Leaf;
let token = "";
let scimd: Served;
const started = new Set<Bun.Subprocess>();
const SCIMD_PORT_IN_README = "127.0.0.1:8080";

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), "scimd-e2e-proxy-"));
  if (!hasOpenssl || (!hasCaddy && !hasNginx)) return;
  bin = buildBinaryInto(tmp);
  ca = makeCa(tmp);
  site = makeLeaf(tmp, ca, "site");
  writeFileSync(join(tmp, "site.pem"), site.cert);
  token = Bun.spawnSync([bin, "generate-token", "--name", "okta", "--create"], { cwd: tmp, env: cleanEnv(), stdout: "pipe" }).stdout.toString().trim();
}, 60_000);
afterAll(() => stopAll(started, tmp));

/** scimd as the README starts it behind a proxy: plain HTTP on loopback, the public URL, the proxy trusted. */
async function startScimd(publicOrigin: string): Promise<Served> {
  return startServe(bin, tmp, ["--base-url", `${publicOrigin}/api/v1/scim`, "--trust-proxy", "127.0.0.1"], started);
}

/** Waits until `origin` answers /healthz over HTTPS verified against the test CA. */
async function waitForProxy(origin: string, proc: Bun.Subprocess, log: () => string) {
  const until = Date.now() + 10_000;
  for (;;) {
    try {
      if ((await fetch(`${origin}/healthz`, { tls: { ca: ca.cert } })).ok) return;
    } catch {}
    if (proc.exitCode !== null || Date.now() > until) throw new Error(`the proxy did not answer at ${origin}:\n${log()}`);
    await Bun.sleep(50);
  }
}

async function createThrough(origin: string, userName: string) {
  const r = await fetch(`${origin}/api/v1/scim/Users`, {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/scim+json" },
    body: JSON.stringify(userBody(userName)),
    tls: { ca: ca.cert },
  });
  return { status: r.status, location: r.headers.get("location"), requestId: r.headers.get("x-request-id"), body: (await r.json()) as { id: string } };
}

function spawnLogged(cmd: string[]) {
  // Caddy keeps its state under XDG_DATA_HOME/XDG_CONFIG_HOME: in the temp folder, not in HOME.
  const proc = Bun.spawn(cmd, { cwd: tmp, env: { ...cleanEnv(), XDG_DATA_HOME: tmp, XDG_CONFIG_HOME: tmp }, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  started.add(proc);
  let text = "";
  for (const s of [proc.stdout, proc.stderr])
    void (async () => {
      const d = new TextDecoder();
      for await (const c of s) text += d.decode(c, { stream: true });
    })();
  return { proc, log: () => text };
}

describe.skipIf(!hasOpenssl)("the README's reverse-proxy snippets in front of dist/scimd", () => {
  it.skipIf(!hasCaddy)("Caddy: a SCIM create through it answers 201 with the public Location", async () => {
    const port = await freePort();
    const origin = `https://localhost:${port}`;
    scimd = await startScimd(origin);
    const block = snippet("Caddy (`/etc/caddy/Caddyfile`");
    expect(block).toContain(`reverse_proxy ${SCIMD_PORT_IN_README}`);
    // The test's changes: no admin endpoint, the test's name and port, its certificate instead of ACME.
    const config = `{\n\tadmin off\n}\n${block
      .replace("scim.example.com {", `${origin} {\n\ttls ${join(tmp, "site.pem")} ${join(tmp, "site.key")}`)
      .replace(SCIMD_PORT_IN_README, new URL(scimd.url).host)}`;
    writeFileSync(join(tmp, "Caddyfile"), config);
    const caddy = spawnLogged(["caddy", "run", "--config", join(tmp, "Caddyfile"), "--adapter", "caddyfile"]);
    try {
      await waitForProxy(origin, caddy.proc, caddy.log);
      const r = await createThrough(origin, "caddy@example.com");
      expect(r.status).toBe(201);
      expect(r.location).toBe(`${origin}/api/v1/scim/Users/${r.body.id}`);
    } finally {
      caddy.proc.kill("SIGTERM");
      await caddy.proc.exited;
      await scimd.stop();
    }
  }, 30_000);

  it.skipIf(!hasNginx)("nginx: a SCIM create through it answers 201 with the public Location, and nginx's request id is scimd's", async () => {
    const port = await freePort();
    const origin = `https://localhost:${port}`;
    scimd = await startScimd(origin);
    const block = snippet("nginx (inside `http { }`");
    expect(block).toContain(`proxy_pass http://${SCIMD_PORT_IN_README};`);
    const server = block
      .replace("listen 443 ssl;", `listen 127.0.0.1:${port} ssl;`)
      .replace("server_name scim.example.com;", "server_name localhost;")
      .replace(/ssl_certificate +\S+;/, `ssl_certificate ${join(tmp, "site.pem")};`)
      .replace(/ssl_certificate_key +\S+;/, `ssl_certificate_key ${join(tmp, "site.key")};`)
      .replace(SCIMD_PORT_IN_README, new URL(scimd.url).host);
    // A minimal main configuration around the README's server block, with its files in the temp folder.
    const conf = `daemon off;\npid ${join(tmp, "nginx.pid")};\nerror_log ${join(tmp, "nginx.err")};\nevents {}\nhttp {\n  access_log off;\n  client_body_temp_path ${tmp};\n  proxy_temp_path ${tmp};\n${server}\n}\n`;
    writeFileSync(join(tmp, "nginx.conf"), conf);
    const nginx = spawnLogged([Bun.which("nginx") ?? "/usr/sbin/nginx", "-c", join(tmp, "nginx.conf"), "-p", tmp]);
    try {
      await waitForProxy(origin, nginx.proc, () => `${nginx.log()}\n${conf}`);
      const r = await createThrough(origin, "nginx@example.com");
      expect(r.status).toBe(201);
      expect(r.location).toBe(`${origin}/api/v1/scim/Users/${r.body.id}`);
      // $request_id: 32 hex characters, made by nginx and kept by scimd.
      expect(r.requestId).toMatch(/^[0-9a-f]{32}$/);
    } finally {
      nginx.proc.kill("SIGTERM");
      await nginx.proc.exited;
      await scimd.stop();
    }
  }, 30_000);
});
