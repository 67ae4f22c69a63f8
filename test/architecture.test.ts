/**
 * Layering rules, checked on the import lines of the source: HTTP (src/http) → SCIM domain
 * (src/scim) → store interface (src/store). The domain knows neither the web framework nor SQLite.
 */
import { describe, expect, it } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const SRC = join(ROOT, "src");

function tsFiles(dir: string, recursive: boolean): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (recursive) out.push(...tsFiles(p, true));
    } else if (name.endsWith(".ts")) out.push(p);
  }
  return out.sort();
}

/** Every module specifier a file imports or re-exports, statically or dynamically, or requires. */
function importsOf(source: string): string[] {
  const specs: string[] = [];
  const patterns = [
    /^\s*(?:import|export)\s+(?:type\s+)?[^'"`;]*?\bfrom\s*["']([^"']+)["']/gms,
    /^\s*import\s*["']([^"']+)["']/gm,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
    /\brequire\s*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const re of patterns) for (const m of source.matchAll(re)) specs.push(m[1]!);
  return specs;
}

/** A specifier resolved to a path relative to the repository when it is relative, else as written. */
function target(file: string, spec: string): string {
  return spec.startsWith(".") ? relative(ROOT, resolve(dirname(file), spec)) : spec;
}

type Rule = { files: string[]; forbidden: (t: string) => boolean; what: string };

const isElysia = (t: string) => t === "elysia" || t.startsWith("elysia/") || t.startsWith("@elysiajs/");
const isSqlite = (t: string) => t === "bun:sqlite";
const isHttp = (t: string) => t === "src/http" || t.startsWith("src/http/") || t === "src/app" || t === "src/app.ts";

const rules: [string, Rule][] = [
  ["src/scim/*.ts imports neither elysia, @elysiajs/* nor bun:sqlite", { files: tsFiles(join(SRC, "scim"), false), forbidden: (t) => isElysia(t) || isSqlite(t), what: "web framework or SQLite" }],
  ["src/store/** imports neither src/http nor elysia", { files: tsFiles(join(SRC, "store"), true), forbidden: (t) => isElysia(t) || isHttp(t), what: "HTTP layer" }],
  ["src/http/** does not import bun:sqlite", { files: tsFiles(join(SRC, "http"), true), forbidden: isSqlite, what: "SQLite" }],
];

describe("architecture: layers import only downwards", () => {
  it("finds the source files the rules apply to", () => {
    for (const [, r] of rules) expect(r.files.length).toBeGreaterThan(0);
  });

  it("the import scanner sees static, type-only, multi-line, side-effect, dynamic and require imports", () => {
    const src = [
      'import { Elysia } from "elysia";',
      "import type { X } from '@elysiajs/bearer';",
      "import {\n  a,\n  b,\n} from \"bun:sqlite\";",
      'import "./side-effect";',
      'export * from "../http/auth";',
      'const m = await import("elysia/x");',
      'const r = require("node:fs");',
    ].join("\n");
    expect(importsOf(src).sort()).toEqual(["../http/auth", "./side-effect", "@elysiajs/bearer", "bun:sqlite", "elysia", "elysia/x", "node:fs"].sort());
  });

  it.each(rules)("%s", (_title, rule) => {
    const violations: string[] = [];
    for (const file of rule.files) {
      for (const spec of importsOf(readFileSync(file, "utf8"))) {
        if (rule.forbidden(target(file, spec))) violations.push(`${relative(ROOT, file)} imports '${spec}' (${rule.what})`);
      }
    }
    expect(violations).toEqual([]);
  });
});
