import { VmsiftError } from "../core/errors.ts";
import { AlignedArena } from "./alignedArena.ts";
import { AsyncWriter } from "./asyncWrite.ts";
import {
  O_CREAT,
  O_EXCL,
  O_RDWR,
  O_TRUNC,
  type OpenFn,
  openMaybeDirect,
  preadFull,
  pwriteFull,
  sysClose,
  SysError,
  sysFsync,
  sysFtruncate,
  sysOpen,
  sysUnlink,
} from "./libc.ts";
import { IntervalSet } from "./intervalSet.ts";
import type { Sink } from "./sink.ts";

/** Options of DirectSink.create. */
export interface DirectSinkOptions {
  /** Replace an existing file (O_TRUNC) instead of failing (O_EXCL). Default false. */
  overwrite?: boolean;
  /** Use O_DIRECT (default true). False writes the same aligned blocks through the page cache. */
  direct?: boolean;
  /** Alignment and granularity of every write, bytes (power of two, default 4096). */
  blockSize?: number;
  /** Bytes per cache window = the largest single write (multiple of blockSize, default 1 MiB). */
  windowBytes?: number;
  /** Total write cache, bytes (at least two windows; default 8 MiB). */
  cacheBytes?: number;
  /** fsync in finish() (default true). */
  sync?: boolean;
  /**
   * Write complete windows with POSIX AIO so the device works while the caller fills the next window
   * (default true; falls back to synchronous pwrite when glibc AIO cannot be loaded).
   */
  async?: boolean;
  /** Called once with a message when O_DIRECT was refused (also kept in `warnings`). */
  onWarning?: (message: string) => void;
  /** Test seam: replaces open(2) (returns fd or -errno). */
  openFn?: OpenFn;
}

/** Counters of a DirectSink. */
export interface DirectSinkStats {
  /** Bytes handed to pwrite (including padding of partial blocks). */
  bytesWritten: number;
  writeCalls: number;
  /** Bytes and calls of pread (only rewrite of already flushed blocks reads). */
  bytesRead: number;
  readCalls: number;
  /** Windows written with AIO, and how often a window had to wait for one of them to end. */
  asyncWrites: number;
  asyncWaits: number;
}

interface PartialBlock {
  data: Uint8Array;
  fill: number;
}

/**
 * The dump file written with O_DIRECT (Cliff Wickman's proposal 1: the crash kernel's page cache does not
 * grow). Writers hand over arbitrary (offset, bytes) pieces, in any order, never the same byte twice except
 * through rewrite(). The file is cut into windows (`windowBytes`), each cached in a slot of one aligned
 * arena with a fill count per block; a window that is complete goes out in one pwrite. When slots run out
 * the least recently used window is written as runs of complete blocks and its incomplete blocks are kept
 * aside until they complete or finish() pads them. finish() writes what is left and cuts the file to its
 * exact size with ftruncate. Single-threaded; not reentrant.
 */
export class DirectSink implements Sink {
  readonly label: string;
  readonly path: string;
  /** O_DIRECT is in effect (false after a fallback or with direct: false). */
  readonly direct: boolean;
  /** Messages for the user (the O_DIRECT fallback); library code never prints. */
  readonly warnings: string[] = [];
  readonly stats: DirectSinkStats = {
    bytesWritten: 0,
    writeCalls: 0,
    bytesRead: 0,
    readCalls: 0,
    asyncWrites: 0,
    asyncWaits: 0,
  };
  readonly blockSize: number;
  readonly windowBytes: number;
  #written: IntervalSet = new IntervalSet();

  #fd: number;
  #sync: boolean;
  #arena: AlignedArena;
  #nslots: number;
  #bpw: number;
  /** Per slot: window index or -1. */
  #slotWindow: Float64Array;
  /** Per slot: bytes written into it. */
  #slotFill: Int32Array;
  /** Per slot: LRU tick. */
  #slotTick: Float64Array;
  /** Per slot and block: bytes written into the block. */
  #blockFill: Uint32Array;
  #windows = new Map<number, number>();
  #partial = new Map<number, PartialBlock>();
  #tick = 0;
  #highWater = 0;
  #finalSize = -1;
  #state: "open" | "finished" | "closed" = "open";
  /** AIO for complete windows, or null (synchronous pwrite). */
  #aio: AsyncWriter | null;
  /** Per slot: file offset of its write in flight. */
  #flightAt: Float64Array;

  private constructor(
    path: string,
    fd: number,
    direct: boolean,
    o: Required<Omit<DirectSinkOptions, "onWarning" | "openFn" | "async">>,
    useAio: boolean,
  ) {
    this.label = path;
    this.path = path;
    this.#fd = fd;
    this.direct = direct;
    this.#sync = o.sync;
    this.blockSize = o.blockSize;
    this.windowBytes = o.windowBytes;
    this.#nslots = Math.floor(o.cacheBytes / o.windowBytes);
    this.#bpw = o.windowBytes / o.blockSize;
    // nslots window slots plus one scratch window for read-modify-write and partial blocks.
    this.#arena = new AlignedArena((this.#nslots + 1) * o.windowBytes, Math.max(4096, o.blockSize));
    this.#slotWindow = new Float64Array(this.#nslots).fill(-1);
    this.#slotFill = new Int32Array(this.#nslots);
    this.#slotTick = new Float64Array(this.#nslots);
    this.#blockFill = new Uint32Array(this.#nslots * this.#bpw);
    this.#flightAt = new Float64Array(this.#nslots);
    this.#aio = useAio ? AsyncWriter.open(this.#nslots) : null;
  }

  /** Create (or with overwrite, truncate) `path` for writing. Throws VmsiftError/SysError. */
  static create(path: string, options: DirectSinkOptions = {}): DirectSink {
    const blockSize = options.blockSize ?? 4096;
    const windowBytes = options.windowBytes ?? 1 << 20;
    const cacheBytes = options.cacheBytes ?? 8 << 20;
    if ((blockSize & (blockSize - 1)) !== 0 || blockSize < 512) {
      throw new VmsiftError(`block size ${blockSize} is not a power of two >= 512`, { file: path });
    }
    if (windowBytes % blockSize !== 0 || cacheBytes < 2 * windowBytes) {
      throw new VmsiftError(`bad cache geometry: window ${windowBytes}, cache ${cacheBytes}`, { file: path });
    }
    const flags = O_RDWR | O_CREAT | (options.overwrite ? O_TRUNC : O_EXCL);
    const opened = openMaybeDirect(path, flags, 0o600, options.direct ?? true, options.openFn ?? sysOpen);
    let sink: DirectSink;
    try {
      sink = new DirectSink(path, opened.fd, opened.direct, {
        overwrite: options.overwrite ?? false,
        direct: opened.direct,
        blockSize,
        windowBytes,
        cacheBytes,
        sync: options.sync ?? true,
      }, options.async ?? true);
    } catch (e) {
      sysClose(opened.fd);
      sysUnlink(path);
      throw e;
    }
    if (opened.warning !== undefined) {
      sink.warnings.push(opened.warning);
      options.onWarning?.(opened.warning);
    }
    return sink;
  }

  /** Complete windows go out with AIO (false: every write is a synchronous pwrite). */
  get usesAio(): boolean {
    return this.#aio !== null;
  }

  /**
   * Byte ranges pwritten successfully (a failed pwrite adds the part written before the error). Reading it
   * first waits for the writes in flight; their failures are not thrown here (this is read after a failed
   * write, to learn what the file holds), they only leave their range out.
   */
  get writtenRanges(): IntervalSet {
    this.#settleAll(false);
    return this.#written;
  }

  /** The file descriptor (for diagnostics such as /proc/self/fdinfo). */
  get fd(): number {
    return this.#fd;
  }

  write(offset: number, bytes: Uint8Array): void {
    if (this.#state !== "open") {
      throw new VmsiftError("write after finish/close", { file: this.path, offset });
    }
    const B = this.blockSize;
    const W = this.windowBytes;
    const end = offset + bytes.length;
    if (end > this.#highWater) this.#highWater = end;
    const arena = this.#arena.bytes;
    let pos = offset;
    while (pos < end) {
      const w = Math.floor(pos / W);
      const wStart = w * W;
      const wEnd = Math.min(end, wStart + W);
      let slot = -1;
      while (pos < wEnd) {
        const b = Math.floor(pos / B);
        const segEnd = Math.min(wEnd, (b + 1) * B);
        const src = bytes.subarray(pos - offset, segEnd - offset);
        const pb = this.#partial.size === 0 ? undefined : this.#partial.get(b);
        if (pb !== undefined) {
          pb.data.set(src, pos - b * B);
          pb.fill += src.length;
          if (pb.fill >= B) {
            this.#partial.delete(b);
            this.#writePartials([[b, pb]]);
          }
        } else {
          if (slot < 0) slot = this.#slotFor(w);
          arena.set(src, slot * W + (pos - wStart));
          this.#blockFill[slot * this.#bpw + (b - w * this.#bpw)] += src.length;
          this.#slotFill[slot] += src.length;
        }
        pos = segEnd;
      }
      if (slot >= 0 && this.#slotFill[slot] >= W) this.#flushFull(slot);
    }
  }

  rewrite(offset: number, bytes: Uint8Array): void {
    if (this.#state === "closed") throw new VmsiftError("rewrite after close", { file: this.path, offset });
    this.#settleAll(true);
    const B = this.blockSize;
    const W = this.windowBytes;
    const end = offset + bytes.length;
    const arena = this.#arena.bytes;
    let pos = offset;
    let diskStart = -1; // start of a run of bytes that live only on disk
    while (pos < end) {
      const b = Math.floor(pos / B);
      const segEnd = Math.min(end, (b + 1) * B);
      const src = bytes.subarray(pos - offset, segEnd - offset);
      const pb = this.#partial.get(b);
      const w = Math.floor(b / this.#bpw);
      const slot = this.#windows.get(w);
      const bi = b - w * this.#bpw;
      let cached = true;
      if (pb !== undefined) pb.data.set(src, pos - b * B);
      else if (slot !== undefined && this.#blockFill[slot * this.#bpw + bi] > 0) {
        arena.set(src, slot * W + (pos - w * W));
      } else cached = false;
      if (cached && diskStart >= 0) {
        this.#rmw(diskStart, bytes.subarray(diskStart - offset, pos - offset));
        diskStart = -1;
      } else if (!cached && diskStart < 0) diskStart = pos;
      pos = segEnd;
    }
    if (diskStart >= 0) this.#rmw(diskStart, bytes.subarray(diskStart - offset));
    if (this.#state === "finished" && this.#finalSize >= 0) this.#truncate(this.#finalSize);
  }

  finish(size: number): void {
    if (this.#state === "closed") throw new VmsiftError("finish after close", { file: this.path });
    this.#settleAll(true);
    for (let s = 0; s < this.#nslots; s++) if (this.#slotWindow[s] >= 0) this.#flushSlot(s, true);
    if (this.#partial.size > 0) {
      const list = [...this.#partial.entries()].sort((a, b) => a[0] - b[0]);
      this.#partial.clear();
      this.#writePartials(list);
    }
    this.#truncate(size);
    this.#finalSize = size;
    if (this.#sync) {
      const rc = sysFsync(this.#fd);
      if (rc < 0) throw new SysError("fsync failed", rc, { file: this.path });
    }
    this.#state = "finished";
  }

  close(): void {
    if (this.#state === "closed") return;
    try {
      if (this.#state === "open") this.finish(this.#highWater);
    } finally {
      this.#release();
    }
  }

  abort(): void {
    if (this.#state === "closed") return;
    try {
      this.#release();
    } finally {
      sysUnlink(this.path);
    }
  }

  /**
   * Forget cached bytes in [from, to) that are not written yet (after ENOSPC). Blocks wholly inside are
   * dropped; a block cut by the range keeps its other bytes and gets zeros there (what a hole reads as).
   */
  dropPending(from = 0, to = Infinity): void {
    if (this.#state === "closed" || to <= from) return;
    this.#settleAll(false);
    const B = this.blockSize, W = this.windowBytes, bpw = this.#bpw;
    const arena = this.#arena.bytes;
    for (let slot = 0; slot < this.#nslots; slot++) {
      const w = this.#slotWindow[slot];
      if (w < 0) continue;
      const ws = w * W, we = ws + W;
      const a = Math.max(from, ws), b = Math.min(to, we);
      if (b <= a) continue;
      if (a === ws && b === we) {
        this.#windows.delete(w);
        this.#slotWindow[slot] = -1;
        continue;
      }
      arena.fill(0, slot * W + (a - ws), slot * W + (b - ws));
      const b0 = Math.ceil((a - ws) / B), b1 = Math.floor((b - ws) / B);
      if (b1 > b0) this.#blockFill.fill(0, slot * bpw + b0, slot * bpw + b1);
      this.#slotFill[slot] = 0; // not "complete" any more: finish() writes it
    }
    for (const [blk, pb] of [...this.#partial]) {
      const bs = blk * B;
      const a = Math.max(from, bs), b = Math.min(to, bs + B);
      if (b <= a) continue;
      if (a === bs && b === bs + B) this.#partial.delete(blk);
      else pb.data.fill(0, a - bs, b - bs);
    }
  }

  /** Set the file size now (e.g. to free room on a full file system before writing what is cached). */
  truncate(size: number): void {
    this.#settleAll(false);
    this.#truncate(size);
  }

  #release(): void {
    this.#state = "closed";
    // The arena must outlive every write in flight.
    this.#settleAll(false);
    this.#aio?.close();
    const rc = sysClose(this.#fd);
    this.#arena.free();
    this.#windows.clear();
    this.#partial.clear();
    if (rc < 0) throw new SysError("close failed", rc, { file: this.path });
  }

  #truncate(size: number): void {
    const rc = sysFtruncate(this.#fd, size);
    if (rc < 0) throw new SysError("ftruncate failed", rc, { file: this.path, offset: size });
  }

  /** The slot holding window w, taking (and if needed emptying) the least recently used one. */
  #slotFor(w: number): number {
    const tick = ++this.#tick;
    let slot = this.#windows.get(w);
    if (slot !== undefined) {
      this.#slotTick[slot] = tick;
      return slot;
    }
    slot = this.#pickSlot();
    if (this.#aio?.busy(slot)) {
      this.stats.asyncWaits++;
      this.#settle(slot, true);
    }
    if (this.#slotWindow[slot] >= 0) this.#flushSlot(slot, false);
    const W = this.windowBytes;
    this.#arena.bytes.fill(0, slot * W, (slot + 1) * W);
    this.#blockFill.fill(0, slot * this.#bpw, (slot + 1) * this.#bpw);
    this.#slotFill[slot] = 0;
    this.#slotWindow[slot] = w;
    this.#slotTick[slot] = tick;
    this.#windows.set(w, slot);
    return slot;
  }

  /**
   * The slot for a new window: an idle free one; else the free one whose write has been in flight longest
   * (it is waited for: cheaper than evicting a window still being filled); else the least recently used.
   */
  #pickSlot(): number {
    const aio = this.#aio;
    let idle = -1, flying = -1, lru = -1;
    let oldestFlying = Infinity, oldest = Infinity;
    for (let s = 0; s < this.#nslots; s++) {
      if (this.#slotWindow[s] < 0) {
        if (aio === null || !aio.busy(s)) {
          idle = s;
          break;
        }
        if (this.#slotTick[s] < oldestFlying) {
          oldestFlying = this.#slotTick[s];
          flying = s;
        }
      } else if (this.#slotTick[s] < oldest) {
        oldest = this.#slotTick[s];
        lru = s;
      }
    }
    return idle >= 0 ? idle : flying >= 0 ? flying : lru;
  }

  /** A window every byte of which has arrived: one write of it, with AIO when there is AIO. */
  #flushFull(slot: number): void {
    const aio = this.#aio;
    const W = this.windowBytes;
    const w = this.#slotWindow[slot];
    if (aio === null || aio.submit(slot, this.#fd, this.#arena.pointerAt(slot * W), W, w * W) !== 0) {
      this.#flushSlot(slot, true);
      return;
    }
    this.#flightAt[slot] = w * W;
    this.#slotTick[slot] = ++this.#tick;
    this.#windows.delete(w);
    this.#slotWindow[slot] = -1;
  }

  /**
   * Wait for slot's write in flight and account for it. A short write is completed synchronously. A failure
   * throws SysError naming the file and offset when `throwing`; otherwise it only leaves its range out of
   * writtenRanges (callers that do not throw are reading writtenRanges after an earlier failure).
   */
  #settle(slot: number, throwing: boolean): void {
    const r = this.#aio!.wait(slot);
    const at = this.#flightAt[slot];
    const W = this.windowBytes;
    this.stats.writeCalls++;
    let err: unknown = null;
    if (r.errno !== 0) {
      err = new SysError("write failed", -r.errno, { file: this.path, offset: at });
    } else {
      if (r.written > 0) this.#written.add(at, at + r.written);
      this.stats.bytesWritten += r.written;
      this.stats.asyncWrites++;
      if (r.written < W) {
        try {
          this.#pwrite(this.#arena.bytes.subarray(slot * W + r.written, (slot + 1) * W), at + r.written);
        } catch (e) {
          err = e;
        }
      }
    }
    if (err !== null && throwing) throw err;
  }

  /** Settle every write in flight; with `throwing`, the first failure is thrown after all have ended. */
  #settleAll(throwing: boolean): void {
    const aio = this.#aio;
    if (aio === null || !aio.anyBusy) return;
    let first: unknown = null;
    for (let s = 0; s < this.#nslots; s++) {
      if (!aio.busy(s)) continue;
      try {
        this.#settle(s, true);
      } catch (e) {
        first ??= e;
      }
    }
    if (first !== null && throwing) throw first;
  }

  /**
   * Write a slot out and free it. `all`: every block that received bytes (incomplete ones padded with zeros,
   * which is what the file holds there); otherwise complete blocks only, incomplete ones move aside.
   */
  #flushSlot(slot: number, all: boolean): void {
    const B = this.blockSize;
    const W = this.windowBytes;
    const bpw = this.#bpw;
    const w = this.#slotWindow[slot];
    const fills = this.#blockFill.subarray(slot * bpw, (slot + 1) * bpw);
    const arena = this.#arena.bytes;
    let i = 0;
    while (i < bpw) {
      const f = fills[i];
      if (f === 0 || (!all && f < B)) {
        if (f > 0) {
          const at = slot * W + i * B;
          this.#partial.set(w * bpw + i, { data: arena.slice(at, at + B), fill: f });
        }
        i++;
        continue;
      }
      let j = i + 1;
      while (j < bpw && fills[j] > 0 && (all || fills[j] >= B)) j++;
      this.#pwrite(arena.subarray(slot * W + i * B, slot * W + j * B), w * W + i * B);
      i = j;
    }
    this.#windows.delete(w);
    this.#slotWindow[slot] = -1;
  }

  /** Write blocks kept aside, given sorted by block number; adjacent ones go out together. */
  #writePartials(list: [number, PartialBlock][]): void {
    const B = this.blockSize;
    const W = this.windowBytes;
    const scratch = this.#arena.bytes.subarray(this.#nslots * W);
    let k = 0;
    while (k < list.length) {
      const first = list[k][0];
      let n = 0;
      while (k < list.length && list[k][0] === first + n && (n + 1) * B <= W) {
        scratch.set(list[k][1].data, n * B);
        n++;
        k++;
      }
      this.#pwrite(scratch.subarray(0, n * B), first * B);
    }
  }

  /** Read-modify-write of the aligned blocks covering [offset, offset + bytes.length), window by window. */
  #rmw(offset: number, bytes: Uint8Array): void {
    const B = this.blockSize;
    const W = this.windowBytes;
    const scratch = this.#arena.bytes.subarray(this.#nslots * W, (this.#nslots + 1) * W);
    let pos = offset;
    const end = offset + bytes.length;
    while (pos < end) {
      const a = Math.floor(pos / B) * B;
      const stop = Math.min(end, a + W);
      const len = Math.ceil((stop - a) / B) * B;
      const buf = scratch.subarray(0, len);
      const got = preadFull(this.#fd, buf, a, this.path);
      this.stats.readCalls++;
      this.stats.bytesRead += got;
      if (got < len) buf.fill(0, got);
      buf.set(bytes.subarray(pos - offset, stop - offset), pos - a);
      this.#pwrite(buf, a);
      pos = stop;
    }
  }

  #pwrite(buf: Uint8Array<ArrayBuffer>, offset: number): void {
    try {
      this.stats.writeCalls += pwriteFull(this.#fd, buf, offset, this.path);
    } catch (e) {
      const at = e instanceof SysError ? e.place.offset : undefined;
      if (typeof at === "number" && at > offset) this.#written.add(offset, at);
      throw e;
    }
    this.#written.add(offset, offset + buf.length);
    this.stats.bytesWritten += buf.length;
  }
}
