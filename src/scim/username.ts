/**
 * Identifier hygiene for the two uniqueness keys: a User's userName and a Group's displayName.
 *
 * userName follows RFC 8265's PRECIS profiles as its model. What is stored is the
 * UsernameCasePreserved-style enforcement output of what the client sent: refused if it holds a
 * control, format or other invisible character, a line or paragraph separator, an unpaired
 * surrogate, or begins or ends with whitespace; otherwise full-width and half-width forms mapped to
 * their ordinary forms (the PRECIS width-mapping rule, RFC 8265 §3.3.1), the rest kept as sent. The
 * comparison key (uniqueness and every filter on userName) is UsernameCaseMapped: width mapping,
 * NFC, lower case — `userNameKey` in compare-keys.ts, built on `mapWidth` here. The directionality
 * rule and IdentifierClass's narrower repertoire are not applied: IdPs send e-mail-shaped and
 * display-shaped userNames that it would refuse.
 *
 * A Group's displayName is free text (a name people read), so it is neither width-mapped nor trimmed;
 * it refuses only what cannot be seen or stored faithfully: control characters, format characters
 * other than the zero-width joiner and non-joiner (which emoji sequences and Persian or Indic names
 * need), line and paragraph separators, and unpaired surrogates.
 */
import { invalidValue } from "./errors";
import type { Resource } from "./resource";
import type { ResourceTypeDef } from "./schema";

/** Names of the characters people most often paste by accident; the others are named by code point and class. */
const NAMES: Record<number, string> = {
  0x00: "NULL",
  0x09: "CHARACTER TABULATION",
  0x0a: "LINE FEED",
  0x0d: "CARRIAGE RETURN",
  0x1b: "ESCAPE",
  0x20: "SPACE",
  0x7f: "DELETE",
  0xa0: "NO-BREAK SPACE",
  0xad: "SOFT HYPHEN",
  0x200b: "ZERO WIDTH SPACE",
  0x200c: "ZERO WIDTH NON-JOINER",
  0x200d: "ZERO WIDTH JOINER",
  0x200e: "LEFT-TO-RIGHT MARK",
  0x200f: "RIGHT-TO-LEFT MARK",
  0x2028: "LINE SEPARATOR",
  0x2029: "PARAGRAPH SEPARATOR",
  0x202a: "LEFT-TO-RIGHT EMBEDDING",
  0x202b: "RIGHT-TO-LEFT EMBEDDING",
  0x202c: "POP DIRECTIONAL FORMATTING",
  0x202d: "LEFT-TO-RIGHT OVERRIDE",
  0x202e: "RIGHT-TO-LEFT OVERRIDE",
  0x2060: "WORD JOINER",
  0x2066: "LEFT-TO-RIGHT ISOLATE",
  0x2067: "RIGHT-TO-LEFT ISOLATE",
  0x2068: "FIRST STRONG ISOLATE",
  0x2069: "POP DIRECTIONAL ISOLATE",
  0x3000: "IDEOGRAPHIC SPACE",
  0x3164: "HANGUL FILLER",
  0xfeff: "ZERO WIDTH NO-BREAK SPACE (byte order mark)",
  0xffa0: "HALFWIDTH HANGUL FILLER",
};

const CONTROL = /^\p{Cc}$/u;
const FORMAT = /^\p{Cf}$/u;
const SEPARATOR = /^[\p{Zl}\p{Zp}]$/u;
const INVISIBLE = /^\p{Default_Ignorable_Code_Point}$/u;
const WHITESPACE = /^\s$/u;
const JOINERS = new Set([0x200c, 0x200d]);

/** "U+200B ZERO WIDTH SPACE" or "U+E0001". */
export function describeCodePoint(cp: number): string {
  const hex = `U+${cp.toString(16).toUpperCase().padStart(4, "0")}`;
  const name = NAMES[cp];
  return name ? `${hex} ${name}` : hex;
}

type Problem = { cp: number; position: number; what: string };

/** The first character the rules refuse, with its 1-based position counted in characters (code points). */
function firstProblem(s: string, identifier: boolean): Problem | undefined {
  let position = 0;
  for (const ch of s) {
    position++;
    const cp = ch.codePointAt(0)!;
    let what: string | undefined;
    if (cp >= 0xd800 && cp <= 0xdfff) what = "an unpaired surrogate (Unicode category Cs), which UTF-8 cannot store";
    else if (CONTROL.test(ch)) what = "a control character (Unicode category Cc)";
    else if (FORMAT.test(ch) && (identifier || !JOINERS.has(cp))) what = "an invisible format character (Unicode category Cf)";
    else if (SEPARATOR.test(ch)) what = "a line or paragraph separator (Unicode category Zl/Zp)";
    else if (identifier && INVISIBLE.test(ch)) what = "an invisible character (Unicode property Default_Ignorable_Code_Point)";
    if (what) return { cp, position, what };
  }
  if (!identifier) return undefined;
  const chars = [...s];
  const first = chars[0];
  const last = chars[chars.length - 1];
  if (first !== undefined && WHITESPACE.test(first)) return { cp: first.codePointAt(0)!, position: 1, what: "whitespace at the start" };
  if (last !== undefined && WHITESPACE.test(last)) return { cp: last.codePointAt(0)!, position: chars.length, what: "whitespace at the end" };
  return undefined;
}

/**
 * The PRECIS width-mapping rule: each full-width or half-width character (Unicode decomposition type
 * <wide> or <narrow>, UAX #11) is replaced by its decomposition mapping, one level deep — so
 * U+FFE3 FULLWIDTH MACRON becomes U+00AF MACRON and U+FFA1 HALFWIDTH HANGUL LETTER KIYEOK becomes
 * U+3131, where NFKD would go further. test/scim/username.test.ts checks the table against NFKD.
 */
function widthMapped(cp: number): number {
  if (cp === 0x3000) return 0x20;
  if (cp < 0xff01 || cp > 0xffee) return cp;
  if (cp <= 0xff5e) return cp - 0xfee0; // FULLWIDTH ! … ～ → ASCII
  const table = WIDTH_TABLE.get(cp);
  return table ?? cp;
}

const WIDTH_TABLE: Map<number, number> = (() => {
  const m = new Map<number, number>([
    [0xff5f, 0x2985],
    [0xff60, 0x2986],
    [0xffe0, 0x00a2],
    [0xffe1, 0x00a3],
    [0xffe2, 0x00ac],
    [0xffe3, 0x00af],
    [0xffe4, 0x00a6],
    [0xffe5, 0x00a5],
    [0xffe6, 0x20a9],
    [0xffe8, 0x2502],
    [0xffe9, 0x2190],
    [0xffea, 0x2191],
    [0xffeb, 0x2192],
    [0xffec, 0x2193],
    [0xffed, 0x25a0],
    [0xffee, 0x25cb],
    [0xffa0, 0x3164],
  ]);
  // Halfwidth CJK punctuation and Katakana: NFKD is the one-level mapping here.
  for (let cp = 0xff61; cp <= 0xff9f; cp++) m.set(cp, String.fromCodePoint(cp).normalize("NFKD").codePointAt(0)!);
  // Halfwidth Hangul letters map to the Hangul Compatibility Jamo (U+3131…U+3163), in four runs.
  const runs: [number, number, number][] = [
    [0xffa1, 0xffbe, 0x3131],
    [0xffc2, 0xffc7, 0x314f],
    [0xffca, 0xffcf, 0x3155],
    [0xffd2, 0xffd7, 0x315b],
    [0xffda, 0xffdc, 0x3161],
  ];
  for (const [from, to, target] of runs) for (let cp = from; cp <= to; cp++) m.set(cp, target + (cp - from));
  return m;
})();

/** RFC 8265 width mapping of a whole string. ASCII-only strings (nearly every userName) are returned as they are. */
export function mapWidth(s: string): string {
  if (!/[\u3000\uff01-\uffee]/.test(s)) return s;
  let out = "";
  for (const ch of s) out += String.fromCodePoint(widthMapped(ch.codePointAt(0)!));
  return out;
}

function refuse(attr: string, p: Problem): never {
  const fix = p.what.startsWith("whitespace") ? "send it without surrounding whitespace" : "remove that character";
  throw invalidValue(`'${attr}' contains ${describeCodePoint(p.cp)}, ${p.what}, at position ${p.position}; ${fix}`);
}

/**
 * Checks and maps the identifiers of a resource about to be written: a User's userName (refused or
 * width-mapped in place) and a Group's displayName (refused). A value equal to `previous`'s — the
 * stored resource a PUT or PATCH replaces — is left exactly as it is, so a user stored before these
 * rules can still be updated or deprovisioned without first being renamed. Values that are not
 * non-blank strings are left for the required-attribute rules.
 */
export function enforceIdentifiers(rt: ResourceTypeDef, r: Resource, previous?: Resource): void {
  const attr = rt.name === "User" ? "userName" : "displayName";
  const v = r[attr];
  if (typeof v !== "string" || v.trim() === "" || (previous !== undefined && previous[attr] === v)) return;
  const p = firstProblem(v, rt.name === "User");
  if (p) refuse(attr, p);
  if (rt.name === "User") r[attr] = mapWidth(v);
}
