/**
 * Codec registry: maps the CLI choice (-c zlib, -l lzo, -p snappy, -z zstd) and the page-descriptor /
 * header-status flag to a PageCodec. Each call makes a fresh instance with its own work buffers (codecs are
 * not re-entrant: one per worker / per reader). zlib and zstd have two implementations: the system library
 * through FFI (preferred) and node:zlib (fallback); the result always says which one it is.
 */
import { VmsiftError } from "../../core/errors.ts";
import { FLAG_LZO, FLAG_SNAPPY, FLAG_ZLIB, FLAG_ZSTD, type PageCodec } from "./codec.ts";
import { LzoCodec } from "./lzo.ts";
import { SnappyCodec } from "./snappy.ts";
import { ZstdCodec } from "./zstd.ts";
import { ZlibCodec } from "./zlib.ts";
import { NativeZlibCodec } from "./nativeZlib.ts";
import { NativeZstdCodec } from "./nativeZstd.ts";

/** Codec names as used in messages and options. */
export type CodecName = "zlib" | "lzo" | "snappy" | "zstd";

/** All codec names, in flag order. */
export const CODEC_NAMES: readonly CodecName[] = ["zlib", "lzo", "snappy", "zstd"];

/** Descriptor flag / header status bit of each codec. */
export const CODEC_FLAGS: Readonly<Record<CodecName, number>> = {
  zlib: FLAG_ZLIB,
  lzo: FLAG_LZO,
  snappy: FLAG_SNAPPY,
  zstd: FLAG_ZSTD,
};

/** Mask of all codec flag bits (0x1 | 0x2 | 0x4 | 0x20). */
export const CODEC_FLAG_MASK = FLAG_ZLIB | FLAG_LZO | FLAG_SNAPPY | FLAG_ZSTD;

/** The codec name for a single flag bit, or undefined (0, several bits, unknown bits). */
export function codecNameForFlag(flag: number): CodecName | undefined {
  for (const n of CODEC_NAMES) if (CODEC_FLAGS[n] === flag) return n;
  return undefined;
}

/** Which implementation to use: "auto" (native when its library loads, else built in), or forced. */
export type CodecImplChoice = "auto" | "native" | "builtin";

/** Options of createCodec. */
export interface CreateCodecOptions {
  /** Default "auto". "native" throws when the system library cannot be used (or there is none: lzo, snappy). */
  impl?: CodecImplChoice;
  /** Library names for the native codec, tried in order (default libz.so.1 / libzstd.so.1; tests inject). */
  libraryNames?: readonly string[];
}

/** A codec plus how it was chosen. `impl` (on every PageCodec) names the implementation. */
export type CreatedCodec = PageCodec & {
  /**
   * Set when "auto" wanted the native implementation but fell back to the built-in one: a one-line message
   * with the reason (for example no --allow-ffi, or libz.so.1 missing), to be shown at the common message
   * level. Undefined when the preferred implementation was used.
   */
  readonly fallback: string | undefined;
};

/** Native (system library through FFI) factories; they throw an Error saying why when unavailable. */
const native: Partial<Record<CodecName, (pageSize: number, names?: readonly string[]) => PageCodec>> = {
  zlib: (ps, names) => new NativeZlibCodec(ps, { libraryNames: names }),
  zstd: (ps, names) => new NativeZstdCodec(ps, { libraryNames: names }),
};

/** Built-in factories: pure TypeScript (lzo, snappy) or node:zlib (zlib, zstd). */
const builtin: Readonly<Record<CodecName, (pageSize: number) => PageCodec>> = {
  zlib: () => new ZlibCodec(1),
  lzo: (ps) => new LzoCodec(ps),
  snappy: (ps) => new SnappyCodec(ps),
  zstd: (ps) => new ZstdCodec(ps),
};

/** True when `name` has a native implementation (zlib, zstd). */
export function hasNativeCodec(name: CodecName): boolean {
  return native[name] !== undefined;
}

/**
 * Make a codec by name or by its flag (a descriptor's `flags` or one bit of the header `status`), for pages
 * of `pageSize` bytes. Synchronous, so it works the same in a Web Worker (each worker makes its own
 * instance: codecs keep work buffers and are not re-entrant). With `impl` "auto" (default), zlib and zstd
 * use the system library through FFI when it loads (needs --allow-ffi; libz output is byte-identical to
 * makedumpfile's), else node:zlib, and `fallback` says why. `codec.impl` names the implementation.
 * Throws VmsiftError for an unknown name, a flag that is not exactly one codec bit, or a forced "native"
 * that cannot be used.
 */
export function createCodec(
  which: CodecName | number,
  pageSize = 4096,
  opts: CreateCodecOptions = {},
): CreatedCodec {
  const name = typeof which === "number" ? codecNameForFlag(which) : which;
  if (name === undefined || !Object.hasOwn(builtin, name)) {
    const what = typeof which === "number" ? `flag 0x${which.toString(16)}` : `"${which}"`;
    throw new VmsiftError(`unknown compression codec ${what}`);
  }
  const choice = opts.impl ?? "auto";
  if (choice !== "auto" && choice !== "native" && choice !== "builtin") {
    throw new VmsiftError(`unknown codec implementation "${choice}" (auto, native or builtin)`);
  }
  const make = native[name];
  let fallback: string | undefined;
  if (choice !== "builtin" && make !== undefined) {
    try {
      return withFallback(make(pageSize, opts.libraryNames), undefined);
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      if (choice === "native") throw new VmsiftError(`native ${name} codec: ${why}`);
      fallback = `${name}: using node:zlib, not the system library (${why})` +
        (name === "zlib" ? "; output is valid but not byte-identical to makedumpfile's" : "");
    }
  } else if (choice === "native") {
    throw new VmsiftError(`there is no native ${name} codec (only zlib and zstd)`);
  }
  return withFallback(builtin[name](pageSize), fallback);
}

function withFallback(c: PageCodec, fallback: string | undefined): CreatedCodec {
  return Object.assign(c, { fallback });
}
