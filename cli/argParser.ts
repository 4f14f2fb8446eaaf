/**
 * getopt_long(3) as makedumpfile uses it, for the command line: short options cluster (`-cd 31`, `-cd31`,
 * `-d31`), a short option's value is the rest of its cluster or else the next argument, long options take
 * `--name=value` or `--name value` and may be shortened to any unambiguous prefix, options and operands mix
 * in any order (GNU permutation), `--` ends the options, and `-` alone is an operand.
 *
 * vmsift's own rather than node:util parseArgs: importing any node: module starts Deno's Node compatibility
 * layer, about 5 MiB of resident memory in a crash kernel that has little to spare (issue 5), and getopt is
 * also what makedumpfile's users type (prefixes, `-cd31`).
 */

/** One option: a string option takes a value, a boolean one does not. */
export interface OptionSpec {
  type: "string" | "boolean";
  /** The one-letter form (`-d`), if any. */
  short?: string;
}

/** The values of options `T`: string options hold a string, boolean ones true; absent ones are undefined. */
export type OptionValues<T extends Record<string, OptionSpec>> = {
  [K in keyof T]?: T[K]["type"] extends "string" ? string : boolean;
};

/** What parseOptions found. */
export interface ParsedOptions<T extends Record<string, OptionSpec>> {
  /** By option name: the last value given (strings) or true (booleans). */
  values: OptionValues<T>;
  /** Operands, in order. */
  positionals: string[];
  /** Option names in the order given (repeats included), e.g. to let the last of -c/-l/-p/-z win. */
  order: string[];
}

/** A command line getopt would refuse; the message names the option. */
export class ArgError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ArgError";
  }
}

/** Parse `argv` (without the program name) against `specs` (keyed by long name). Throws ArgError. */
export function parseOptions<T extends Record<string, OptionSpec>>(
  argv: readonly string[],
  specs: T,
): ParsedOptions<T> {
  const byShort = new Map<string, string>();
  for (const [name, s] of Object.entries(specs)) if (s.short !== undefined) byShort.set(s.short, name);
  const out: ParsedOptions<T> = { values: {}, positionals: [], order: [] };
  const values = out.values as Record<string, string | boolean>;
  const set = (name: string, value: string | boolean) => {
    values[name] = value;
    out.order.push(name);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      out.positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith("--")) {
      const eq = a.indexOf("=");
      const given = eq < 0 ? a.slice(2) : a.slice(2, eq);
      const name = longName(given, specs);
      if (specs[name].type === "boolean") {
        if (eq >= 0) throw new ArgError(`option '--${name}' doesn't allow an argument`);
        set(name, true);
      } else if (eq >= 0) {
        set(name, a.slice(eq + 1));
      } else {
        if (i + 1 >= argv.length) throw new ArgError(`option '--${name}' requires an argument`);
        set(name, argv[++i]);
      }
      continue;
    }
    if (a.length < 2 || a[0] !== "-") {
      out.positionals.push(a);
      continue;
    }
    for (let k = 1; k < a.length; k++) {
      const name = byShort.get(a[k]);
      if (name === undefined) throw new ArgError(`invalid option -- '${a[k]}'`);
      if (specs[name].type === "boolean") {
        set(name, true);
        continue;
      }
      if (k + 1 < a.length) set(name, a.slice(k + 1));
      else if (i + 1 < argv.length) set(name, argv[++i]);
      else throw new ArgError(`option requires an argument -- '${a[k]}'`);
      break;
    }
  }
  return out;
}

/** The long option `given` names: an exact name, else the only name it is a prefix of. */
function longName(given: string, specs: Readonly<Record<string, OptionSpec>>): string {
  if (Object.hasOwn(specs, given) && given.length > 1) return given;
  const matches = given === "" ? [] : Object.keys(specs).filter((n) => n.length > 1 && n.startsWith(given));
  if (matches.length === 1) return matches[0];
  if (matches.length > 1) {
    throw new ArgError(
      `option '--${given}' is ambiguous; possibilities: ${matches.map((m) => `'--${m}'`).join(" ")}`,
    );
  }
  throw new ArgError(`unrecognized option '--${given}'`);
}
