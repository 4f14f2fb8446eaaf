import { AlignedArena } from "./alignedArena.ts";
import { preadFull, pwriteFull } from "./libc.ts";

/** How a block is going to be used (acquire's mode). */
export const Use = {
  /** Only read. */
  Read: 0,
  /** Read and modified: loaded from the file, marked dirty. */
  Write: 1,
  /** Entirely replaced by the caller: not loaded, marked dirty. */
  Overwrite: 2,
} as const;
/** One of the Use values. */
export type Use = typeof Use[keyof typeof Use];

/** Counters of a BlockCache. */
export interface BlockCacheStats {
  /** acquire() calls that found the block in the cache (excluding repeats of the last block). */
  hits: number;
  misses: number;
  readCalls: number;
  bytesRead: number;
  writeCalls: number;
  bytesWritten: number;
}

/**
 * A write-back LRU cache of fixed-size blocks of one file, kept in an aligned arena so the file can be
 * opened with O_DIRECT (Cliff Wickman's proposal 3). The file is `nblocks` blocks long; blocks never
 * written read as zeros without a system call. Callers get a block's offset in `bytes` from acquire() and
 * work on it in place until their next acquire(), which may evict it. Dirty blocks go back on eviction
 * and on flush(). Not thread-safe.
 */
export class BlockCache {
  readonly label: string;
  readonly blockBytes: number;
  readonly nblocks: number;
  readonly nslots: number;
  readonly stats: BlockCacheStats = {
    hits: 0,
    misses: 0,
    readCalls: 0,
    bytesRead: 0,
    writeCalls: 0,
    bytesWritten: 0,
  };
  #fd: number;
  #arena: AlignedArena;
  #map = new Map<number, number>();
  #slotBlock: Float64Array;
  #dirty: Uint8Array;
  #prev: Int32Array;
  #next: Int32Array;
  /** Most and least recently used slot (-1 when none). */
  #head = -1;
  #tail = -1;
  #used = 0;
  /** Blocks that have been written to the file at least once (others are zeros). */
  #onDisk: Uint8Array;
  #lastBlock = -1;
  #lastSlot = -1;

  /**
   * @param fd open file (read/write; O_DIRECT needs blockBytes to be a multiple of the device block size)
   * @param label file name for errors
   * @param nblocks length of the file in blocks
   * @param cacheBytes memory for cached blocks (at least two blocks are always kept)
   */
  constructor(fd: number, label: string, nblocks: number, blockBytes: number, cacheBytes: number) {
    if (blockBytes < 512 || (blockBytes & (blockBytes - 1)) !== 0) {
      throw new RangeError(`block size ${blockBytes} is not a power of two >= 512`);
    }
    this.#fd = fd;
    this.label = label;
    this.blockBytes = blockBytes;
    this.nblocks = nblocks;
    this.nslots = Math.max(1, Math.min(nblocks, Math.max(2, Math.floor(cacheBytes / blockBytes))));
    this.#arena = new AlignedArena(this.nslots * blockBytes, 4096);
    this.#slotBlock = new Float64Array(this.nslots).fill(-1);
    this.#dirty = new Uint8Array(this.nslots);
    this.#prev = new Int32Array(this.nslots).fill(-1);
    this.#next = new Int32Array(this.nslots).fill(-1);
    this.#onDisk = new Uint8Array(nblocks);
  }

  /** The cache memory; a block acquired at offset `o` is `bytes[o .. o + blockBytes)`. */
  get bytes(): Uint8Array<ArrayBuffer> {
    return this.#arena.bytes;
  }

  /** Bytes of cache memory. */
  get cacheBytes(): number {
    return this.#arena.size;
  }

  /** Bring `block` in (unless `use` is Overwrite) and return its offset in `bytes`. */
  acquire(block: number, use: Use): number {
    if (block === this.#lastBlock) {
      if (use !== Use.Read) this.#dirty[this.#lastSlot] = 1;
      return this.#lastSlot * this.blockBytes;
    }
    return this.#acquireSlow(block, use);
  }

  #acquireSlow(block: number, use: Use): number {
    if (block < 0 || block >= this.nblocks) throw new RangeError(`block ${block} outside 0..${this.nblocks}`);
    const B = this.blockBytes;
    let slot = this.#map.get(block);
    if (slot !== undefined) {
      this.stats.hits++;
      this.#unlink(slot);
    } else {
      this.stats.misses++;
      if (this.#used < this.nslots) slot = this.#used++;
      else {
        slot = this.#tail;
        this.#unlink(slot);
        this.#evict(slot);
      }
      this.#slotBlock[slot] = block;
      this.#map.set(block, slot);
      const buf = this.#arena.bytes.subarray(slot * B, (slot + 1) * B);
      if (use === Use.Overwrite) {
        // the caller fills it
      } else if (this.#onDisk[block]) {
        const n = preadFull(this.#fd, buf, block * B, this.label);
        this.stats.readCalls++;
        this.stats.bytesRead += n;
        if (n < B) buf.fill(0, n);
      } else buf.fill(0);
    }
    this.#pushHead(slot);
    if (use !== Use.Read) this.#dirty[slot] = 1;
    this.#lastBlock = block;
    this.#lastSlot = slot;
    return slot * B;
  }

  /** Write all dirty blocks back (in file order). */
  flush(): void {
    const slots = [...this.#map.values()].filter((s) => this.#dirty[s]);
    slots.sort((a, b) => this.#slotBlock[a] - this.#slotBlock[b]);
    for (const s of slots) this.#writeBack(s);
  }

  /** Release the memory (the file is the caller's). Unflushed changes are dropped. */
  free(): void {
    this.#arena.free();
    this.#map.clear();
    this.#lastBlock = -1;
  }

  #evict(slot: number): void {
    if (this.#dirty[slot]) this.#writeBack(slot);
    this.#map.delete(this.#slotBlock[slot]);
    if (this.#lastSlot === slot) this.#lastBlock = -1;
    this.#slotBlock[slot] = -1;
  }

  #writeBack(slot: number): void {
    const B = this.blockBytes;
    const block = this.#slotBlock[slot];
    this.stats.writeCalls += pwriteFull(
      this.#fd,
      this.#arena.bytes.subarray(slot * B, (slot + 1) * B),
      block * B,
      this.label,
    );
    this.stats.bytesWritten += B;
    this.#onDisk[block] = 1;
    this.#dirty[slot] = 0;
  }

  #unlink(slot: number): void {
    const p = this.#prev[slot];
    const n = this.#next[slot];
    if (p >= 0) this.#next[p] = n;
    else this.#head = n;
    if (n >= 0) this.#prev[n] = p;
    else this.#tail = p;
    this.#prev[slot] = -1;
    this.#next[slot] = -1;
  }

  #pushHead(slot: number): void {
    this.#next[slot] = this.#head;
    this.#prev[slot] = -1;
    if (this.#head >= 0) this.#prev[this.#head] = slot;
    this.#head = slot;
    if (this.#tail < 0) this.#tail = slot;
  }
}
