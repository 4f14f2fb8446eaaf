/**
 * makedumpfile's filter configuration (`--config FILE`, makedumpfile.conf(5)): `[vmlinux]` sections of
 *
 *     erase <Symbol>[.member[...]] [size <SizeValue>[K|M] | size <SizeSymbol> | nullify]
 *     for <id> in { <ArrayVar> | <StructVar> via <NextMember> | <ListHeadVar> within <StructName>:<ListHeadMember> }
 *         erase <id>[.MemberExpression] [size <SizeExpression> | nullify]
 *         ...
 *     endfor
 *
 * Tokenised as makedumpfile does: `#` starts a comment, tabs are spaces, tokens are separated by spaces and a
 * command may span lines; a line starting with `[` opens a section. Commands before any section belong to
 * vmlinux. Sections of modules are reported (vmsift reads no module debug information) and skipped.
 */
import { VmsiftError } from "./errors.ts";

/** One erase statement as written. */
export interface EraseStatement {
  /** Line in the file (0 for --erase). */
  line: number;
  /** The symbol expression, as written (ERASEINFO repeats it). */
  expr: string;
  /** `nullify`: zero the pointer itself. */
  nullify: boolean;
  /** The token after `size`, as written (a number with K/M, or a symbol expression). */
  size?: string;
}

/** An erase command or a loop of them. */
export interface FilterCommand {
  /** Line of the command's first token. */
  line: number;
  /** The erase statements (one, or the loop body). */
  erases: EraseStatement[];
  /** For a `for ... endfor` loop: the iteration variable and what it walks. */
  loop?: {
    variable: string;
    list: string;
    via?: string;
    /** "StructName" or "StructName:ListHeadMember" after `within`. */
    within?: string;
  };
}

/** The parsed file. */
export interface FilterConfig {
  /** The commands, in file order. */
  commands: FilterCommand[];
  /** Module sections skipped (name and line). */
  skippedSections: { name: string; line: number }[];
}

const KEYWORDS = new Set(["erase", "size", "nullify", "for", "in", "within", "endfor"]);

interface Token {
  text: string;
  line: number;
}

/** Parse filter.conf text; `source` names it in errors ("FILE line N: ..."). */
export function parseFilterConfig(text: string, source: string): FilterConfig {
  const tokens: Token[] = [];
  const skippedSections: { name: string; line: number }[] = [];
  let inVmlinux = true;
  text.split("\n").forEach((raw, i) => {
    const line = i + 1;
    let s = raw;
    const hash = s.indexOf("#");
    if (hash >= 0) s = s.slice(0, hash);
    s = s.replaceAll("\t", " ");
    if (s.startsWith("[")) {
      const close = s.indexOf("]");
      if (close < 0) throw new VmsiftError(`line ${line}: invalid module section entry`, { file: source });
      const name = s.slice(1, close);
      inVmlinux = name === "vmlinux";
      if (!inVmlinux) skippedSections.push({ name, line });
      return;
    }
    if (!inVmlinux) return;
    for (const t of s.split(" ")) if (t !== "") tokens.push({ text: t, line });
  });
  let pos = 0;
  const fail = (line: number, what: string): never => {
    throw new VmsiftError(`line ${line}: ${what}`, { file: source });
  };
  const peek = () => tokens[pos];
  const take = () => tokens[pos++];
  const lastLine = () => tokens[Math.min(pos, tokens.length) - 1]?.line ?? 0;
  const operand = (what: string): Token => {
    const t = take();
    if (t === undefined || KEYWORDS.has(t.text)) fail(t?.line ?? lastLine(), `expected ${what}`);
    return t;
  };
  const erase = (): EraseStatement => {
    const t = operand("a kernel symbol after 'erase'");
    const st: EraseStatement = { line: t.line, expr: t.text, nullify: false };
    if (peek()?.text === "nullify") {
      take();
      st.nullify = true;
    } else if (peek()?.text === "size") {
      take();
      st.size = operand("a size or a size symbol after 'size'").text;
    }
    return st;
  };
  const commands: FilterCommand[] = [];
  while (pos < tokens.length) {
    const t = take();
    if (t.text === "erase") {
      commands.push({ line: t.line, erases: [erase()] });
      continue;
    }
    if (t.text !== "for") fail(t.line, `invalid token '${t.text}'`);
    const variable = operand("an iteration variable after 'for'").text;
    if (variable.includes(".")) fail(t.line, `invalid iteration variable '${variable}'`);
    const inTok = take();
    if (inTok?.text !== "in") fail(inTok?.line ?? t.line, "expected token 'in'");
    const list = operand("a list symbol after 'in'").text;
    const loop: NonNullable<FilterCommand["loop"]> = { variable, list };
    if (peek()?.text === "via") {
      take();
      const m = take();
      if (m === undefined) fail(lastLine(), "expected a member name after 'via'");
      loop.via = m.text;
    } else if (peek()?.text === "within") {
      take();
      const w = operand("a struct name after 'within'").text;
      if (w.startsWith(":")) fail(lastLine(), "invalid token found after 'within' keyword");
      if (w.endsWith(":")) fail(lastLine(), "expected a list_head member after ':'");
      loop.within = w;
    }
    const erases: EraseStatement[] = [];
    for (;;) {
      const n = take();
      if (n === undefined) fail(t.line, "no matching 'endfor' found");
      if (n.text === "endfor") break;
      if (n.text !== "erase") fail(n.line, `invalid token '${n.text}'`);
      const st = erase();
      if (st.expr.split(".").filter((s) => s !== "")[0] !== variable) {
        fail(st.line, `unused iteration variable '${variable}'`);
      }
      erases.push(st);
    }
    commands.push({ line: t.line, erases, loop });
  }
  return { commands, skippedSections };
}

/**
 * `--erase SYMBOL[.member...][:SIZE]` as a filter command: `erase SYMBOL[.member...] [size SIZE]` (SIZE a
 * number with an optional K/M suffix, or `nullify`).
 */
export function eraseOptionCommand(arg: string): FilterCommand {
  const colon = arg.lastIndexOf(":");
  const expr = colon < 0 ? arg : arg.slice(0, colon);
  const size = colon < 0 ? undefined : arg.slice(colon + 1);
  if (expr === "" || /\s/.test(expr)) {
    throw new VmsiftError(`--erase: '${arg}' is not SYMBOL[.member...][:SIZE]`);
  }
  if (size !== undefined && size !== "nullify" && !/^\d+[KkMm]?$/.test(size)) {
    throw new VmsiftError(`--erase: size '${size}' is not a number (with K or M) or 'nullify'`);
  }
  return {
    line: 0,
    erases: [{
      line: 0,
      expr,
      nullify: size === "nullify",
      size: size === "nullify" ? undefined : size,
    }],
  };
}
