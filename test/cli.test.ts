import { describe, expect, it } from "bun:test";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { commandLine, shellQuote } from "../src/cli/invocation";
import { apiUrl, baseUrlWarning } from "../src/cli/serve";
import { tokenState } from "../src/cli/tokens";
import { flagHelp, formatDuration, parseDuration, parseFlags, UsageError, type FlagSpec } from "../src/config";
import { main } from "../src/main";
import { tempDir } from "./helpers";

const SPECS: FlagSpec[] = [
  { name: "port", env: "T_PORT", kind: "int", default: 8080, help: "port" },
  { name: "host", env: "T_HOST", kind: "string", default: "0.0.0.0", help: "host" },
  { name: "strict", env: "T_STRICT", kind: "bool", default: false, help: "strict" },
  { name: "label", kind: "string", help: "no default, no env" },
  {
    name: "max",
    env: "T_MAX",
    kind: "int",
    default: 10,
    help: "checked",
    check: (v) => {
      if ((v as number) < 1) throw new UsageError("--max must be at least 1");
    },
  },
];

function usageErrorOf(f: () => unknown): UsageError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(UsageError);
  return caught as UsageError;
}

describe("parseFlags: defaults < SCIMD_* environment < flags", () => {
  it("uses the defaults when neither environment nor flags set a value", () => {
    expect(parseFlags([], SPECS, {})).toEqual({ values: { port: 8080, host: "0.0.0.0", strict: false, max: 10 }, args: [] });
  });

  it("the environment overrides the defaults, converted to the flag's type; an empty variable counts as unset", () => {
    const { values } = parseFlags([], SPECS, { T_PORT: "9000", T_HOST: "127.0.0.1", T_STRICT: "yes", T_MAX: "" });
    expect(values).toEqual({ port: 9000, host: "127.0.0.1", strict: true, max: 10 });
  });

  it("flags override both the environment and the defaults", () => {
    const { values } = parseFlags(["--port", "7000", "--host=::1", "--strict=false"], SPECS, { T_PORT: "9000", T_HOST: "127.0.0.1", T_STRICT: "true" });
    expect(values).toEqual({ port: 7000, host: "::1", strict: false, max: 10 });
  });

  it("the last occurrence of a repeated flag wins", () => {
    expect(parseFlags(["--port", "1", "--port=2"], SPECS, {}).values.port).toBe(2);
  });
});

describe("parseFlags: syntax", () => {
  const forms: [string, string[], Record<string, unknown>][] = [
    ["--flag value", ["--port", "1234"], { port: 1234 }],
    ["--flag=value", ["--port=1234"], { port: 1234 }],
    ["--flag=value containing '='", ["--label=a=b"], { label: "a=b" }],
    ["--flag= (empty value)", ["--label="], { label: "" }],
    ["--flag value starting with a single dash", ["--label", "-x"], { label: "-x" }],
    ["a bare bool flag means true", ["--strict"], { strict: true }],
    ["--bool=true", ["--strict=true"], { strict: true }],
    ["--bool=1", ["--strict=1"], { strict: true }],
    ["--bool=on", ["--strict=ON"], { strict: true }],
    ["--bool=false", ["--strict=false"], { strict: false }],
    ["--bool=0", ["--strict=0"], { strict: false }],
    ["--bool=no", ["--strict=no"], { strict: false }],
  ];
  it.each(forms)("accepts %s", (_t, argv, expected) => {
    expect(parseFlags(argv, SPECS, {}).values).toMatchObject(expected);
  });

  it("a bare bool flag does not swallow the next argument", () => {
    expect(parseFlags(["--strict", "list"], SPECS, {})).toMatchObject({ values: { strict: true }, args: ["list"] });
  });

  it("collects positional arguments, and everything after -- as positional", () => {
    expect(parseFlags(["revoke", "okta", "--port", "1", "--", "--not-a-flag", "-x"], SPECS, {}).args).toEqual(["revoke", "okta", "--not-a-flag", "-x"]);
  });
});

describe("parseFlags: errors are UsageErrors that name the flag", () => {
  const bad: [string, string[], Record<string, string>, RegExp][] = [
    ["an int flag given letters", ["--port", "abc"], {}, /--port.*whole number.*abc/],
    ["an int flag given a negative number", ["--port=-1"], {}, /--port.*whole number/],
    ["an int flag given a decimal", ["--port=1.5"], {}, /--port.*whole number/],
    ["an int flag given an empty value", ["--port="], {}, /--port.*whole number/],
    ["an int environment variable given letters", [], { T_PORT: "eighty" }, /T_PORT.*whole number.*eighty/],
    ["a bool flag given a non-boolean", ["--strict=maybe"], {}, /--strict.*true or false.*maybe/],
    ["a bool environment variable given a non-boolean", [], { T_STRICT: "perhaps" }, /T_STRICT.*true or false/],
    ["an unknown long option", ["--prot", "1"], {}, /unknown option '--prot'/],
    ["an unknown long option with =", ["--nope=1"], {}, /unknown option '--nope'/],
    ["an unknown short option", ["-p"], {}, /unknown option '-p'/],
    ["a value flag at the end without its value", ["--port"], {}, /'--port' needs a value/],
    ["a value flag followed by another flag", ["--host", "--strict"], {}, /'--host' needs a value/],
    ["a value failing the flag's check", ["--max", "0"], {}, /--max must be at least 1/],
    ["an environment value failing the flag's check", [], { T_MAX: "0" }, /--max must be at least 1/],
  ];
  it.each(bad)("refuses %s", (_t, argv, env, message) => {
    expect(usageErrorOf(() => parseFlags(argv, SPECS, env)).message).toMatch(message);
  });
});

/** Runs main(argv) with console.log/console.error captured. */
async function runMain(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => void out.push(a.map(String).join(" "));
  console.error = (...a: unknown[]) => void err.push(a.map(String).join(" "));
  try {
    const code = await main(argv);
    return { code, out: out.join("\n"), err: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

describe("main: exit codes", () => {
  it("returns 2 for an unknown command and prints the error and the usage on stderr only", async () => {
    const r = await runMain(["frobnicate"]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("unknown command 'frobnicate'");
    expect(r.err).toContain("Usage: scimd <command>");
    expect(r.out).toBe("");
  });

  it("returns 2 for an unknown option of a command and prints that command's usage", async () => {
    const r = await runMain(["serve", "--bogus"]);
    expect(r.code).toBe(2);
    expect(r.err).toContain("unknown option '--bogus'");
    expect(r.err).toContain("Usage: scimd serve");
  });

  it("returns 2 with the usage when no command is given", async () => {
    const r = await runMain([]);
    expect(r.code).toBe(2);
    expect(r.out + r.err).toContain("Usage: scimd <command>");
  });

  it.each([["--help"], ["help"], ["-h"]])("returns 0 for %s and prints the usage on stdout", async (flag) => {
    const r = await runMain([flag]);
    expect(r.code).toBe(0);
    expect(r.out).toContain("Usage: scimd <command>");
  });

  it("refuses a generate-token --name that begins with '-' with 2 and creates nothing: the tokens commands would read it as an option", async () => {
    const { dir, cleanup } = tempDir();
    try {
      const db = join(dir, "scimd.db");
      for (const name of ["-x", "--okta"]) {
        const r = await runMain(["generate-token", `--name=${name}`, "--db", db, "--create"]);
        expect([r.code, r.out]).toEqual([2, ""]);
        expect(r.err).toContain("--name must not begin with '-'");
      }
      expect(existsSync(db)).toBe(false);
      // What it would have suggested does not paste: the name is taken for an option.
      expect((await runMain(["tokens", "rotate", "-x", "--db", db])).err).toContain("unknown option '-x'");
    } finally {
      cleanup();
    }
  });

  const unopenable: [string, string[]][] = [
    ["tokens list", ["tokens", "list"]],
    ["generate-token", ["generate-token", "--name", "okta"]],
    ["serve", ["serve", "--port", "0"]],
  ];
  it.each(unopenable)("returns 1 for a --db it cannot open (%s): one line naming the supported forms, no usage, no password", async (_t, argv) => {
    const r = await runMain([...argv, "--db", "postgres://scimd:secret@db.example.com/scimd"]);
    expect(r.code).toBe(1);
    expect(r.out).toBe("");
    expect(r.err).toMatch(/^scimd: --db names a 'postgres:' database, which scimd does not serve .*give a file path/);
    expect(r.err.split("\n")).toHaveLength(1);
    expect(r.err).not.toContain("secret");
  });

  it("returns 0 for --version and prints the version", async () => {
    const r = await runMain(["--version"]);
    expect(r.code).toBe(0);
    expect(r.out.trim().length).toBeGreaterThan(0);
  });
});

const HELPS: [string, string[]][] = [["--help"], ["serve", "--help"], ["generate-token", "--help"], ["tokens", "--help"]].map((argv) => [`scimd ${argv.join(" ")}`, argv]);

describe("help text", () => {
  it.each(HELPS)("every option line of '%s' leaves at least two spaces between the option and its description", async (_t, argv) => {
    const r = await runMain(argv);
    expect(r.code).toBe(0);
    const options = r.out.split("\n").filter((l) => /^ {2}--/.test(l));
    expect(options.length).toBeGreaterThan(1);
    const run = options.filter((l) => !/^ {2}--[a-z-]+( <[a-z]+>)?( {2,}\S.*)?$/.test(l));
    expect(run).toEqual([]);
    // Descriptions are wrapped at 100 columns, under the description column.
    for (const l of r.out.split("\n").filter((l) => /^ {2}--| {28}\S/.test(l))) expect(l.length).toBeLessThanOrEqual(100);
  });

  it("flagHelp puts the description of a flag too long for the column on the next line, and wraps long descriptions under the column", () => {
    const text = flagHelp([
      { name: "a-very-long-option-name-indeed", kind: "int", help: "what it does" },
      { name: "short", kind: "string", help: "word ".repeat(40).trim() },
    ]);
    const lines = text.split("\n");
    expect(lines[0]).toBe("  --a-very-long-option-name-indeed <n>");
    expect(lines[1]).toMatch(/^ {28}what it does$/);
    expect(lines[2]).toMatch(/^ {2}--short <value> {2,}word/);
    expect(lines.length).toBeGreaterThan(3);
    for (const l of lines.slice(3)) expect(l).toMatch(/^ {28}word/);
  });

  /** The example command lines of a help text: the indented lines under a heading that ends in ':' and names examples or a first run. */
  function examples(text: string): string[] {
    const out: string[] = [];
    let inside = false;
    for (const l of text.split("\n")) {
      if (/^\S/.test(l)) inside = /^(Examples|First run|Each command's options and examples)\b.*:$/.test(l);
      else if (inside && /^ {2}\S/.test(l)) out.push(l.trim());
    }
    return out;
  }

  it.each(HELPS)("the example commands of '%s' are the real invocation with no placeholder a shell would misread", async (_t, argv) => {
    const r = await runMain(argv);
    const lines = examples(r.out);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      // From source (as these tests run) the invocation is the npm script in this checkout.
      expect(line).toMatch(/^(TOKEN=\$\()?npm --prefix \S+ (start|run --silent (generate-token|tokens))( |$)/);
      expect(line.replace(/^TOKEN=\$\((.*)\)$/, "$1")).not.toMatch(/[<>|;&`]/);
      const syntax = Bun.spawnSync(["sh", "-n", "-c", line]);
      expect({ line, exit: syntax.exitCode }).toEqual({ line, exit: 0 });
    }
  });
});

describe("invocation and formatting helpers", () => {
  it.each([
    ["okta", "okta"],
    ["/tmp/a b/scimd.db", "'/tmp/a b/scimd.db'"],
    ["it's", `'it'\\''s'`],
    ["<idp>", "'<idp>'"],
    ["", "''"],
    ["$(rm -rf x)", "'$(rm -rf x)'"],
  ])("shellQuote(%p) is %p, which sh reads back as the same word", (word, quoted) => {
    expect(shellQuote(word)).toBe(quoted);
    const echoed = Bun.spawnSync(["sh", "-c", `printf %s ${quoted}`]).stdout.toString();
    expect(echoed).toBe(word);
  });

  it("commandLine from source is the npm script of this checkout, with the arguments quoted", () => {
    const root = resolve(import.meta.dir, "..");
    expect(commandLine("generate-token", ["--name", "my idp"])).toBe(`npm --prefix ${root} run --silent generate-token -- --name 'my idp'`);
    expect(commandLine("serve")).toBe(`npm --prefix ${root} start`);
    expect(commandLine("tokens", ["list"])).toBe(`npm --prefix ${root} run --silent tokens -- list`);
  });

  it.each([
    ["0", 0],
    ["0s", 0],
    ["90s", 90_000],
    ["30m", 1_800_000],
    ["24h", 86_400_000],
    ["7d", 604_800_000],
    ["366d", 366 * 86_400_000],
  ])("parseDuration reads %p as %p ms", (raw, ms) => {
    expect(parseDuration(raw, "--grace")).toBe(ms);
  });

  it.each(["", "30", "1y", "-5m", "5 m", "1.5h", "367d", "24H", "99999999999999999999d"])("parseDuration refuses %p with a UsageError naming the flag", (raw) => {
    expect(usageErrorOf(() => parseDuration(raw, "--grace")).message).toMatch(/^--grace must be/);
  });

  it.each([
    [86_399_000, "23h 59m"],
    [6 * 86_400_000 + 23 * 3_600_000 + 5, "6d 23h"],
    [7 * 86_400_000, "7d"],
    [29 * 60_000 + 59_000, "29m"],
    [45_400, "45s"],
    [3_600_000, "1h"],
  ])("formatDuration(%p) is %p", (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it("tokenState says active, expires in … (rotated), or expired", () => {
    const now = Date.parse("2026-01-01T00:00:00.000Z");
    const t = { id: "i", name: "okta", created: "2025-12-31T00:00:00.000Z", lastUsed: null };
    expect(tokenState({ ...t, expires: null }, now)).toBe("active");
    expect(tokenState({ ...t, expires: "2026-01-01T23:59:30.000Z" }, now)).toBe("expires in 23h 59m (rotated)");
    expect(tokenState({ ...t, expires: "2026-01-01T00:00:00.000Z" }, now)).toBe("expired");
    expect(tokenState({ ...t, expires: "2025-12-31T12:00:00.000Z" }, now)).toBe("expired");
  });

  it.each([
    ["https://scim.example.com", true],
    ["https://scim.example.com/", true],
    ["https://example.com/scim/v2", true],
    ["https://scim.example.com/api/v1/scim", false],
    ["https://scim.example.com/api/v1/scim/", false],
    ["https://example.com/tenant-a/api/v1/scim", false],
  ])("baseUrlWarning(%p) warns: %p", (url, warns) => {
    const w = baseUrlWarning(url);
    expect(w !== undefined).toBe(warns);
    if (w) expect(w).toContain(`otherwise pass --base-url ${url.replace(/\/$/, "")}/api/v1/scim`);
  });

  it("apiUrl shows the public base URL when set, else http://host:port with the API path (IPv6 in brackets, a name for all addresses)", () => {
    expect(apiUrl("127.0.0.1", 9000, undefined)).toBe("http://127.0.0.1:9000/api/v1/scim");
    expect(apiUrl("0.0.0.0", 8080, undefined, "vm1")).toBe("http://vm1:8080/api/v1/scim");
    expect(apiUrl("::", 8080, undefined)).toBe("http://localhost:8080/api/v1/scim");
    expect(apiUrl("::1", 8080, undefined)).toBe("http://[::1]:8080/api/v1/scim");
    expect(apiUrl("0.0.0.0", 8080, "https://scim.example.com/api/v1/scim/")).toBe("https://scim.example.com/api/v1/scim");
  });
});
