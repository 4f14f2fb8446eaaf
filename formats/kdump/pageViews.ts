/**
 * Page-sized Uint8Array views made once per buffer and reused, so that the per-page loop of the kdump
 * writers allocates no view per page. `subarray` costs 100-180 ns and one young-generation object per call
 * in V8; over the input's fixed mmap window (one ArrayBuffer, io/mappedFile.ts) or the writer's run buffer
 * the same few hundred page views serve every run (docs/performance.md).
 */

/** Buffers larger than this are not cached (a view per page of them would be too many objects). */
const MAX_CACHED_BYTES = 8 << 20;

/** No cache for this buffer: callers get a fresh subarray. */
const NONE: (Uint8Array | undefined)[] = [];

/**
 * The views of the last two buffers seen (the mmap window and the run buffer alternate when a run cannot
 * be viewed in place), each page `i` of a buffer at byte offset `i * pageSize`.
 */
export class PageViews {
  readonly #ps: number;
  #b0: ArrayBufferLike | null = null;
  #v0: (Uint8Array | undefined)[] = NONE;
  #b1: ArrayBufferLike | null = null;
  #v1: (Uint8Array | undefined)[] = NONE;

  constructor(pageSize: number) {
    this.#ps = pageSize;
  }

  /**
   * Page `k` of `buf` (bytes k * pageSize to (k + 1) * pageSize of it): a cached view when `buf` starts at a
   * page boundary of a buffer of at most 8 MiB, else a new subarray. Valid as long as `buf`'s memory is.
   */
  page(buf: Uint8Array, k: number): Uint8Array {
    const ps = this.#ps;
    const b = buf.buffer;
    const views = b === this.#b0 ? this.#v0 : b === this.#b1 ? this.#v1 : this.#switch(b);
    const off = buf.byteOffset + k * ps;
    if (views === NONE || off % ps !== 0) return buf.subarray(k * ps, (k + 1) * ps);
    const i = off / ps;
    return views[i] ??= new Uint8Array(b, off, ps);
  }

  #switch(b: ArrayBufferLike): (Uint8Array | undefined)[] {
    // preallocated (packed), so that V8 does not turn a sparsely filled array into a dictionary
    const views = b.byteLength <= MAX_CACHED_BYTES
      ? new Array<Uint8Array | undefined>(Math.floor(b.byteLength / this.#ps)).fill(undefined)
      : NONE;
    this.#b1 = this.#b0;
    this.#v1 = this.#v0;
    this.#b0 = b;
    this.#v0 = views;
    return views;
  }
}
