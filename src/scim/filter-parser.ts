/**
 * The adapter to scim2-parse-filter (RFC 7644 §3.4.2.2): filter text in, the library's AST out, with
 * limits, and every failure a 400 invalidFilter in scimd's words.
 *
 * Only the library's parser is used (its `filter()` compares case-sensitively and `flatten` loses
 * same-element meaning). The package exports `parse()`, which tokenises with its own lexer; scimd
 * scans the text itself (filter-syntax.ts, which checks the grammar and knows where it breaks), so it
 * imports the parser from the package's internal path `lib/src/parser` and feeds it the checked
 * tokens. `bun build --compile` bundles that file like any other; the binary tests parse filters.
 */
import { parseFilter, Tokens } from "scim2-parse-filter/lib/src/parser";
import type { Filter } from "scim2-parse-filter";
import { invalidFilter } from "./errors";
import type { CompareOp, CompareValue } from "./filter";
import { positionOfToken, scanFilter, type FilterOptions, type Token } from "./filter-syntax";

export const MAX_FILTER_LENGTH = 4096;

/**
 * scim2-parse-filter turns `emails[type eq "work"].value eq "x"` into a loose AND that matches across
 * elements. Rewrite the token stream to `emails[(type eq "work") and value eq "x"]` before parsing, so
 * the condition holds within one element. (`scanFilter` has checked the grammar around '].'.)
 */
function rewriteValuePathSubAttr(tokens: Token[]): Token[] {
  const out: Token[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.type === "Bracket" && t.literal === "].") {
      // The scanner has checked that a '[' is open and that 'sub-attribute operator [value]' follows.
      let open = out.length - 1;
      while (!(out[open]!.type === "Bracket" && out[open]!.literal === "[")) open--;
      const inner = out.splice(open + 1);
      const sub = tokens[i + 1]!;
      const op = tokens[i + 2]!;
      const isPresent = op.literal.toLowerCase() === "pr";
      const value = isPresent ? [] : [tokens[i + 3]!];
      out.push({ literal: "(", type: "Bracket", at: t.at }, ...inner, { literal: ")", type: "Bracket", at: t.at }, { literal: "and", type: "Word", at: t.at }, sub, op, ...value, { literal: "]", type: "Bracket", at: t.at });
      i += isPresent ? 2 : 3;
      continue;
    }
    out.push(t);
  }
  return out;
}

/**
 * The one-comparison filter an IdP sends before every create (`userName eq "…"`, `externalId eq …`,
 * `id eq …`): recognised without the general parser. Anything else goes through scim2-parse-filter;
 * a test checks that both give the same tree for these shapes.
 */
const SIMPLE_FILTER = /^\s*([A-Za-z][\w-]*(?:\.[A-Za-z][\w-]*)?|urn:[A-Za-z0-9.:_-]+:[A-Za-z][\w-]*(?:\.[A-Za-z][\w-]*)?)\s+(eq|ne|co|sw|ew|gt|ge|lt|le)\s+("(?:[^"\\]|\\.)*"|true|false|null)\s*$/i;

function parseSimple(text: string): Filter | undefined {
  const m = SIMPLE_FILTER.exec(text);
  // Bare literals must be JSON's own lower-case true/false/null, as the general parser requires.
  if (!m || (!m[3]!.startsWith('"') && m[3] !== m[3]!.toLowerCase())) return undefined;
  if (/^(not|and|or)$/i.test(m[1]!)) return undefined; // keywords are the general parser's business
  let compValue: CompareValue;
  try {
    compValue = JSON.parse(m[3]!);
  } catch {
    return undefined; // let the general parser produce its error
  }
  return { op: m[2]!.toLowerCase() as CompareOp, attrPath: m[1]!, compValue } as Filter;
}

/**
 * Parses filter text into scim2-parse-filter's AST, with limits; every failure is 400 invalidFilter
 * in scimd's words. `scanFilter` checks the grammar and reports where it breaks; the library's parser
 * then builds the tree from the checked tokens.
 */
export function parseFilterText(text: string, opts: FilterOptions = {}): Filter {
  if (text.length > MAX_FILTER_LENGTH) throw invalidFilter(`filter is longer than ${MAX_FILTER_LENGTH} characters`);
  if (text.trim() === "") throw invalidFilter("filter is empty");
  const simple = parseSimple(text);
  if (simple) return simple;
  const tokens = rewriteValuePathSubAttr(scanFilter(text, opts));
  const list = new Tokens(tokens as never);
  try {
    const ast = parseFilter(list) as Filter;
    if (list.peek().type !== "EOT") throw new Error("tokens left over");
    return ast;
  } catch {
    // The scanner accepts only what the parser does; should they ever disagree, say where, in our words.
    throw invalidFilter(`filter is not valid RFC 7644 §3.4.2.2 syntax ${positionOfToken(text, tokens, (list as unknown as { i: number }).i)}`);
  }
}
