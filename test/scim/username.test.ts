/**
 * userName and Group displayName hygiene (src/scim/username.ts), RFC 8265 PRECIS as the model:
 * refused characters, the width-mapping rule, and the comparison key.
 */
import { describe, expect, it, test } from "bun:test";
import { compareKey, userNameKey } from "../../src/scim/compare-keys";
import { resolveFilter } from "../../src/scim/filter";
import { finalizeResource, type Resource } from "../../src/scim/resource";
import { GROUP_RESOURCE, USER_RESOURCE } from "../../src/scim/schema";
import { mapWidth } from "../../src/scim/username";
import { scimError } from "../helpers";

const USER = "urn:ietf:params:scim:schemas:core:2.0:User";
const user = (userName: string): Resource => ({ schemas: [USER], userName, displayName: "A", emails: [{ value: "a@example.com" }] });
const group = (displayName: string): Resource => ({ schemas: ["urn:ietf:params:scim:schemas:core:2.0:Group"], displayName });

describe("userName: refused characters (RFC 8265 §3.3 IdentifierClass as the model)", () => {
  test.each([
    ["a zero-width space", "ali\u200bce", "U+200B ZERO WIDTH SPACE", 4, "Cf"],
    ["a right-to-left override", "\u202eecila", "U+202E RIGHT-TO-LEFT OVERRIDE", 1, "Cf"],
    ["a left-to-right isolate", "al\u2066ice", "U+2066 LEFT-TO-RIGHT ISOLATE", 3, "Cf"],
    ["a byte order mark inside", "ali\ufeffce", "U+FEFF ZERO WIDTH NO-BREAK SPACE", 4, "Cf"],
    ["a soft hyphen", "al\u00adice", "U+00AD SOFT HYPHEN", 3, "Cf"],
    ["NUL", "ali\u0000ce", "U+0000 NULL", 4, "Cc"],
    ["an escape character", "\u001b[31malice", "U+001B ESCAPE", 1, "Cc"],
    ["a tab inside", "ali\tce", "U+0009 CHARACTER TABULATION", 4, "Cc"],
    ["a C1 control", "ali\u0085ce", "U+0085", 4, "Cc"],
    ["a line separator", "ali\u2028ce", "U+2028 LINE SEPARATOR", 4, "Zl"],
    ["a lone high surrogate", "ali\ud800ce", "U+D800", 4, "Cs"],
    ["a lone low surrogate at the end", "alice\udc00", "U+DC00", 6, "Cs"],
    ["a Hangul filler", "ali\u3164ce", "U+3164 HANGUL FILLER", 4, "Default_Ignorable_Code_Point"],
    ["a leading space", " alice", "U+0020 SPACE", 1, "whitespace at the start"],
    ["a trailing space", "alice ", "U+0020 SPACE", 6, "whitespace at the end"],
    ["a trailing no-break space", "alice\u00a0", "U+00A0 NO-BREAK SPACE", 6, "whitespace at the end"],
    ["a leading ideographic space", "\u3000alice", "U+3000 IDEOGRAPHIC SPACE", 1, "whitespace at the start"],
    ["a character beyond the BMP counted as one position", "😀\u200b", "U+200B", 2, "Cf"],
  ])("refuses a userName with %s with 400 invalidValue naming the character, its class and its position", (_case, userName, named, position, cls) => {
    const e = scimError(() => finalizeResource(USER_RESOURCE, user(userName)));
    expect([e.status, e.scimType]).toEqual([400, "invalidValue"]);
    expect(e.detail).toContain("'userName'");
    expect(e.detail).toContain(named);
    expect(e.detail).toContain(cls);
    expect(e.detail).toContain(`at position ${position};`);
  });

  it("accepts spaces inside a userName, e-mail shapes and letters of any script", () => {
    for (const n of ["ada lovelace", "ada+scim@example.com", "Åsa.Ström", "user_ñ", "李小龍", "o'brien", "عمر"]) expect(finalizeResource(USER_RESOURCE, user(n)).userName).toBe(n);
  });

  it("leaves an unchanged userName of a stored user as it is, even one the rules would refuse now (a user stored before them)", () => {
    const legacy = user("alice ");
    expect(finalizeResource(USER_RESOURCE, { ...legacy, title: "x" }, legacy).userName).toBe("alice ");
    const e = scimError(() => finalizeResource(USER_RESOURCE, user("bob "), legacy));
    expect(e.scimType).toBe("invalidValue");
  });
});

describe("userName: width mapping (RFC 8265 §3.3.1, UAX #11)", () => {
  it("stores full-width and half-width forms as their ordinary forms", () => {
    expect(finalizeResource(USER_RESOURCE, user("ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ")).userName).toBe("alice@example.com");
    expect(finalizeResource(USER_RESOURCE, user("ﾀﾛｳ")).userName).toBe("タロウ");
    expect(finalizeResource(USER_RESOURCE, user("Ａｌｉｃｅ")).userName).toBe("Alice"); // case is kept; the key folds it
  });

  it("maps every character of U+3000 and U+FF00–U+FFEF that has a compatibility decomposition to one character with the same NFKD, outside that block", () => {
    let mapped = 0;
    for (const cp of [0x3000, ...Array.from({ length: 0xf0 }, (_, i) => 0xff00 + i)]) {
      const c = String.fromCodePoint(cp);
      const m = mapWidth(c);
      if (c.normalize("NFKD") === c) {
        expect({ cp, m }).toEqual({ cp, m: c });
        continue;
      }
      mapped++;
      expect([...m].length).toBe(1);
      expect(m.codePointAt(0)! < 0xff00).toBe(true);
      expect({ cp, nfkd: m.normalize("NFKD") }).toEqual({ cp, nfkd: c.normalize("NFKD") });
    }
    expect(mapped).toBe(226);
    // One level deep, as the decomposition mapping says (NFKD would go on to SPACE + COMBINING MACRON, and to a conjoining jamo).
    expect(mapWidth("\uffe3")).toBe("\u00af");
    expect(mapWidth("\uffa1")).toBe("\u3131");
  });

  it("keys a userName by width mapping, NFC and lower case, and a filter literal on userName the same way (RFC 8265 §3.3.3)", () => {
    expect(userNameKey("ＡＬＩＣＥ")).toBe("alice");
    expect(userNameKey("ｶﾞ")).toBe("ガ");
    expect(userNameKey("Rene\u0301")).toBe("ren\u00e9");
    expect(compareKey(USER_RESOURCE.schema.attributes.find((a) => a.name === "userName")!, "ＡＬＩＣＥ")).toBe("alice");
    expect(resolveFilter(USER_RESOURCE, 'userName eq "ａｌｉｃｅ"')).toMatchObject({ kind: "compare", value: "alice" });
    // other strings keep the plain NFC + lower-case rule
    expect(resolveFilter(USER_RESOURCE, 'title eq "ＡＢ"')).toMatchObject({ kind: "compare", value: "ａｂ" });
  });
});

describe("Group displayName: refused characters", () => {
  test.each([
    ["a right-to-left override", "Admins\u202e", "U+202E", "Cf"],
    ["a zero-width space", "Ad\u200bmins", "U+200B", "Cf"],
    ["NUL", "Admins\u0000", "U+0000", "Cc"],
    ["a lone surrogate", "Admins\udfff", "U+DFFF", "Cs"],
  ])("refuses a Group displayName with %s with 400 invalidValue", (_case, name, named, cls) => {
    const e = scimError(() => finalizeResource(GROUP_RESOURCE, group(name)));
    expect([e.status, e.scimType]).toEqual([400, "invalidValue"]);
    expect(e.detail).toContain("'displayName'");
    expect(e.detail).toContain(named);
    expect(e.detail).toContain(cls);
  });

  it("accepts emoji sequences with a zero-width joiner, a zero-width non-joiner in Persian, and keeps full-width forms and spaces as sent", () => {
    for (const n of ["👩‍💻 Developers", "می\u200cخواهم", "Ｔｅａｍ", " Padded "]) expect(finalizeResource(GROUP_RESOURCE, group(n)).displayName).toBe(n);
  });
});
