import { describe, expect, it } from "bun:test";
import { createLogger } from "../src/log";

describe("createLogger: every line is one JSON object, whatever the fields", () => {
  const lines: string[] = [];
  const logger = createLogger({ level: "debug", format: "json", write: (line) => lines.push(line) });
  const cycle: Record<string, unknown> = { a: 1 };
  cycle.self = cycle;
  const cases: [string, unknown, Record<string, unknown>][] = [
    ["a BigInt", { n: 1n }, { n: "1" }],
    ["a cycle", cycle, { a: 1, self: "[cycle]" }],
    ["an array", [1, 2], { fields: [1, 2] }],
    ["a Date", new Date(0), { fields: "1970-01-01T00:00:00.000Z" }],
    ["fields named like the line's own members", { level: "error", time: 1, event: "x" }, { level: "info", event: "e", field_level: "error", field_time: 1, field_event: "x" }],
    ["a getter that throws", { get boom() { throw new Error("nope"); } }, { logError: "the fields could not be written: nope" }],
    ["a toJSON giving undefined", { toJSON: () => undefined }, { fields: null }],
    ["a line separator in a value", { s: "a\u2028b" }, { s: "a\u2028b" }],
  ];
  it.each(cases)("%s", (_name, fields, expected) => {
    lines.length = 0;
    logger.info("e", fields as Record<string, unknown>);
    expect(lines).toHaveLength(1);
    const o = JSON.parse(lines[0]!);
    expect(o).toMatchObject({ level: "info", event: "e", ...expected });
    expect(Object.keys(o).slice(0, 3)).toEqual(["time", "level", "event"]);
  });
  it("an event that is not a string is written as one", () => {
    lines.length = 0;
    logger.warn(undefined as unknown as string);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: "warn", event: "undefined" });
  });
});
