/**
 * The filter scanner (RFC 7644 §3.4.2.2): reads filter text into the token list scim2-parse-filter's
 * parser takes, checking the grammar on the way, so that a malformed filter is refused here in
 * scimd's own words, with the position of the problem (1-based, in characters), and the library's
 * parser only ever sees a well-formed token list.
 *
 * Values are read in context: after a comparison operator comes a value. A quoted value is a JSON
 * string; `true`, `false`, `null` and JSON numbers are literals; any other bare token is refused,
 * unless the quirk unquotedFilterValues (quirks.ts) is in force: then a bare value that is not a
 * literal or a keyword is read as the string it spells (and as a dateTime where the attribute is
 * one, since dateTimes are compared from their text).
 */
import { invalidFilter } from "./errors";
import { ALL_QUIRKS, type Quirks } from "./quirks";

export const MAX_FILTER_DEPTH = 32;

export interface FilterOptions {
  /** The IdP quirks in force (quirks.ts); all of them when left out. */
  quirks?: Quirks;
}

/** A token as scim2-parse-filter's parser takes it; `at` is its index in the text (for messages). */
export type Token = { literal: string; type: "Word" | "Quoted" | "Number" | "Bracket" | "EOT"; at?: number };

const COMPARE_OPS = new Set(["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]);
const KEYWORDS = new Set([...COMPARE_OPS, "pr", "and", "or", "not"]);
const OPERATORS = "eq, ne, co, sw, ew, gt, ge, lt, le or pr";

/** The library's word: attribute paths, operators, keywords (ASCII letters, digits, `-._:/%`). */
const WORD = /\w[-\w._:/%]*/y;
/**
 * A JSON string as the library's tokenizer delimits it (its escapes are checked separately). Each
 * character has exactly one way to match (the tokenizer's extra `|\n` made a raw line break match
 * two ways, so an unterminated string of line breaks backtracked exponentially).
 */
const QUOTED = /"(?:[^"\\]|\\[^])*"/y;
/** A bare value: everything up to a space, a bracket, a parenthesis or a quote. */
const BARE = /[^\s()[\]"]+/y;
const JSON_NUMBER = /^-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?$/;

type State = "start" | "operator" | "subOperator" | "value" | "after" | "subAttribute";

/** 1-based position in characters (code points) of index `i` of `text`, "the end" past it. */
function where(text: string, i: number): string {
  if (i >= text.length) return `at position ${[...text].length + 1} (the end of the filter)`;
  return `at position ${[...text.slice(0, i)].length + 1}`;
}

/** The text at index `i` as a message shows it: the bare token there, or its first character. */
function shown(text: string, i: number): string {
  BARE.lastIndex = i;
  const m = BARE.exec(text);
  const s = m ? m[0] : text[i]!;
  return s.length > 40 ? `${s.slice(0, 40)}…` : s;
}

function readWord(text: string, i: number): string | undefined {
  WORD.lastIndex = i;
  const m = WORD.exec(text);
  return m ? m[0] : undefined;
}

/**
 * Scans `text` into scim2-parse-filter tokens (ending in EOT), refusing any grammar error with 400
 * invalidFilter naming what was expected and where. Nesting is limited to MAX_FILTER_DEPTH levels
 * (each '(' or '[' open at once, plus every 'not'), so the recursive parser never runs deep.
 */
export function scanFilter(text: string, opts: FilterOptions = {}): Token[] {
  const unquotedValues = (opts.quirks ?? ALL_QUIRKS).has("unquotedFilterValues");
  /** A 400 invalidFilter whose detail `message` builds around the position of index `i`. */
  const fail = (i: number, message: (at: string) => string) => invalidFilter(message(where(text, i)));
  const tokens: Token[] = [];
  const open: { char: "(" | "["; at: number }[] = [];
  let state: State = "start";
  let nots = 0;
  let maxOpen = 0;
  /** The operator or attribute just read, for messages. */
  let previous = "";
  let i = 0;
  const n = text.length;
  const nest = (index: number) => {
    if (Math.max(maxOpen, open.length) + nots > MAX_FILTER_DEPTH) throw fail(index, (at) => `filter nests deeper than ${MAX_FILTER_DEPTH} levels ${at}`);
    maxOpen = Math.max(maxOpen, open.length);
  };
  for (;;) {
    while (i < n && /\s/.test(text[i]!)) i++;
    if (i >= n) break;
    const c = text[i]!;
    switch (state) {
      case "start": {
        if (c === "(") {
          open.push({ char: "(", at: i });
          nest(i);
          tokens.push({ literal: "(", type: "Bracket", at: i });
          i++;
          continue;
        }
        const word = readWord(text, i);
        if (word === undefined) throw fail(i, (at) => `expected an attribute name, '(' or 'not' ${at}, found '${shown(text, i)}'`);
        const lower = word.toLowerCase();
        if (lower === "and" || lower === "or") throw fail(i, (at) => `expected an attribute name, '(' or 'not' ${at}, found '${word}'`);
        tokens.push({ literal: word, type: "Word", at: i });
        if (lower === "not") {
          nots++;
          nest(i);
        } else {
          previous = word;
          state = "operator";
        }
        i += word.length;
        continue;
      }
      case "operator":
      case "subOperator": {
        if (c === "[" && state === "operator") {
          const outer = open.find((o) => o.char === "[");
          if (outer) throw fail(i, (at) => `value filters cannot be nested: the '[' ${at} is inside the '[' ${where(text, outer.at)}`);
          open.push({ char: "[", at: i });
          nest(i);
          tokens.push({ literal: "[", type: "Bracket", at: i });
          i++;
          state = "start";
          continue;
        }
        const word = readWord(text, i);
        const lower = word?.toLowerCase();
        if (word === undefined || lower === undefined) throw fail(i, (at) => `expected an operator (${OPERATORS}) after '${previous}' ${at}, found '${shown(text, i)}'`);
        if (!COMPARE_OPS.has(lower) && lower !== "pr") throw fail(i, (at) => `unknown operator '${word}' ${at}: expected ${OPERATORS} after '${previous}'`);
        tokens.push({ literal: word, type: "Word", at: i });
        previous = word;
        state = lower === "pr" ? "after" : "value";
        i += word.length;
        continue;
      }
      case "value": {
        if (c === '"') {
          QUOTED.lastIndex = i;
          const m = QUOTED.exec(text);
          if (!m) throw fail(i, (at) => `unterminated string ${at}: a closing '"' is missing`);
          try {
            JSON.parse(m[0]);
          } catch {
            throw fail(i, (at) => `the string ${at} is not a valid JSON string: check its backslash escapes and write control characters as \\n, \\t or \\u00XX`);
          }
          tokens.push({ literal: m[0], type: "Quoted", at: i });
          i += m[0].length;
          state = "after";
          continue;
        }
        BARE.lastIndex = i;
        const m = BARE.exec(text);
        if (!m) throw fail(i, (at) => `expected a value after '${previous}' ${at}, found '${c}'`);
        const bare = m[0];
        if (bare === "true" || bare === "false" || bare === "null" || JSON_NUMBER.test(bare)) tokens.push({ literal: bare, type: "Word", at: i });
        else if (bare.startsWith("'")) throw fail(i, (at) => `the value after '${previous}' ${at} is in single quotes: SCIM strings are JSON strings, in double quotes (")`);
        else if (KEYWORDS.has(bare.toLowerCase())) throw fail(i, (at) => `expected a value after '${previous}' ${at}, found the keyword '${bare}' (to compare with that text, quote it: "${bare}")`);
        else if (!unquotedValues) throw fail(i, (at) => `expected a quoted value after '${previous}' ${at}, found '${shown(text, i)}': write strings in double quotes, as in "${shown(text, i)}"`);
        else tokens.push({ literal: JSON.stringify(bare), type: "Quoted", at: i });
        i += bare.length;
        state = "after";
        continue;
      }
      case "subAttribute": {
        const word = readWord(text, i);
        if (word === undefined) throw fail(i, (at) => `expected a sub-attribute name after '].' ${at}, found '${shown(text, i)}'`);
        tokens.push({ literal: word, type: "Word", at: i });
        previous = word;
        state = "subOperator";
        i += word.length;
        continue;
      }
      case "after": {
        if (c === ")" || c === "]") {
          const top = open[open.length - 1];
          const want = c === ")" ? "(" : "[";
          if (!top) throw fail(i, (at) => `'${c}' ${at} has no matching '${want}'`);
          if (top.char !== want) throw fail(i, (at) => `'${c}' ${at} does not close the '${top.char}' ${where(text, top.at)}: close it with '${top.char === "(" ? ")" : "]"}' first`);
          open.pop();
          if (c === "]" && text[i + 1] === ".") {
            tokens.push({ literal: "].", type: "Bracket", at: i });
            i += 2;
            state = "subAttribute";
            continue;
          }
          tokens.push({ literal: c, type: "Bracket", at: i });
          i++;
          continue;
        }
        const word = readWord(text, i);
        const lower = word?.toLowerCase();
        if (word !== undefined && (lower === "and" || lower === "or")) {
          tokens.push({ literal: word, type: "Word", at: i });
          i += word.length;
          state = "start";
          continue;
        }
        const closers = open.length ? ` or '${open[open.length - 1]!.char === "(" ? ")" : "]"}'` : " or the end of the filter";
        throw fail(i, (at) => `unexpected '${shown(text, i)}' ${at}: expected 'and', 'or'${closers} after a complete comparison`);
      }
    }
  }
  switch (state) {
    case "start":
      if (!tokens.length) throw invalidFilter("filter is empty");
      throw fail(n, (at) => `expected an attribute name, '(' or 'not' after '${tokens[tokens.length - 1]!.literal}' ${at}`);
    case "operator":
    case "subOperator":
      throw fail(n, (at) => `expected an operator (${OPERATORS}) after '${previous}' ${at}`);
    case "value":
      throw fail(n, (at) => `expected a value after '${previous}' ${at}`);
    case "subAttribute":
      throw fail(n, (at) => `expected a sub-attribute name after '].' ${at}`);
  }
  const unclosed = open[open.length - 1];
  if (unclosed) throw fail(unclosed.at, (at) => `unclosed '${unclosed.char}' ${at}: add '${unclosed.char === "(" ? ")" : "]"}'`);
  tokens.push({ literal: "", type: "EOT" });
  return tokens;
}

/** The position (for messages) of the token at `index` of a token list derived from `scanFilter`'s. */
export function positionOfToken(text: string, tokens: readonly Token[], index: number): string {
  for (let k = Math.min(index, tokens.length - 1); k >= 0; k--) {
    const at = tokens[k]!.at;
    if (at !== undefined) return where(text, at);
  }
  return where(text, 0);
}
