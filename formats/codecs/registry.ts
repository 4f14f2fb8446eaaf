/**
 * Codec registry: maps the CLI choice (-c zlib, -l lzo, -p snappy, -z zstd) and the page-descriptor /
 * header-status flag to a PageCodec. Each call makes a fresh instance with its own work buffers (codecs are
 * not re-entrant: one per worker / per reader).
 *
 * Every codec has engines (engines.ts), tried in order under "auto": zlib libdeflate → libz → node:zlib,
 * lzo liblzo2 → TypeScript, snappy libsnappy → TypeScript, zstd libzstd → node:zlib. The system libraries go
 * through Deno FFI (need --allow-ffi); the last engine of each codec needs nothing. The result says which
 * engine it is (`impl`, `engine`) and, when "auto" could not use the first one, why (`fallback`).
 */
import { VmsiftError } from "../../core/errors.ts";
import { FLAG_LZO, FLAG_SNAPPY, FLAG_ZLIB, FLAG_ZSTD, type PageCodec } from "./codec.ts";
import { type CodecName, type EngineChoice, type EngineName, enginesFor } from "./engines.ts";
import { LzoCodec } from "./lzo.ts";
import { SnappyCodec } from "./snappy.ts";
import { ZstdCodec } from "./zstd.ts";
import { ZlibCodec } from "./zlib.ts";
import { loadNodeZlib, nodeZlib, nodeZlibLoaded } from "./nodeZlib.ts";
import { ffiGranted } from "./ffiLib.ts";
import { LibdeflateCodec } from "./libdeflate.ts";
import { NativeZlibCodec } from "./nativeZlib.ts";
import { NativeZstdCodec } from "./nativeZstd.ts";
import { NativeLzoCodec } from "./nativeLzo.ts";
import { NativeSnappyCodec } from "./nativeSnappy.ts";

export type { CodecName, EngineChoice, EngineName } from "./engines.ts";

/** All codec names, in flag order. */
export const CODEC_NAMES: readonly CodecName[] = ["zlib", "lzo", "snappy", "zstd"];

/** Descriptor flag / header status bit of each codec. */
const CODEC_FLAGS: Readonly<Record<CodecName, number>> = {
  zlib: FLAG_ZLIB,
  lzo: FLAG_LZO,
  snappy: FLAG_SNAPPY,
  zstd: FLAG_ZSTD,
};

/** The codec name for a single flag bit, or undefined (0, several bits, unknown bits). */
export function codecNameForFlag(flag: number): CodecName | undefined {
  for (const n of CODEC_NAMES) if (CODEC_FLAGS[n] === flag) return n;
  return undefined;
}

/** Which engine to use (engines.ts): "auto", "native", "builtin" or an engine name. */
export type CodecImplChoice = EngineChoice;

/** Options of createCodec. */
export interface CreateCodecOptions {
  /**
   * Default "auto": the codec's engines in order, the first that loads. An engine name forces it (throws
   * when it cannot be used or is not one of the codec's); "native" is the first FFI engine that loads;
   * "builtin" the engine that needs no FFI (node:zlib for zlib and zstd, TypeScript for lzo and snappy).
   */
  impl?: EngineChoice;
  /**
   * Library names to try instead of the defaults (tests inject missing ones): one list for every FFI engine
   * of the codec, or a list per engine.
   */
  libraryNames?: readonly string[] | Partial<Record<EngineName, readonly string[]>>;
}

/** A codec plus how it was chosen. `impl` (on every PageCodec) names the engine. */
export type CreatedCodec = PageCodec & {
  /** The engine this codec is (also on every registry codec as `engine`). */
  readonly engine: EngineName;
  /**
   * Set when "auto" (or "native") could not use the codec's first engine: a one-line message saying which engine is used
   * instead and why the others could not be (for example no --allow-ffi, or libdeflate.so.0 missing), to be
   * shown at the common message level. Undefined when the first engine was used.
   */
  readonly fallback: string | undefined;
};

type Factory = (pageSize: number, names: readonly string[] | undefined) => PageCodec;

/** Every engine's factory per codec; FFI factories throw an Error saying why the library is unusable. */
const FACTORIES: Readonly<Record<CodecName, Partial<Record<EngineName, Factory>>>> = {
  zlib: {
    libdeflate: (ps, names) => new LibdeflateCodec(ps, { libraryNames: names }),
    libz: (ps, names) => new NativeZlibCodec(ps, { libraryNames: names }),
    node: () => (nodeZlib(), new ZlibCodec(1)),
  },
  lzo: {
    liblzo2: (ps, names) => new NativeLzoCodec(ps, { libraryNames: names }),
    builtin: (ps) => new LzoCodec(ps),
  },
  snappy: {
    libsnappy: (ps, names) => new NativeSnappyCodec(ps, { libraryNames: names }),
    builtin: (ps) => new SnappyCodec(ps),
  },
  zstd: {
    libzstd: (ps, names) => new NativeZstdCodec(ps, { libraryNames: names }),
    node: (ps) => (nodeZlib(), new ZstdCodec(ps)),
  },
};

/**
 * Make a codec by name or by its flag (a descriptor's `flags` or one bit of the header `status`), for pages
 * of `pageSize` bytes. Synchronous, so it works the same in a Web Worker (each worker makes its own
 * instance: codecs keep work buffers and are not re-entrant). With `impl` "auto" (default) the codec's
 * engines are tried in order (see the module comment) and `fallback` says why the first one was not used.
 * Only libz gives makedumpfile's exact -c bytes (libdeflate and node:zlib write other valid zlib streams).
 * Throws VmsiftError for an unknown name, a flag that is not exactly one codec bit, an engine choice that
 * does not belong to the codec, or a forced engine (or "native") that cannot be used, naming the library
 * and the reason.
 */
export function createCodec(
  which: CodecName | number,
  pageSize = 4096,
  opts: CreateCodecOptions = {},
): CreatedCodec {
  const name = typeof which === "number" ? codecNameForFlag(which) : which;
  if (name === undefined || !Object.hasOwn(FACTORIES, name)) {
    const what = typeof which === "number" ? `flag 0x${which.toString(16)}` : `"${which}"`;
    throw new VmsiftError(`unknown compression codec ${what}`);
  }
  const choice = opts.impl ?? "auto";
  const engines = enginesFor(name, choice);
  if (typeof engines === "string") throw new VmsiftError(engines);
  const failed: { engine: EngineName; why: string }[] = [];
  for (const engine of engines) {
    const names = Array.isArray(opts.libraryNames)
      ? opts.libraryNames as readonly string[]
      : (opts.libraryNames as Partial<Record<EngineName, readonly string[]>> | undefined)?.[engine];
    try {
      const c = FACTORIES[name][engine]!(pageSize, names);
      const fallback = failed.length > 0 ? fallbackMessage(name, failed, c) : undefined;
      return Object.assign(c, { engine, fallback });
    } catch (e) {
      failed.push({ engine, why: e instanceof Error ? e.message : String(e) });
    }
  }
  const why = failed.map((f) => f.why).join("; ");
  throw new VmsiftError(
    engines.length === 1 ? `${name} engine ${engines[0]}: ${why}` : `${choice} ${name} codec: ${why}`,
  );
}

/**
 * Before reading dumps whose pages may be compressed with synchronous createCodec (the kdump reader): import
 * node:zlib when FFI is not permitted, because then it is the only zlib and zstd decoder. With FFI, the
 * system libraries decode and node:zlib stays unloaded.
 */
export async function prepareDecoders(): Promise<void> {
  if (!ffiGranted()) await loadNodeZlib();
}

/**
 * createCodec, for callers that can wait: when none of the engines before node:zlib can be used (no
 * --allow-ffi, no system library) and node:zlib is one of the choices, it is imported first (nodeZlib.ts:
 * vmsift imports node:zlib only then). Same results and errors as createCodec otherwise.
 */
export async function createCodecAsync(
  which: CodecName | number,
  pageSize = 4096,
  opts: CreateCodecOptions = {},
): Promise<CreatedCodec> {
  try {
    return createCodec(which, pageSize, opts);
  } catch (e) {
    const name = typeof which === "number" ? codecNameForFlag(which) : which;
    const known = name !== undefined && Object.hasOwn(FACTORIES, name);
    const engines = known ? enginesFor(name, opts.impl ?? "auto") : "";
    if (nodeZlibLoaded() || typeof engines === "string" || !engines.includes("node")) throw e;
    await loadNodeZlib();
    return createCodec(which, pageSize, opts);
  }
}

/**
 * "zlib: libdeflate not usable: libdeflate.so.0: ...; using libz 1.2.13 (FFI) instead, slower (...)". Engines
 * failing for the same reason (no --allow-ffi) are listed together.
 */
function fallbackMessage(
  name: CodecName,
  failed: { engine: EngineName; why: string }[],
  c: PageCodec,
): string {
  const byReason = new Map<string, string[]>();
  for (const f of failed) {
    // the FFI codecs say "<library> is not available: <reason>"
    const m = /^\S+ is not available: ([^]*)$/.exec(f.why);
    const reason = m ? m[1] : f.why;
    byReason.set(reason, [...byReason.get(reason) ?? [], f.engine]);
  }
  const what = [...byReason].map(([reason, es]) => `${es.join(", ")} not usable: ${reason}`).join("; ");
  let note = "slower";
  if (name === "zlib") {
    note += c.engine === "libz"
      ? " (and byte-identical to makedumpfile's)"
      : "; output is valid but not byte-identical to makedumpfile's";
  }
  return `${name}: ${what}; using ${c.impl} instead, ${note}`;
}
