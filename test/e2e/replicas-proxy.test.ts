/**
 * README's "Two replicas on PostgreSQL": its Caddy and nginx snippets, taken from README.md as
 * written, in front of two dist/scimd replicas on one throwaway PostgreSQL cluster. Only the public
 * name, the ports and the certificate paths are replaced by the test's. Creates through the proxy
 * reach both replicas and answer 201 with the public Location; what one replica stored is read
 * through the other; with one replica stopped, creates and reads through the proxy still succeed.
 * Missing caddy, nginx, openssl or PostgreSQL is a visible skip (a failure under SCIMD_REQUIRE_POSTGRES=1
 * for PostgreSQL).
 */
import { SQL } from "bun";
import { afterAll, beforeAll, expect, it } from "bun:test";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { userBody } from "../helpers";
import { describePostgres, startCluster, type PgCluster } from "../store/postgres/cluster";
import { hasOpenssl, makeCa, makeLeaf, type Ca } from "./certs";
import { api, buildBinaryInto, cleanEnv, freePort, REPO, runCli, startServe, stopAll, type Served } from "./harness";

const hasCaddy = Bun.which("caddy") !== null;
const nginxBin = Bun.which("nginx") ?? (Bun.which("/usr/sbin/nginx") ? "/usr/sbin/nginx" : null);
if (!hasCaddy) console.warn("SKIP the README's two-replica Caddy snippet: no caddy (apt-get install caddy)");
if (!nginxBin) console.warn("SKIP the README's two-replica nginx snippet: no nginx (apt-get install nginx-light)");

const README = readFileSync(join(REPO, "README.md"), "utf8");
const SECTION = README.slice(README.indexOf("## Two replicas on PostgreSQL"));
/** The first fenced block after `marker` in the README's two-replica section. */
function snippet(marker: string): string {
  const at = SECTION.indexOf(marker);
  if (at < 0) throw new Error(`README.md's two-replica section has no '${marker}'`);
  const m = /```[a-z]*\n([\s\S]*?)```/.exec(SECTION.slice(at));
  if (!m) throw new Error(`README.md has no code block after '${marker}'`);
  return m[1]!;
}
const REPLICAS_IN_README = ["127.0.0.1:8080", "127.0.0.1:8081"];

describePostgres("the README's two-replica proxy snippets in front of two dist/scimd on PostgreSQL", () => {
  let tmp = "";
  let bin = "";
  let ca: Ca;
  let cluster: PgCluster;
  let dbs = 0;
  const started = new Set<Bun.Subprocess>();

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), "scimd-e2e-replicas-"));
    if (!hasOpenssl || (!hasCaddy && !nginxBin)) return;
    bin = buildBinaryInto(tmp);
    ca = makeCa(tmp);
    const site = makeLeaf(tmp, ca, "site");
    writeFileSync(join(tmp, "site.pem"), site.cert);
    cluster = await startCluster();
  }, 120_000);
  afterAll(async () => {
    await stopAll(started, tmp);
    cluster?.stop();
  }, 60_000);

  /** A fresh database, a token made in it by the CLI, and two replicas serving it for `origin`. */
  async function replicas(origin: string): Promise<{ token: string; a: Served; b: Served }> {
    const name = `replicas_${++dbs}`;
    const admin = new SQL(cluster.url(), { max: 1 });
    await admin.unsafe(`CREATE DATABASE ${name}`);
    await admin.close();
    const db = cluster.url(name);
    const args = ["--db", db, "--base-url", `${origin}/api/v1/scim`, "--trust-proxy", "127.0.0.1"];
    const a = await startServe(bin, tmp, args, started, 15_000);
    const b = await startServe(bin, tmp, args, started, 15_000);
    expect([a.exited, b.exited]).toEqual([undefined, undefined]);
    const t = runCli(bin, tmp, ["generate-token", "--name", "idp", "--db", db]);
    expect(t.code).toBe(0);
    return { token: t.out.trim(), a, b };
  }

  function spawnLogged(cmd: string[]) {
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

  async function waitForProxy(origin: string, proc: Bun.Subprocess, log: () => string) {
    const until = Date.now() + 15_000;
    for (;;) {
      try {
        if ((await fetch(`${origin}/healthz`, { tls: { ca: ca.cert } })).ok) return;
      } catch {}
      if (proc.exitCode !== null || Date.now() > until) throw new Error(`the proxy did not answer at ${origin}:\n${log()}`);
      await Bun.sleep(50);
    }
  }

  const through = async (origin: string, token: string, method: string, path: string, body?: unknown) => {
    const r = await fetch(`${origin}/api/v1/scim${path}`, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "Content-Type": "application/scim+json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
      tls: { ca: ca.cert },
    });
    const text = await r.text();
    return { status: r.status, location: r.headers.get("location"), body: text ? JSON.parse(text) : undefined };
  };
  const creates = (s: Served) => s.records().filter((r) => r.event === "request" && r.method === "POST" && r.status === 201).length;

  /** The same checks through either proxy. */
  async function exercise(origin: string, token: string, a: Served, b: Served) {
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await through(origin, token, "POST", "/Users", userBody(`u${i}@example.com`));
      expect(r.status).toBe(201);
      expect(r.location).toBe(`${origin}/api/v1/scim/Users/${r.body.id}`);
      ids.push(r.body.id);
    }
    // Both replicas served creates (their request lines may reach the pipe a moment after the answer).
    for (const until = Date.now() + 3000; creates(a) + creates(b) < 12 && Date.now() < until; ) await Bun.sleep(20);
    expect(creates(a)).toBeGreaterThan(0);
    expect(creates(b)).toBeGreaterThan(0);
    expect(creates(a) + creates(b)).toBe(12);
    // Each reads what the other stored.
    for (const s of [a, b]) {
      const list = await api(s, token, "GET", "/Users?count=0");
      expect(list.body.totalResults).toBe(12);
      expect((await api(s, token, "GET", `/Users/${ids[0]}`)).status).toBe(200);
    }
    // One replica stops (as for an upgrade): the proxy goes on with the other.
    expect(await a.stop()).toBe(0);
    for (let i = 12; i < 18; i++) {
      const r = await through(origin, token, "POST", "/Users", userBody(`u${i}@example.com`));
      expect(r.status).toBe(201);
      expect((await through(origin, token, "GET", `/Users/${r.body.id}`)).status).toBe(200);
    }
    expect((await through(origin, token, "GET", "/Users?count=0")).body.totalResults).toBe(18);
  }

  it.skipIf(!hasOpenssl || !hasCaddy)("Caddy: creates go to both replicas in turn, and on to the other when one stops", async () => {
    const port = await freePort();
    const origin = `https://localhost:${port}`;
    const { token, a, b } = await replicas(origin);
    const block = snippet("Caddy (`/etc/caddy/Caddyfile`)");
    for (const r of REPLICAS_IN_README) expect(block).toContain(r);
    const config = `{\n\tadmin off\n}\n${block
      .replace("scim.example.com {", `${origin} {\n\ttls ${join(tmp, "site.pem")} ${join(tmp, "site.key")}`)
      .replace(REPLICAS_IN_README[0]!, new URL(a.url).host)
      .replace(REPLICAS_IN_README[1]!, new URL(b.url).host)}`;
    writeFileSync(join(tmp, "Caddyfile"), config);
    const caddy = spawnLogged(["caddy", "run", "--config", join(tmp, "Caddyfile"), "--adapter", "caddyfile"]);
    try {
      await waitForProxy(origin, caddy.proc, caddy.log);
      await exercise(origin, token, a, b);
    } catch (e) {
      console.error(`Caddy wrote:\n${caddy.log().slice(-3000)}`);
      throw e;
    } finally {
      caddy.proc.kill("SIGTERM");
      await caddy.proc.exited;
      await b.stop();
    }
  }, 60_000);

  it.skipIf(!hasOpenssl || !nginxBin)("nginx: creates go to both replicas in turn, and on to the other when one stops", async () => {
    const port = await freePort();
    const origin = `https://localhost:${port}`;
    const { token, a, b } = await replicas(origin);
    const block = snippet("nginx (inside `http { }`");
    for (const r of REPLICAS_IN_README) expect(block).toContain(`server ${r}`);
    const server = block
      .replace("listen 443 ssl;", `listen 127.0.0.1:${port} ssl;`)
      .replace("server_name scim.example.com;", "server_name localhost;")
      .replace(/ssl_certificate +\S+;/, `ssl_certificate ${join(tmp, "site.pem")};`)
      .replace(/ssl_certificate_key +\S+;/, `ssl_certificate_key ${join(tmp, "site.key")};`)
      .replace(REPLICAS_IN_README[0]!, new URL(a.url).host)
      .replace(REPLICAS_IN_README[1]!, new URL(b.url).host);
    const conf = `daemon off;\npid ${join(tmp, "nginx.pid")};\nerror_log ${join(tmp, "nginx.err")};\nevents {}\nhttp {\n  access_log off;\n  client_body_temp_path ${tmp};\n  proxy_temp_path ${tmp};\n${server}\n}\n`;
    writeFileSync(join(tmp, "nginx.conf"), conf);
    const nginx = spawnLogged([nginxBin!, "-c", join(tmp, "nginx.conf"), "-p", tmp]);
    try {
      await waitForProxy(origin, nginx.proc, () => `${nginx.log()}\n${conf}`);
      await exercise(origin, token, a, b);
    } finally {
      nginx.proc.kill("SIGTERM");
      await nginx.proc.exited;
      await b.stop();
    }
  }, 60_000);
});
