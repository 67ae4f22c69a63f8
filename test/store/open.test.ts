import { describe, expect, it } from "bun:test";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { openStore, parseDbLocation, redactDbLocation } from "../../src/store/open";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store";
import { StoreOpenError } from "../../src/store/store";
import { tempDir } from "../helpers";

describe("openStore chooses the engine from the --db value", () => {
  it.each([
    ["./data/scimd.db", "./data/scimd.db"],
    ["/var/lib/scimd/scimd.db", "/var/lib/scimd/scimd.db"],
    ["sqlite:./data/scimd.db", "./data/scimd.db"],
    ["sqlite:/var/lib/scimd/scimd.db", "/var/lib/scimd/scimd.db"],
    ["sqlite:///var/lib/scimd/scimd.db", "/var/lib/scimd/scimd.db"],
    ["SQLITE:data.db", "data.db"],
    ["odd:name.db", "odd:name.db"],
  ])("reads %s as the SQLite file %s", (value, path) => {
    expect(parseDbLocation(value)).toEqual({ engine: "sqlite", path });
  });

  it("opens a SQLite store at the path a sqlite: URL names", async () => {
    const dir = tempDir();
    const store = await openStore(`sqlite:${join(dir.dir, "x.db")}`);
    expect(store).toBeInstanceOf(SqliteStore);
    await store.close();
    expect(existsSync(join(dir.dir, "x.db"))).toBe(true);
    dir.cleanup();
  });

  it.each([
    ["a MySQL URL", "mysql://scimd:secret@db/scimd", "mysql:"],
    ["an http URL", "http://scimd:secret@x/y", "http:"],
    ["a JDBC URL", "jdbc:postgresql://scimd:secret@db.example.com/scimd", "jdbc:postgresql:"],
    ["a scheme with a character RFC 3986 does not allow", "my_db://scimd:secret@db/scimd", "my_db:"],
    ["a sqlite: URL whose path is another URL", "sqlite:postgres://scimd:secret@db/scimd", "a PostgreSQL database"],
    ["a path holding ://", "./data/x://scimd:secret@db/scimd", "://"],
  ])("a value holding :// is never a file name: refuses %s (%s), naming the supported forms, without the password, creating nothing", async (_what, value, named) => {
    const dir = tempDir();
    const cwd = process.cwd();
    process.chdir(dir.dir);
    try {
      let caught: unknown;
      try {
        await openStore(value, { create: true });
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(StoreOpenError);
      const message = (caught as Error).message;
      expect(message).not.toContain("secret");
      expect(message).toContain(named);
      expect(message).toContain("sqlite:");
      expect(readdirSync(dir.dir)).toEqual([]);
    } finally {
      process.chdir(cwd);
      dir.cleanup();
    }
  });

  it("refuses an empty value and a sqlite: URL without a path", () => {
    expect(() => parseDbLocation("")).toThrow(StoreOpenError);
    expect(() => parseDbLocation("sqlite:")).toThrow(StoreOpenError);
    expect(() => parseDbLocation("sqlite://")).toThrow(StoreOpenError);
  });
});

describe("redactDbLocation", () => {
  it.each([
    ["postgres://scimd:secret@db/scimd", "postgres://scimd:***@db/scimd"],
    ["postgres://scimd:se/cr@et@db/scimd", "postgres://scimd:***@db/scimd"],
    ["postgres://scimd@db/scimd", "postgres://scimd@db/scimd"],
    ["jdbc:postgresql://scimd:secret@db/scimd", "jdbc:postgresql://scimd:***@db/scimd"],
    ["./data/scimd.db", "./data/scimd.db"],
    ["sqlite:./a@b.db", "sqlite:./a@b.db"],
    ["postgres://u@h/db?password=hunter2", "postgres://u@h/db?password=***"],
    ["postgres://u@h/db?sslmode=require&PassWord=hunter2&application_name=scimd", "postgres://u@h/db?sslmode=require&PassWord=***&application_name=scimd"],
    ["postgres://u:pw@h:5432/db?sslpassword=k3y&pass=p&secret=s&token=t&x=1#frag", "postgres://u:***@h:5432/db?sslpassword=***&pass=***&secret=***&token=***&x=1#frag"],
    ["postgres://u@h:5432/db?sslcert=a@b&password=hunter2", "postgres://u@h:***@b&password=***"],
    ["postgres://u@h/db?pass%77ord=hunter2", "postgres://u@h/db?pass%77ord=***"],
    ["postgres://h/db?user=u;password=hunter2", "postgres://h/db?user=u;password=***"],
    ["postgres://u@h/db?password=se#cret", "postgres://u@h/db?password=***"],
    ["postgres://h/db?x=1&api_key=K&auth=A&sslmode=verify-full", "postgres://h/db?x=1&api_key=***&auth=***&sslmode=verify-full"],
  ])("shows %s as %s", (value, shown) => {
    expect(redactDbLocation(value)).toBe(shown);
  });
});
