/**
 * node:zlib, loaded only when a codec needs it. Any node: import starts Deno's Node compatibility layer,
 * about 5 MiB of resident memory, and vmsift compresses through system libraries (FFI) whenever it can, so
 * node:zlib is the last engine of zlib and zstd (engines.ts) and is imported on demand: `loadNodeZlib()`
 * (async: a dynamic import) before the first synchronous `nodeZlib()`. registry.createCodecAsync and the
 * command line do this when no system library can be used. The module object is the only state kept: it
 * is the same for every caller and never changes.
 */
import type * as NodeZlib from "node:zlib";

let loaded: typeof NodeZlib | null = null;

/** Import node:zlib (once). */
export async function loadNodeZlib(): Promise<void> {
  loaded ??= await import("node:zlib");
}

/** True once loadNodeZlib() has finished. */
export function nodeZlibLoaded(): boolean {
  return loaded !== null;
}

/** The node:zlib module; throws when it was not loaded (the message says what to do). */
export function nodeZlib(): typeof NodeZlib {
  if (loaded === null) {
    throw new Error("node:zlib is not loaded (it is imported only when no system library can be used)");
  }
  return loaded;
}
