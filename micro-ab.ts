import { createApp as createMain } from "/work/main/src/app";
import { createApp as createBefore } from "/work/wt/before/src/app";
import { openStore as openMain } from "/work/main/src/store/open";
import { openStore as openBefore } from "/work/wt/before/src/store/open";
import { hashToken, newToken } from "/work/main/src/tokens";
import { SILENT_LOGGER } from "/work/main/src/log";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
async function setup(open: any, create: any, opts: any) {
  const store = await open(join(mkdtempSync(join(tmpdir(), "mab-")), "s.db"), {});
  const token = newToken();
  await store.createToken("t", hashToken(token));
  const app = create({ store, ...opts });
  const H = { Authorization: `Bearer ${token}`, "Content-Type": "application/scim+json" };
  const r = await app.handle(new Request("http://scimd.test/api/v1/scim/Users", { method: "POST", headers: H, body: JSON.stringify({ schemas: ["urn:ietf:params:scim:schemas:core:2.0:User"], userName: "a@b.c", displayName: "A" }) }));
  const id = ((await r.json()) as any).id;
  return { app, H, get: `http://scimd.test/api/v1/scim/Users/${id}`, filter: `http://scimd.test/api/v1/scim/Users?filter=${encodeURIComponent('userName eq "A@B.C"')}` };
}
const v = { before: await setup(openBefore, createBefore, { log: () => {} }), main: await setup(openMain, createMain, { logger: SILENT_LOGGER }) };
const N = 4000, ROUNDS = 14;
const res: Record<string, number[]> = {};
for (let round = 0; round < ROUNDS; round++)
  for (const [name, s] of round % 2 ? Object.entries(v).reverse() : Object.entries(v))
    for (const kind of ["get", "filter"] as const) {
      const url = s[kind];
      const t0 = performance.now();
      for (let i = 0; i < N; i++) { const resp = await s.app.handle(new Request(url, { headers: s.H })); await resp.text(); }
      (res[`${kind} ${name}`] ??= []).push(((performance.now() - t0) * 1000) / N);
    }
for (const kind of ["get", "filter"]) {
  const b = res[`${kind} before`]!, m = res[`${kind} main`]!;
  const ratios = m.map((x, i) => x / b[i]!).sort((a, c) => a - c);
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  console.log(kind, "before", med(b).toFixed(1), "µs main", med(m).toFixed(1), "µs  median ratio main/before", ratios[ratios.length >> 1]!.toFixed(3), "range", ratios[0]!.toFixed(2), ratios[ratios.length - 1]!.toFixed(2));
}
