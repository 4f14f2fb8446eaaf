/**
 * Codec engines: which implementations each page codec has, in the order "auto" tries them. A pure table (no
 * library is loaded here), shared by the registry (formats/codecs/registry.ts), the codec workers and the
 * command line (`--codec-engine`).
 *
 * | codec  | engines, fastest first                                                                 |
 * | ------ | -------------------------------------------------------------------------------------- |
 * | zlib   | libdeflate (FFI, valid zlib, not makedumpfile's bytes), libz (FFI, makedumpfile's), node |
 * | lzo    | liblzo2 (FFI), builtin (TypeScript port; both give liblzo2's bytes)                     |
 * | snappy | libsnappy (FFI, makedumpfile's bytes), builtin (TypeScript, valid, other bytes)         |
 * | zstd   | libzstd (FFI), node (node:zlib; both give libzstd's bytes)                              |
 *
 * Two generic choices are kept for callers that do not care which library: "native" (the first FFI engine
 * of the codec that loads, never a built-in one) and "builtin" (the engine that needs no FFI: node:zlib for
 * zlib and zstd, the TypeScript codec for lzo and snappy).
 */

/** Codec names as used in messages and options. */
export type CodecName = "zlib" | "lzo" | "snappy" | "zstd";

/** One implementation of a codec. "builtin" is the TypeScript lzo/snappy; "node" is node:zlib. */
export type EngineName = "libdeflate" | "libz" | "node" | "liblzo2" | "libsnappy" | "libzstd" | "builtin";

/** What a caller may ask for: "auto" (default), "native", "builtin", or one engine by name. */
export type EngineChoice = "auto" | "native" | EngineName;

/** Every engine name, for messages and validation. */
const ENGINE_NAMES: readonly EngineName[] = [
  "libdeflate",
  "libz",
  "node",
  "liblzo2",
  "libsnappy",
  "libzstd",
  "builtin",
];

/** Every accepted choice (engine names plus "auto" and "native"). */
const ENGINE_CHOICES: readonly EngineChoice[] = ["auto", "native", ...ENGINE_NAMES];

/** The engines of each codec, in the order "auto" tries them. */
export const CODEC_ENGINES: Readonly<Record<CodecName, readonly EngineName[]>> = {
  zlib: ["libdeflate", "libz", "node"],
  lzo: ["liblzo2", "builtin"],
  snappy: ["libsnappy", "builtin"],
  zstd: ["libzstd", "node"],
};

/** Engines that go through Deno FFI to a system library (need --allow-ffi). */
function isFfiEngine(e: EngineName): boolean {
  return e !== "node" && e !== "builtin";
}

/** True when `s` is an accepted engine choice. */
export function isEngineChoice(s: string): s is EngineChoice {
  return (ENGINE_CHOICES as readonly string[]).includes(s);
}

/**
 * The engines to try, in order, for `codec` under `choice`; or a message saying why the choice does not fit
 * the codec (an unknown name, an engine of another codec, "native" for a codec without one).
 */
export function enginesFor(codec: CodecName, choice: string): readonly EngineName[] | string {
  const all = CODEC_ENGINES[codec];
  if (choice === "auto") return all;
  if (choice === "native") {
    const ffi = all.filter(isFfiEngine);
    return ffi.length > 0 ? ffi : `${codec} has no native (FFI) engine`;
  }
  if (choice === "builtin") return all.filter((e) => !isFfiEngine(e));
  if (!isEngineChoice(choice)) {
    return `unknown codec engine "${choice}" (one of ${ENGINE_CHOICES.join(", ")})`;
  }
  const engine = all.find((e) => e === choice);
  return engine !== undefined
    ? [engine]
    : `"${choice}" is not an engine of ${codec} (${all.join(", ")}, auto)`;
}
