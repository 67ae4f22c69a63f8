/** `scimd activity --since/--until`: durations back from now, ISO dates and times (UTC unless zoned), impossible days refused. */
import { describe, expect, it } from "bun:test";
import { parseWhen } from "../../src/cli/activity";
import { UsageError } from "../../src/config";

describe("parseWhen", () => {
  const now = Date.parse("2026-12-02T12:00:00Z");
  it.each([
    ["24h", "2026-12-01T12:00:00.000Z"],
    ["2025-06-01", "2025-06-01T00:00:00.000Z"],
    ["2025-06-01T09:00", "2025-06-01T09:00:00.000Z"],
    ["2025-06-01 09:00:00", "2025-06-01T09:00:00.000Z"],
    ["2025-06-01T09:00:00+02:00", "2025-06-01T07:00:00.000Z"],
    ["2024-02-29", "2024-02-29T00:00:00.000Z"],
  ])("%s is %s, whatever the machine's time zone", (raw, iso) => {
    expect(parseWhen(raw, "--since", now)).toBe(iso);
  });
  it.each(["2025-02-30", "2025-02-31T00:00:00Z", "2023-02-29", "2025-13-01", "12345", "yesterday"])("%s is refused, naming the option", (raw) => {
    expect(() => parseWhen(raw, "--until", now)).toThrow(UsageError);
    expect(() => parseWhen(raw, "--until", now)).toThrow(/--until must be/);
  });
});
