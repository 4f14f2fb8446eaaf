/**
 * Command-line parsing with makedumpfile's option names (getopt_long semantics, cli/argParser.ts:
 * `-cd 31`, `-d31`, `--message-level=7`, `--message 7` all work). Pure: returns a description of what to do, or throws
 * UsageError; main.ts does the rest.
 */
import { ArgError, type OptionSpec, parseOptions } from "./argParser.ts";
import { type EngineChoice, enginesFor, isEngineChoice } from "../formats/codecs/engines.ts";

/** Compression chosen with -c / -l / -p / -z (last one given wins, as in makedumpfile). */
export type CodecName = "zlib" | "lzo" | "snappy" | "zstd";

/** What the command line asks for. */
export type Command =
  | { kind: "help" }
  | { kind: "version" }
  | {
    kind: "dump";
    vmcore: string;
    /** The output; "" with -F (the flattened stream goes to stdout). */
    dumpfile: string;
    /** --split: all output files (dumpfile is the first). */
    splitFiles?: string[];
  }
  | { kind: "rebuild"; dumpfile: string }
  | { kind: "reassemble"; inputs: string[]; dumpfile: string }
  | { kind: "dmesg"; vmcore: string; logfile: string }
  | { kind: "vtop"; vmcore: string; vaddr: bigint }
  | { kind: "memUsage"; kcore: string }
  | { kind: "info"; dumpfile: string }
  | { kind: "verify"; dumpfile: string; vmcore: string }
  | { kind: "symbols"; vmcore: string; name?: string };

/** Every option, with makedumpfile's defaults. */
export interface CliOptions {
  command: Command;
  codec: CodecName | null;
  /** --codec-engine: which implementation compresses (formats/codecs/engines.ts); undefined = "auto". */
  codecEngine?: EngineChoice;
  /** -d L1,L2,...: the first is used, the rest are fallbacks (ENOSPC / -L). */
  dumpLevels: number[];
  force: boolean;
  vmcoreinfoFile?: string;
  /** Bitmask: 1 progress, 2 common, 4 error, 8 debug, 16 report. */
  messageLevel: number;
  checkParams: boolean;
  dryRun: boolean;
  statsJson?: string;
  json: boolean;
  /** O_DIRECT for the dump and the bitmap file (seed propositions 1 and 3). */
  directIo: boolean;
  workDir?: string;
  cyclicBufferKiB?: number;
  excludeVmemmap: boolean;
  partialDmesg: boolean;
  /** --non-mmap: read the vmcore with read() instead of an mmap window. */
  nonMmap: boolean;
  /** -E: ELF output instead of kdump-compressed. */
  elf: boolean;
  /** -F: flattened stream on stdout (messages go to stderr). */
  flat: boolean;
  /** --splitblock-size in KiB (default 1 GiB). */
  splitblockKiB?: number;
  /** Keep kernel-image pages whatever their struct page says (default on; --no-image-guard = makedumpfile). */
  imageGuard: boolean;
  /** --num-threads N: compressing threads (FFI lanes when N > 1, at most 4: dump/run.ts); undefined = 1. */
  numThreads?: number;
  /** -L SIZE: largest output file in bytes (an incomplete file is written, or the next -d level tried). */
  sizeLimit?: number;
  /**
   * makedumpfile options given that vmsift accepts and does not use (-b, --non-cyclic): one warning line
   * each, printed by main.ts at the common message level.
   */
  ignoredOptions?: string[];
  /** -x VMLINUX: symbols (.symtab) and types (.BTF) for --config / --erase, instead of the dump's own. */
  vmlinux?: string;
  /** --config FILE: makedumpfile's filter.conf (erase commands). */
  filterConfig?: string;
  /** --erase SYMBOL[.member...][:SIZE], repeatable. */
  erase?: string[];
  /** --erase-secrets: vmsift's built-in rules (core/secretRules.ts). */
  eraseSecrets?: boolean;
}

/** A command line that cannot be run; main.ts prints the message and exits 1 (makedumpfile's FAILED). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

const OPTIONS = {
  c: { type: "boolean", short: "c" },
  l: { type: "boolean", short: "l" },
  p: { type: "boolean", short: "p" },
  z: { type: "boolean", short: "z" },
  d: { type: "string", short: "d" },
  f: { type: "boolean", short: "f" },
  i: { type: "string", short: "i" },
  h: { type: "boolean", short: "h" },
  help: { type: "boolean" },
  v: { type: "boolean", short: "v" },
  version: { type: "boolean" },
  D: { type: "boolean", short: "D" },
  "message-level": { type: "string" },
  "show-stats": { type: "boolean" },
  "stats-json": { type: "string" },
  "check-params": { type: "boolean" },
  "dry-run": { type: "boolean" },
  "dump-dmesg": { type: "boolean" },
  "partial-dmesg": { type: "boolean" },
  vtop: { type: "string" },
  json: { type: "boolean" },
  "no-direct-io": { type: "boolean" },
  "work-dir": { type: "string" },
  "cyclic-buffer": { type: "string" },
  e: { type: "boolean", short: "e" },
  "no-image-guard": { type: "boolean" },
  "erase-secrets": { type: "boolean" },
  // Accepted by makedumpfile; not implemented yet in vmsift: refused with a clear message (b and
  // non-cyclic: accepted with a warning that they are ignored).
  E: { type: "boolean", short: "E" },
  F: { type: "boolean", short: "F" },
  R: { type: "boolean", short: "R" },
  L: { type: "string", short: "L" },
  b: { type: "string", short: "b" },
  x: { type: "string", short: "x" },
  g: { type: "string", short: "g" },
  X: { type: "boolean", short: "X" },
  split: { type: "boolean" },
  reassemble: { type: "boolean" },
  "num-threads": { type: "string" },
  "codec-engine": { type: "string" },
  "non-mmap": { type: "boolean" },
  "non-cyclic": { type: "boolean" },
  "splitblock-size": { type: "string" },
  config: { type: "string" },
  eppic: { type: "string" },
  "mem-usage": { type: "boolean" },
} as const satisfies Record<string, OptionSpec>;

const SUBCOMMAND_OPTIONS = {
  json: { type: "boolean" },
  "message-level": { type: "string" },
} as const satisfies Record<string, OptionSpec>;

const NOT_YET: Record<string, string> = {
  g: "-g (generate VMCOREINFO)",
  X: "-X (Xen)",
  eppic: "--eppic",
};

/** Parse a dump level list `31` or `31,1` (each 0-31). */
export function parseDumpLevels(s: string): number[] {
  const parts = s.split(",");
  const out: number[] = [];
  for (const p of parts) {
    if (!/^[0-9]+$/.test(p.trim())) throw new UsageError(`Dump_level(${p}) is invalid.`);
    const n = Number(p.trim());
    if (n > 31) throw new UsageError(`Dump_level(${n}) is invalid.`);
    out.push(n);
  }
  if (out.length > 8) throw new UsageError("too many dump levels (at most 8)");
  return out;
}

/**
 * `-L SIZE` like makedumpfile's memparse: strtoull base 0 (decimal, 0x hex, 0 octal) and an optional
 * K/M/G/T/P/E suffix (either case, powers of 1024); nothing may follow and 0 is refused.
 */
export function parseSizeLimit(s: string): number {
  const m = /^\s*(0x[0-9a-f]+|0[0-7]*|[1-9][0-9]*)([kmgtpe]?)$/i.exec(s);
  const bad = () => new UsageError(`Limit size(${s}) is invalid.`);
  if (m === null) throw bad();
  const t = m[1].toLowerCase();
  let n = t.startsWith("0x")
    ? parseInt(t.slice(2), 16)
    : t.length > 1 && t[0] === "0"
    ? parseInt(t.slice(1), 8)
    : Number(t);
  n *= 1024 ** " kmgtpe".indexOf(m[2].toLowerCase() || " ");
  if (n === 0) throw bad();
  if (!Number.isSafeInteger(n)) throw new UsageError(`Limit size(${s}) is out of range.`);
  return n;
}

function parseNumber(name: string, s: string): number {
  const t = s.trim();
  let n: number;
  if (/^0x[0-9a-f]+$/i.test(t)) n = parseInt(t.slice(2), 16);
  else if (/^[0-9]+$/.test(t)) n = Number(t);
  else throw new UsageError(`${name}: '${s}' is not a number`);
  if (!Number.isSafeInteger(n)) throw new UsageError(`${name}: '${s}' is out of range`);
  return n;
}

/** Parse argv (without the program name). Throws UsageError for anything invalid. */
export function parseCommandLine(argv: string[]): CliOptions {
  // Subcommands of vmsift's own (not in makedumpfile): `info` and `verify`.
  if (argv[0] === "info" || argv[0] === "verify" || argv[0] === "symbols") {
    return parseSubcommand(argv[0], argv.slice(1));
  }
  // --erase is repeatable: taken out before the one-value-per-option parser sees the rest.
  const erase: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      rest.push(...argv.slice(i));
      break;
    }
    if (a === "--erase") {
      if (i + 1 >= argv.length) throw new UsageError("--erase needs SYMBOL[.member...][:SIZE]");
      erase.push(argv[++i]);
    } else if (a.startsWith("--erase=")) erase.push(a.slice("--erase=".length));
    else rest.push(a);
  }
  argv = rest;
  let parsed;
  try {
    parsed = parseOptions(argv, OPTIONS);
  } catch (e) {
    throw e instanceof ArgError ? new UsageError(e.message) : e;
  }
  const v = parsed.values;
  // Last of -c/-l/-p/-z wins.
  let codec: CodecName | null = null;
  for (const name of parsed.order) {
    if (name === "c") codec = "zlib";
    else if (name === "l") codec = "lzo";
    else if (name === "p") codec = "snappy";
    else if (name === "z") codec = "zstd";
  }
  const messageLevel = v["message-level"] !== undefined
    ? parseNumber("--message-level", v["message-level"])
    : 7;
  if (messageLevel > 31) throw new UsageError(`Message_level(${messageLevel}) is invalid.`);
  const opts: CliOptions = {
    command: { kind: "help" },
    codec,
    dumpLevels: v.d !== undefined ? parseDumpLevels(v.d) : [0],
    force: v.f ?? false,
    vmcoreinfoFile: v.i,
    messageLevel: (v["show-stats"] ? messageLevel | 16 : messageLevel) | (v.D ? 8 : 0),
    checkParams: v["check-params"] ?? false,
    dryRun: v["dry-run"] ?? false,
    statsJson: v["stats-json"],
    json: v.json ?? false,
    directIo: !(v["no-direct-io"] ?? false),
    workDir: v["work-dir"],
    cyclicBufferKiB: v["cyclic-buffer"] !== undefined
      ? parseNumber("--cyclic-buffer", v["cyclic-buffer"])
      : undefined,
    excludeVmemmap: v.e ?? false,
    partialDmesg: v["partial-dmesg"] ?? false,
    imageGuard: !(v["no-image-guard"] ?? false),
    nonMmap: v["non-mmap"] ?? false,
    elf: v.E ?? false,
    flat: v.F ?? false,
    splitblockKiB: v["splitblock-size"] !== undefined
      ? parseNumber("--splitblock-size", v["splitblock-size"])
      : undefined,
    sizeLimit: v.L !== undefined ? parseSizeLimit(v.L) : undefined,
    vmlinux: v.x,
    filterConfig: v.config,
    erase,
    eraseSecrets: v["erase-secrets"] ?? false,
  };
  const ignored: string[] = [];
  if (v.b !== undefined) {
    const order = parseNumber("-b", v.b);
    ignored.push(
      `-b ${order} is ignored: vmsift keeps no page cache of that size to tune (bitmap memory is --cyclic-buffer)`,
    );
  }
  if (v["non-cyclic"]) {
    ignored.push(
      "--non-cyclic is ignored: vmsift has no cyclic mode; bitmaps stay in memory up to --cyclic-buffer, " +
        "beyond it in a file beside the dump",
    );
  }
  if (ignored.length > 0) opts.ignoredOptions = ignored;
  if (v.h || v.help) return opts;
  if (v.v || v.version) return { ...opts, command: { kind: "version" } };
  if (v["codec-engine"] !== undefined) opts.codecEngine = parseCodecEngine(v["codec-engine"], codec);
  if (v["num-threads"] !== undefined) {
    // makedumpfile's constraints (check_param_for_creating_dumpfile), before "not supported yet"
    const n = parseNumber("--num-threads", v["num-threads"]);
    if (n < 1) throw new UsageError(`--num-threads: '${v["num-threads"]}' is not a number of threads >= 1`);
    if (v.split) throw new UsageError("--num-threads cannot be used with --split");
    if (v.E) throw new UsageError("--num-threads cannot be used with ELF format (-E)");
    opts.numThreads = n;
  }
  for (const [key, what] of Object.entries(NOT_YET)) {
    if ((v as Record<string, unknown>)[key] !== undefined) {
      throw new UsageError(`${what} is not supported by this version of vmsift yet`);
    }
  }
  const pos = parsed.positionals;
  if (opts.partialDmesg && !v["dump-dmesg"]) throw new UsageError("--partial-dmesg needs --dump-dmesg");
  if (v.vtop !== undefined) {
    if (pos.length !== 1) throw new UsageError("--vtop VADDR takes exactly one VMCORE");
    const s = v.vtop.trim().replace(/^0x/i, "");
    if (!/^[0-9a-f]{1,16}$/i.test(s)) throw new UsageError(`--vtop: '${v.vtop}' is not a hex address`);
    return { ...opts, command: { kind: "vtop", vmcore: pos[0], vaddr: BigInt("0x" + s) } };
  }
  if (v["mem-usage"]) {
    if (pos.length !== 1) throw new UsageError("--mem-usage takes exactly one KCORE (/proc/kcore)");
    return { ...opts, command: { kind: "memUsage", kcore: pos[0] } };
  }
  if (v["dump-dmesg"]) {
    if (pos.length !== 2) throw new UsageError("--dump-dmesg takes VMCORE LOGFILE");
    return { ...opts, command: { kind: "dmesg", vmcore: pos[0], logfile: pos[1] } };
  }
  if (opts.elf && codec !== null) throw new UsageError("-E cannot be used with compression (-c, -l, -p, -z)");
  if (opts.flat && v.split) throw new UsageError("-F cannot be used with --split");
  if (v.R) {
    if (pos.length !== 1) throw new UsageError("-R takes exactly one DUMPFILE (the stream comes on stdin)");
    return { ...opts, command: { kind: "rebuild", dumpfile: pos[0] } };
  }
  if (v.reassemble) {
    if (pos.length < 2) throw new UsageError("--reassemble takes SPLITFILE1 [SPLITFILE2 ...] DUMPFILE");
    return {
      ...opts,
      command: { kind: "reassemble", inputs: pos.slice(0, -1), dumpfile: pos[pos.length - 1] },
    };
  }
  if (opts.flat) {
    if (pos.length !== 1) throw new UsageError("with -F give only VMCORE: the dump goes to stdout");
    if (opts.dumpLevels.length > 1) throw new UsageError("-F cannot retry with fallback dump levels");
    return { ...opts, command: { kind: "dump", vmcore: pos[0], dumpfile: "" } };
  }
  if (v.split) {
    if (pos.length < 3) throw new UsageError("--split takes VMCORE DUMPFILE1 DUMPFILE2 [DUMPFILE3 ...]");
    if (opts.elf) throw new UsageError("--split writes kdump-compressed files only (not with -E)");
    return { ...opts, command: { kind: "dump", vmcore: pos[0], dumpfile: pos[1], splitFiles: pos.slice(1) } };
  }
  if (pos.length !== 2) {
    throw new UsageError(
      pos.length < 2 ? "VMCORE and DUMPFILE are required" : `too many arguments: ${pos.join(" ")}`,
    );
  }
  if (opts.excludeVmemmap && opts.workDir === undefined) {
    // vmsift keeps bitmaps beside the dump by default, so -e does not need --work-dir (makedumpfile's does).
  }
  return { ...opts, command: { kind: "dump", vmcore: pos[0], dumpfile: pos[1] } };
}

/** `--codec-engine ENGINE`: a known engine of the chosen codec (or auto, native, builtin). */
function parseCodecEngine(s: string, codec: CodecName | null): EngineChoice {
  if (!isEngineChoice(s)) {
    throw new UsageError(`--codec-engine: ${enginesFor("zlib", s) as string}`);
  }
  if (codec === null) throw new UsageError("--codec-engine needs a codec (-c, -l, -p or -z)");
  const e = enginesFor(codec, s);
  if (typeof e === "string") throw new UsageError(`--codec-engine: ${e}`);
  return s;
}

function parseSubcommand(name: "info" | "verify" | "symbols", argv: string[]): CliOptions {
  let parsed;
  try {
    parsed = parseOptions(argv, SUBCOMMAND_OPTIONS);
  } catch (e) {
    throw e instanceof ArgError ? new UsageError(e.message) : e;
  }
  const pos = parsed.positionals;
  const base: CliOptions = {
    command: { kind: "help" },
    codec: null,
    dumpLevels: [0],
    force: false,
    messageLevel: parsed.values["message-level"] !== undefined
      ? parseNumber("--message-level", parsed.values["message-level"])
      : 7,
    checkParams: false,
    dryRun: false,
    json: parsed.values.json ?? false,
    directIo: true,
    excludeVmemmap: false,
    partialDmesg: false,
    imageGuard: true,
    nonMmap: false,
    elf: false,
    flat: false,
  };
  if (name === "info") {
    if (pos.length !== 1) throw new UsageError("usage: vmsift info [--json] DUMPFILE");
    return { ...base, command: { kind: "info", dumpfile: pos[0] } };
  }
  if (name === "symbols") {
    if (pos.length < 1 || pos.length > 2) {
      throw new UsageError("usage: vmsift symbols [--json] VMCORE [NAME]");
    }
    return { ...base, command: { kind: "symbols", vmcore: pos[0], name: pos[1] } };
  }
  if (pos.length !== 2) throw new UsageError("usage: vmsift verify [--json] DUMPFILE VMCORE");
  return { ...base, command: { kind: "verify", dumpfile: pos[0], vmcore: pos[1] } };
}

/** The usage text for -h. */
export const USAGE = `vmsift - a makedumpfile work-alike: filter and compress a kdump vmcore

Usage:
  vmsift [-c|-l|-p|-z] [-d LEVEL] [-f] [-i VMCOREINFO] [--message-level N] VMCORE DUMPFILE
  vmsift -F [-c|-l|-p|-z|-E] [-d LEVEL] VMCORE > FLATFILE
  vmsift -R DUMPFILE < FLATFILE
  vmsift --split [-c|-l|-p|-z] [-d LEVEL] VMCORE DUMPFILE1 DUMPFILE2 [...]
  vmsift --reassemble SPLITFILE1 SPLITFILE2 [...] DUMPFILE
  vmsift -E [-d LEVEL] VMCORE DUMPFILE
  vmsift --dump-dmesg [-i VMCOREINFO] VMCORE LOGFILE
  vmsift --vtop VADDR VMCORE
  vmsift --mem-usage /proc/kcore
  vmsift info [--json] DUMPFILE
  vmsift verify [--json] DUMPFILE VMCORE
  vmsift symbols [--json] VMCORE [NAME]

Options (makedumpfile's names):
  -c, -l, -p, -z      compress pages with zlib, lzo, snappy or zstd (last one wins)
  -d LEVEL[,LEVEL...] dump level 0-31: 1 zero pages, 2 non-private cache, 4 private cache,
                      8 user data, 16 free pages (hwpoison and offline pages are always excluded);
                      further levels are retried, from the start, when DUMPFILE does not fit (-L or
                      a full disk); with none left an INCOMPLETE DUMPFILE is kept (exit status 1)
  -L SIZE             limit DUMPFILE to SIZE bytes (K, M, G, T suffixes); an incomplete DUMPFILE
                      is written (header status 0x8, crash warns) if it would be larger
  -e                  also exclude the vmemmap pages (struct pages) that describe only excluded
                      pages; crash then warns that kmem may fail (header status 0x10)
  --non-mmap          read VMCORE with read() instead of a 4 MiB mmap window
  -b ORDER, --non-cyclic  accepted for makedumpfile's command lines and ignored (a warning says so)
  -E                  write an ELF core instead of kdump-compressed
  -F                  write makedumpfile's flattened format to stdout (messages go to stderr)
  -R                  rebuild DUMPFILE from a flattened stream on stdin
  --split             write several kdump-compressed files (crash opens them together)
  --reassemble        merge split files into one DUMPFILE
  --splitblock-size KiB  balance --split files in blocks of this size (default 1 GiB)
  VMCORE may also be a kdump-compressed or flattened file (vmsift's, makedumpfile's, QEMU's):
  it is re-filtered to the given level (OR'ed with its own).
  -f                  overwrite DUMPFILE if it exists
  -i VMCOREINFO       take VMCOREINFO from this text file instead of the vmcore's note
  --message-level N   1 progress, 2 common, 4 error, 8 debug, 16 report (default 7)
  -D                  debug messages (message level bit 8)
  --show-stats        print the page-count report (message level bit 16)
  --stats-json FILE   write the page counts as JSON
  --check-params      only check the command line
  --dry-run           do everything but write DUMPFILE
  --dump-dmesg        write the kernel log of VMCORE to LOGFILE
  --vtop VADDR        print the page-table walk for a kernel virtual address
  --mem-usage         on the running system (/proc/kcore, root): page classes as makedumpfile
                      prints them and the size of a -d 31 dump, to size crashkernel= and the target
  --no-image-guard    exclude kernel-image pages by their struct page like makedumpfile does
                      (default: the live parts of the kernel image, bounded by the dump's
                      kallsyms, are always kept; makedumpfile issue 21)
  --config FILE       erase data as makedumpfile's filter.conf says ([vmlinux] erase/for commands);
                      symbols and types from the dump's kallsyms and BTF, or from -x VMLINUX
  --erase EXPR[:SIZE] erase SYMBOL[.member...] (SIZE bytes, K/M, or 'nullify'); repeatable
  --erase-secrets     erase well-known secrets: the kernel command line, the RNG key and entropy
                      pool (docs/symbols.md)
  -x VMLINUX          symbols (.symtab) and types (.BTF) for --config/--erase from this vmlinux
  --no-direct-io      write DUMPFILE through the page cache instead of O_DIRECT
  --work-dir DIR      where the bitmap file goes when bitmaps do not fit in memory
                      (default: DUMPFILE's directory)
  --cyclic-buffer KiB memory budget for the bitmaps
  --num-threads N     compress pages in N threads, at most 4 (same output; not with --split or -E)
  --codec-engine ENGINE  which implementation compresses (default auto: the first that loads):
                      -c libdeflate (fastest; valid zlib, not makedumpfile's bytes), libz
                      (makedumpfile's exact bytes), node; -l liblzo2, builtin; -p libsnappy
                      (makedumpfile's bytes), builtin; -z libzstd, node
  -h, --help          this text
  -v, --version       version

Exit status: 0 success, 1 failure, 2 VMCOREINFO release does not match the vmcore.
`;
