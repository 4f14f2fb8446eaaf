/**
 * Loading a system compression library through Deno FFI for the native page codecs. Never throws and never
 * prompts: without the ffi permission (--allow-ffi) or without the library, the result says why, so the
 * registry can fall back to the built-in codec and tell the caller.
 *
 * A loaded library is cached per isolate (main thread or Web Worker) and per library name; the handle is
 * immutable once loaded. Failures are not cached (permissions can be granted later).
 */

/** A loaded library, or the reason it could not be loaded. */
export type LoadResult<S extends Deno.ForeignLibraryInterface> =
  | { ok: true; lib: Deno.DynamicLibrary<S>; name: string }
  | { ok: false; reason: string };

const loaded = new Map<string, Deno.DynamicLibrary<Deno.ForeignLibraryInterface>>();

import { ffiGranted } from "../../io/libc.ts";

/** True when FFI is allowed without prompting (io/libc.ts). */
export { ffiGranted };

/**
 * dlopen the first of `names` that loads, with `symbols`. `key` identifies the symbol set (two codecs may
 * open the same library with different symbol sets).
 */
export function loadLibrary<S extends Deno.ForeignLibraryInterface>(
  key: string,
  names: readonly string[],
  symbols: S,
): LoadResult<S> {
  if (!ffiGranted()) return { ok: false, reason: "FFI is not permitted (run with --allow-ffi)" };
  const errors: string[] = [];
  for (const name of names) {
    const k = `${key}\0${name}`;
    const hit = loaded.get(k);
    if (hit) return { ok: true, lib: hit as Deno.DynamicLibrary<S>, name };
    try {
      const lib = Deno.dlopen(name, symbols);
      loaded.set(k, lib as Deno.DynamicLibrary<Deno.ForeignLibraryInterface>);
      return { ok: true, lib, name };
    } catch (e) {
      errors.push(`${name}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return { ok: false, reason: errors.join("; ") || "no library name given" };
}

/** A NUL-terminated C string read from `p` (at most `max` bytes), or "" for null. */
export function cString(p: Deno.PointerValue, max = 256): string {
  if (p === null) return "";
  const v = new Deno.UnsafePointerView(p);
  const bytes: number[] = [];
  for (let i = 0; i < max; i++) {
    const b = v.getUint8(i);
    if (b === 0) break;
    bytes.push(b);
  }
  return String.fromCharCode(...bytes);
}

/** Pointer to byte `offset` of `buf` (whose backing store must stay alive and unmoved: an ArrayBuffer). */
export function pointerAt(buf: Uint8Array<ArrayBuffer>, offset = 0): Deno.PointerObject {
  const p = Deno.UnsafePointer.of(buf);
  const q = offset === 0 ? p : Deno.UnsafePointer.offset(p!, offset);
  if (q === null) throw new Error("null pointer for an FFI buffer");
  return q;
}

/**
 * The page as an FFI "buffer" argument: the page itself when its memory can be passed (a plain ArrayBuffer,
 * including views of an mmap window), else a copy in `scratch` (at least page-sized; SharedArrayBuffer or
 * resizable buffers cannot be passed).
 */
export function ffiInput(page: Uint8Array, scratch: Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  if (page.buffer instanceof ArrayBuffer && !page.buffer.resizable) return page as Uint8Array<ArrayBuffer>;
  const src = scratch.subarray(0, page.length);
  src.set(page);
  return src;
}

/**
 * The first `len` bytes of one output buffer, each length's view made once and reused: a codec returns its
 * compressed page as such a prefix, so that compressing a page allocates nothing (a `subarray` per page
 * costs 100-180 ns and a young-generation object in V8). Lengths of `max` and more get a new subarray.
 */
export class PrefixViews {
  readonly #buf: Uint8Array<ArrayBuffer>;
  readonly #views: (Uint8Array<ArrayBuffer> | undefined)[];

  constructor(buf: Uint8Array<ArrayBuffer>, max = 4096) {
    this.#buf = buf;
    this.#views = new Array<Uint8Array<ArrayBuffer> | undefined>(Math.min(max, buf.length + 1)).fill(
      undefined,
    );
  }

  /** Bytes 0 to `len` of the buffer. */
  get(len: number): Uint8Array<ArrayBuffer> {
    if (len >= this.#views.length) return this.#buf.subarray(0, len);
    return this.#views[len] ??= this.#buf.subarray(0, len);
  }
}

/** One size_t in/out argument (`size_t *len`, `lzo_uint *dst_len`): `bytes` for FFI, `word` to read/set. */
export class SizeCell {
  readonly word: BigUint64Array<ArrayBuffer> = new BigUint64Array(1);
  readonly bytes: Uint8Array<ArrayBuffer> = new Uint8Array(this.word.buffer);
}

/** A page codec's library: symbols, version text ("" when it has none), the name that loaded; or why not. */
export type CodecLibrary<S extends Deno.ForeignLibraryInterface> =
  | { ok: true; lib: Deno.DynamicLibrary<S>["symbols"]; version: string; name: string }
  | { ok: false; reason: string };

/**
 * {@link loadLibrary} for a page codec, then `check(symbols)`: the library's version text, or why this copy
 * cannot be used (too old, init failed; the reason is prefixed with the library's name).
 */
export function loadCodecLibrary<S extends Deno.ForeignLibraryInterface>(
  key: string,
  names: readonly string[],
  symbols: S,
  check?: (lib: Deno.DynamicLibrary<S>["symbols"]) => { version: string } | { reason: string },
): CodecLibrary<S> {
  const r = loadLibrary(key, names, symbols);
  if (!r.ok) return r;
  const c = check?.(r.lib.symbols) ?? { version: "" };
  if ("reason" in c) return { ok: false, reason: `${r.name}: ${c.reason}` };
  return { ok: true, lib: r.lib.symbols, version: c.version, name: r.name };
}

/** The loaded library of a codec being constructed, or an Error saying why `label` cannot be used. */
export function requireLibrary<L>(
  label: string,
  l: { ok: true; lib: L; version: string } | { ok: false; reason: string },
): { lib: L; version: string } {
  if (!l.ok) throw new Error(`${label} is not available: ${l.reason}`);
  return l;
}

/** Native contexts of collected codecs: each entry frees its own. */
const collected = new FinalizationRegistry<() => void>((free) => free());

/**
 * Run `free` once `owner` (a codec) has been garbage-collected, to release its native contexts. `free` must
 * not reference `owner`, or it would never be collected.
 */
export function freeWhenCollected(owner: object, free: () => void): void {
  collected.register(owner, free);
}

/** Two native contexts from `alloc` (null: failed), or an Error naming `what` after freeing the one made. */
export function allocPair<A extends Deno.PointerValue, B extends Deno.PointerValue>(
  what: string,
  allocA: () => A,
  allocB: () => B,
  freeA: (a: NonNullable<A>) => void,
  freeB: (b: NonNullable<B>) => void,
): [NonNullable<A>, NonNullable<B>] {
  const a = allocA(), b = allocB();
  if (a === null || b === null) {
    if (a !== null) freeA(a!);
    if (b !== null) freeB(b!);
    throw new Error(`${what} failed`);
  }
  return [a!, b!];
}

/** Options every native codec takes. */
export interface NativeLibraryOptions {
  /** Library names to try instead of the codec's defaults (tests inject a bad one). */
  libraryNames?: readonly string[];
}
