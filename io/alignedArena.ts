import { memalign, memfree } from "./libc.ts";

/**
 * One big block of memory from posix_memalign, seen as a Uint8Array. O_DIRECT reads and writes go straight
 * to and from it: `bytes.subarray(a, b)` with `a` a multiple of the alignment is a valid O_DIRECT buffer, and
 * no copy is made per system call. The memory is outside the JS heap; `free()` releases it and afterwards
 * `bytes` must not be touched (it is replaced by an empty array so mistakes fail loudly rather than corrupt).
 */
export class AlignedArena {
  /** Alignment of the start, in bytes (a power of two). */
  readonly alignment: number;
  readonly size: number;
  #ptr: Deno.PointerObject | null;
  #bytes: Uint8Array<ArrayBuffer>;

  constructor(size: number, alignment = 4096) {
    if (size <= 0 || (alignment & (alignment - 1)) !== 0) {
      throw new RangeError(`bad arena size ${size} or alignment ${alignment}`);
    }
    this.size = size;
    this.alignment = alignment;
    this.#ptr = memalign(alignment, size);
    this.#bytes = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(this.#ptr, size));
    this.#bytes.fill(0);
  }

  /** The arena's memory. */
  get bytes(): Uint8Array<ArrayBuffer> {
    return this.#bytes;
  }

  /** Address of the first byte (for tests and diagnostics). */
  get address(): bigint {
    return this.#ptr === null ? 0n : BigInt(Deno.UnsafePointer.value(this.#ptr));
  }

  /** Pointer to byte `offset` of the arena (for system calls that take an address, such as aio_write). */
  pointerAt(offset: number): Deno.PointerObject {
    if (this.#ptr === null || offset < 0 || offset >= this.size) {
      throw new RangeError(`arena offset ${offset} out of range`);
    }
    return Deno.UnsafePointer.offset(this.#ptr, offset)!;
  }

  /** Release the memory (idempotent). */
  free(): void {
    if (this.#ptr !== null) {
      const p = this.#ptr;
      this.#ptr = null;
      this.#bytes = new Uint8Array(0);
      memfree(p);
    }
  }
}
