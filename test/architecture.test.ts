/**
 * Layering rules, checked on the import lines of every source file: HTTP (src/http) and the CLI →
 * SCIM domain (src/scim) → store interfaces (src/store/store.ts), with the storage engines
 * (src/store/<engine>/) reached only through src/store/open.ts. The domain knows neither the web
 * framework nor any engine; an engine's driver (bun:sqlite, Bun's SQL) stays in its engine's folder.
 *
 * The PostgreSQL store should import `SQL` from "bun" (not use the `Bun.SQL` global), so that these
 * rules see it.
 */
import { describe, expect, it } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

const ROOT = resolve(import.meta.dir, "..");
const SRC = join(ROOT, "src");

/** Every .ts file under `dir`, as a path relative to the repository with forward slashes. */
function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...tsFiles(p));
    else if (name.endsWith(".ts")) out.push(relative(ROOT, p).split(sep).join("/"));
  }
  return out.sort();
}

/** The module names Bun's SQL client is imported under: `import { SQL } from "bun"` counts as this pseudo-module. */
const BUN_SQL = "bun:SQL";

/**
 * `source` with its comments blanked and its string and template literals kept, so that a comment in
 * an import list (`Database, // SQLite's driver; fast`) cannot hide the import from the patterns below,
 * and a commented-out import is not one.
 */
function withoutComments(source: string): string {
  return source.replace(/("(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`)|\/\/[^\n]*|\/\*[\s\S]*?\*\//g, (comment, literal?: string) =>
    literal ?? comment.replace(/[^\n]/g, " "),
  );
}

/**
 * Every module specifier a source imports or re-exports (`import … from`, `export … from`, type-only,
 * multi-line), imports for side effects, imports dynamically, or requires. An import of `SQL` or `sql`
 * from "bun" is reported as BUN_SQL.
 */
function importsOf(text: string): string[] {
  const source = withoutComments(text);
  const specs: string[] = [];
  for (const m of source.matchAll(/^\s*(?:import|export)\s+(?:type\s+)?([^'"`;]*?)\bfrom\s*["']([^"']+)["']/gms))
    specs.push(m[2] === "bun" && /\bsql\b/i.test(m[1]!) ? BUN_SQL : m[2]!);
  const others = [/^\s*import\s*["']([^"']+)["']/gm, /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g, /\brequire\s*\(\s*["']([^"']+)["']\s*\)/g];
  for (const re of others) for (const m of source.matchAll(re)) specs.push(m[1]!);
  return specs;
}

/** A specifier as a repository path without extension when it is relative (`src/store/open`), else as written. */
function target(file: string, spec: string): string {
  if (!spec.startsWith(".")) return spec;
  return relative(ROOT, resolve(ROOT, dirname(file), spec)).split(sep).join("/").replace(/\.(ts|js)$/, "");
}

/** The engines: the folders of src/store. */
const ENGINES = readdirSync(join(SRC, "store")).filter((n) => statSync(join(SRC, "store", n)).isDirectory());
/** Each driver module and the engine whose folder alone may import it. */
const DRIVERS: Record<string, string> = { "bun:sqlite": "sqlite", [BUN_SQL]: "postgres" };
/** What the rest of the program may import of the store: the interfaces and the opener. */
const STORE_SEAM = new Set(["src/store/store", "src/store/open"]);

const under = (dir: string) => (file: string) => file.startsWith(`${dir}/`);
const isFramework = (t: string) => t === "elysia" || t.startsWith("elysia/") || t.startsWith("@elysiajs/");
const isHttp = (t: string) => t === "src/http" || under("src/http")(t) || t === "src/app";
/** The engine folder a module lies in (`src/store/sqlite/…` → "sqlite"), or that it is (`src/store/sqlite`, its index), if any. */
const engineFolderOf = (t: string): string | undefined => {
  const m = /^src\/store\/([^/]+)(?:\/|$)/.exec(t);
  return m && (ENGINES.includes(m[1]!) || Object.values(DRIVERS).includes(m[1]!)) ? m[1] : undefined;
};
/** The engine a module belongs to: one of its files, or its driver. */
const engineOf = (t: string): string | undefined => engineFolderOf(t) ?? DRIVERS[t];

/** A rule: the files it applies to, and why an import target is forbidden there (undefined when allowed). */
type Rule = { applies: (file: string) => boolean; forbids: (target: string, file: string) => string | undefined };

const RULES: Record<string, Rule> = {
  "src/scim imports no web framework and no engine, and of the store only its interfaces": {
    applies: under("src/scim"),
    forbids: (t) =>
      isFramework(t) ? "the web framework"
      : engineOf(t) ? `the ${engineOf(t)} engine`
      : under("src/store")(t) && t !== "src/store/store" ? "a store module other than the interfaces (src/store/store)"
      : undefined,
  },
  "src/http, src/cli, app.ts and main.ts reach the store only through store/open and the interfaces": {
    applies: (f) => under("src/http")(f) || under("src/cli")(f) || f === "src/app.ts" || f === "src/main.ts",
    forbids: (t) =>
      engineOf(t) ? `the ${engineOf(t)} engine`
      : under("src/store")(t) && !STORE_SEAM.has(t) ? "a store module other than src/store/open and src/store/store"
      : undefined,
  },
  "nothing outside src/store/<engine>/ imports that engine's modules, except src/store/open.ts": {
    applies: (f) => f !== "src/store/open.ts",
    forbids: (t, f) => {
      const e = engineFolderOf(t);
      return e && !under(`src/store/${e}`)(f) ? `a module of the ${e} engine from outside src/store/${e}/` : undefined;
    },
  },
  "an engine's driver (bun:sqlite, Bun's SQL) is imported only under its engine's folder": {
    applies: () => true,
    forbids: (t, f) => {
      const e = DRIVERS[t];
      return e && !under(`src/store/${e}`)(f) ? `the ${e} driver outside src/store/${e}/` : undefined;
    },
  },
  "src/store imports neither the HTTP layer nor the web framework": {
    applies: under("src/store"),
    forbids: (t) => (isFramework(t) ? "the web framework" : isHttp(t) ? "the HTTP layer" : undefined),
  },
  // Certificates are below the HTTP layer: they know the listener's pair type, never the app or the SCIM domain.
  "src/tls imports no web framework, no SCIM domain, no app, and of the store only store/open and the interfaces": {
    applies: under("src/tls"),
    forbids: (t) =>
      isFramework(t) ? "the web framework"
      : t === "src/app" ? "the app"
      : under("src/scim")(t) ? "the SCIM domain"
      : under("src/store")(t) && !STORE_SEAM.has(t) ? "a store module other than src/store/open and src/store/store"
      : undefined,
  },
};

type SourceFile = { file: string; imports: string[] };

/** Every import of `files` that `rule` forbids, as a line a human can act on. */
function violations(rule: Rule, files: SourceFile[]): string[] {
  const out: string[] = [];
  for (const { file, imports } of files) {
    if (!rule.applies(file)) continue;
    for (const spec of imports) {
      const why = rule.forbids(target(file, spec), file);
      if (why) out.push(`${file} imports '${spec}' (${why})`);
    }
  }
  return out;
}

const SOURCES: SourceFile[] = tsFiles(SRC).map((file) => ({ file, imports: importsOf(readFileSync(join(ROOT, file), "utf8")) }));
/** The import targets of the source files under `dir` (or of the one file `dir`). */
const importsIn = (dir: string) => SOURCES.filter((s) => s.file === dir || under(dir)(s.file)).flatMap((s) => s.imports.map((spec) => target(s.file, spec)));

describe("architecture: layers import only downwards, engines only through store/open", () => {
  it.each(Object.entries(RULES))("%s", (_title, rule) => {
    expect(SOURCES.filter((s) => rule.applies(s.file)).length).toBeGreaterThan(0);
    expect(violations(rule, SOURCES)).toEqual([]);
  });

  it("the scanner sees the imports the rules allow: open.ts the SQLite store, the SQLite files bun:sqlite and each other, the layers above the seam", () => {
    expect(ENGINES).toContain("sqlite");
    expect(importsIn("src/store/open.ts")).toContain("src/store/sqlite/sqlite-store");
    expect(importsIn("src/store/sqlite")).toContain("bun:sqlite");
    expect(importsIn("src/store/sqlite")).toContain("src/store/sqlite/sql-filter");
    expect(importsIn("src/http")).toContain("src/store/store");
    expect(importsIn("src/cli")).toContain("src/store/open");
    expect(importsIn("src/scim")).toContain("src/store/store");
  });

  it("the import scanner sees static, type-only, multi-line (with comments in the list), re-export, side-effect, dynamic and require imports, and Bun's SQL", () => {
    const src = [
      'import { Elysia } from "elysia";',
      "import type { X } from '@elysiajs/bearer';",
      "import {\n  a,\n  b,\n} from \"bun:sqlite\";",
      'import "./side-effect";',
      'export * from "../http/auth";',
      'export { openStore as open } from "../store/open";',
      'const m = await import("elysia/x");',
      'const r = require("node:fs");',
      'import { SQL } from "bun";',
      'import { $ } from "bun";',
      "import {\n  Statement, // SQLite's prepared statement; cached\n  type Changes, /* \"rows\" */\n} from \"bun:sqlite\";",
      "export {\n  // the engine's store\n  SqliteStore,\n} from '../store/sqlite/sqlite-store';",
      '// import { gone } from "commented-out";',
    ].join("\n");
    expect(importsOf(src).sort()).toEqual(
      ["../http/auth", "../store/open", "./side-effect", "@elysiajs/bearer", "bun", BUN_SQL, "bun:sqlite", "bun:sqlite", "elysia", "elysia/x", "node:fs", "../store/sqlite/sqlite-store"].sort(),
    );
  });

  // Each rule on a fabricated tree: it reports what it forbids and accepts what it allows, so none passes by seeing nothing.
  const fabricated: [string, SourceFile[], string[]][] = [
    [
      "src/scim imports no web framework and no engine, and of the store only its interfaces",
      [
        { file: "src/scim/a.ts", imports: ["elysia", "@elysiajs/bearer", "bun:sqlite", BUN_SQL, "../store/sqlite/sql-filter", "../store/open", "../store/store", "./errors"] },
        { file: "src/scim/quirks/b.ts", imports: ["../../store/postgres/x"] },
      ],
      [
        "src/scim/a.ts imports 'elysia' (the web framework)",
        "src/scim/a.ts imports '@elysiajs/bearer' (the web framework)",
        "src/scim/a.ts imports 'bun:sqlite' (the sqlite engine)",
        `src/scim/a.ts imports '${BUN_SQL}' (the postgres engine)`,
        "src/scim/a.ts imports '../store/sqlite/sql-filter' (the sqlite engine)",
        "src/scim/a.ts imports '../store/open' (a store module other than the interfaces (src/store/store))",
        "src/scim/quirks/b.ts imports '../../store/postgres/x' (the postgres engine)",
      ],
    ],
    [
      "src/http, src/cli, app.ts and main.ts reach the store only through store/open and the interfaces",
      [
        { file: "src/http/auth.ts", imports: ["../store/store", "../store/sqlite/sqlite-store", "bun:sqlite"] },
        { file: "src/cli/serve.ts", imports: ["../store/open", "../store/sqlite/migrations"] },
        { file: "src/app.ts", imports: ["./store/store", "./store/sqlite/tokens"] },
        { file: "src/main.ts", imports: ["./store/store", "./store/other"] },
        { file: "src/config.ts", imports: ["./store/other"] },
      ],
      [
        "src/http/auth.ts imports '../store/sqlite/sqlite-store' (the sqlite engine)",
        "src/http/auth.ts imports 'bun:sqlite' (the sqlite engine)",
        "src/cli/serve.ts imports '../store/sqlite/migrations' (the sqlite engine)",
        "src/app.ts imports './store/sqlite/tokens' (the sqlite engine)",
        "src/main.ts imports './store/other' (a store module other than src/store/open and src/store/store)",
      ],
    ],
    [
      "nothing outside src/store/<engine>/ imports that engine's modules, except src/store/open.ts",
      [
        { file: "src/store/open.ts", imports: ["./sqlite/sqlite-store", "./postgres/postgres-store"] },
        { file: "src/store/store.ts", imports: ["./sqlite/sql-filter"] },
        { file: "src/store/sqlite/resources.ts", imports: ["./sql-filter", "../postgres/sql"] },
        { file: "src/tokens.ts", imports: ["./store/sqlite/database", "./store/sqlite", "./store/sqlite/", "./store/store", "./store/open"] },
      ],
      [
        "src/store/store.ts imports './sqlite/sql-filter' (a module of the sqlite engine from outside src/store/sqlite/)",
        "src/store/sqlite/resources.ts imports '../postgres/sql' (a module of the postgres engine from outside src/store/postgres/)",
        "src/tokens.ts imports './store/sqlite/database' (a module of the sqlite engine from outside src/store/sqlite/)",
        "src/tokens.ts imports './store/sqlite' (a module of the sqlite engine from outside src/store/sqlite/)",
        "src/tokens.ts imports './store/sqlite/' (a module of the sqlite engine from outside src/store/sqlite/)",
      ],
    ],
    [
      "an engine's driver (bun:sqlite, Bun's SQL) is imported only under its engine's folder",
      [
        { file: "src/store/sqlite/database.ts", imports: ["bun:sqlite"] },
        { file: "src/store/postgres/database.ts", imports: [BUN_SQL, "bun:sqlite"] },
        { file: "src/store/open.ts", imports: ["bun:sqlite"] },
        { file: "src/version.ts", imports: [BUN_SQL] },
      ],
      [
        "src/store/postgres/database.ts imports 'bun:sqlite' (the sqlite driver outside src/store/sqlite/)",
        "src/store/open.ts imports 'bun:sqlite' (the sqlite driver outside src/store/sqlite/)",
        `src/version.ts imports '${BUN_SQL}' (the postgres driver outside src/store/postgres/)`,
      ],
    ],
    [
      "src/store imports neither the HTTP layer nor the web framework",
      [
        { file: "src/store/sqlite/resources.ts", imports: ["../../http/auth", "elysia", "../../scim/errors"] },
        { file: "src/store/open.ts", imports: ["../app"] },
      ],
      [
        "src/store/sqlite/resources.ts imports '../../http/auth' (the HTTP layer)",
        "src/store/sqlite/resources.ts imports 'elysia' (the web framework)",
        "src/store/open.ts imports '../app' (the HTTP layer)",
      ],
    ],
    [
      "src/tls imports no web framework, no SCIM domain, no app, and of the store only store/open and the interfaces",
      [
        { file: "src/tls/certificates.ts", imports: ["../http/listener", "../log", "node:crypto", "elysia", "../scim/errors", "../app"] },
        { file: "src/tls/acme.ts", imports: ["acme-client", "../store/open", "../store/store", "../store/sqlite/database"] },
      ],
      [
        "src/tls/certificates.ts imports 'elysia' (the web framework)",
        "src/tls/certificates.ts imports '../scim/errors' (the SCIM domain)",
        "src/tls/certificates.ts imports '../app' (the app)",
        "src/tls/acme.ts imports '../store/sqlite/database' (a store module other than src/store/open and src/store/store)",
      ],
    ],
  ];

  it.each(fabricated)("the rule '%s' reports exactly the forbidden imports of a fabricated tree", (title, files, expected) => {
    expect(violations(RULES[title]!, files)).toEqual(expected);
  });

  it("every rule has a fabricated tree that makes it fail", () => {
    expect(fabricated.map(([title]) => title).sort()).toEqual(Object.keys(RULES).sort());
  });
});
