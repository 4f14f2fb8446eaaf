/**
 * `--num-threads N`: the kdump-compressed writer with page compression off the main thread
 * (kdump-reference.md 2.3; makedumpfile's write_kdump_pages_parallel_cyclic does the same with pthreads): in
 * N lanes of FFI library calls on Deno's thread pool for the FFI engines (codecLanes.ts, the default: no V8
 * isolate per thread, about 1 MiB each), else in Web Workers (below; the CLI does not use them, dump/run.ts).
 *
 * The main thread reads runs of dumpable pages straight into batch buffers and sends each batch (up to
 * `batchPages` consecutive dumpable pages, transferred, never copied) to the least busy worker. Workers detect
 * zero pages and compress (formats/codecs/codecWorker.ts; zero detection over the whole dump costs about as
 * much as reading it, so it is not left to the main thread) and send the buffers back; the main thread
 * emits descriptors and data strictly in pfn order through the same paired caches as writeKdump
 * ({@link PagePairWriter}), so the output is byte-identical to the single-threaded writer. Memory is flat: a
 * fixed pool of batch buffers circulates (at most `inflightPerWorker` batches per worker), and the producer
 * waits for the oldest batch when the pool is empty.
 *
 * N threads = N - 1 workers + the main thread, which compresses a batch itself when every worker is full
 * (`mainCompresses`). A worker costs a V8 isolate (about 20 MiB RSS, 50-100 ms to start, its own JIT
 * warm-up): dump/run.ts starts them before reading the vmcore ({@link CodecWorkers}) and has them compile
 * the codec meanwhile, so on an idle machine that cost overlaps the struct page scan.
 */
import { VmsiftError } from "../../core/errors.ts";
import type { PageCodec } from "../codecs/codec.ts";
import {
  CODEC_WORKER_NAME,
  type CodecBatchMessage,
  type CodecInitMessage,
  type CodecReply,
  type CodecWarmMessage,
  codecWorkerUrl,
  compressBatch,
  workerEngineOf,
  ZERO_PAGE,
} from "../codecs/codecWorker.ts";
import {
  finishPages,
  type KdumpSource,
  type KdumpWriteOptions,
  type KdumpWriteResult,
  withUnreadable,
} from "./writer.ts";
import {
  DumpInterrupted,
  LoopYielder,
  readRunChecked,
  UnreadablePages,
  YIELD_INTERVAL_MS,
} from "../incomplete.ts";
import { bitmapRuns, readPageLenient, readRun } from "./pageRuns.ts";
import { finishIncomplete, PagePairWriter } from "./pagePairWriter.ts";
import { writeKdumpHead } from "./headWriter.ts";
import { CodecLane, lanesSupported } from "./codecLanes.ts";

/** Options of {@link writeKdumpParallel}. */
export interface ParallelWriteOptions extends KdumpWriteOptions {
  /** The codec (its registry name and implementation are used to make one per worker). */
  codec: PageCodec;
  /** Compressing threads (>= 1). */
  threads: number;
  /** Worker module (default: codecWorkerUrl(), i.e. this program). Tests pass their own. */
  workerUrl?: string | URL;
  /**
   * Workers started earlier with {@link CodecWorkers.start} (then `threads` and `workerUrl` are not used to
   * start any); the writer takes them over and terminates them.
   */
  workers?: CodecWorkers;
  /**
   * Compress in lanes (formats/kdump/codecLanes.ts: `threads` library calls at once on Deno's thread pool, no
   * worker) when the codec is an FFI engine and neither `workers` nor `workerUrl` is given. Default true;
   * false: Web Workers for every codec.
   */
  lanes?: boolean;
  /** Pages per batch (default 128: 512 KiB with workers, 32 with lanes). */
  batchPages?: number;
  /** Batches queued per worker (default 2). */
  inflightPerWorker?: number;
  /**
   * Whether the main thread is one of the `threads` compressors: then threads - 1 workers, and the main thread,
   * besides reading and writing, compresses a batch itself whenever every worker has `inflightPerWorker`
   * batches. Default true (with threads >= 2): on 2 cores, 1 worker + main used 10-15% less CPU than
   * 2 workers + a main thread that only reads and writes, for the same wall time (measured on the 1 GiB
   * dump at -d 1 with lzo and zlib). False: `threads` workers.
   */
  mainCompresses?: boolean;
}

/** Workers {@link writeKdumpParallel} uses for `threads` with the default mainCompresses: threads - 1. */
export function workersFor(threads: number): number {
  return Math.max(1, threads - 1);
}

/**
 * Default pages per batch: 512 KiB of 4 KiB pages. Every slot holds a batch of pages and an output buffer as
 * large, and there are 2 slots per worker + 3: with 512-page batches the slots alone were 20 MiB with one
 * worker (issue 17: --num-threads 2 peaked at 94 MiB, 3 at 112 MiB, on the 4 GiB real dump with -c -d 31);
 * with 128 pages 81 and 95 MiB. Smaller batches cost more CPU per page in messages (64: +10% CPU pinned to
 * one CPU, for 5 MiB less).
 */
const DEFAULT_BATCH_PAGES = 128;

/**
 * Default pages per batch with lanes: a batch costs a promise chain, not a message to an isolate, so small
 * batches cost no measurable CPU; the buffers (2 batches per lane + 1, pages and output) are 128 KiB per
 * batch (32 pages measured 0.5-2 MiB more peak RSS with 2 lanes on the real fixture, for the same time).
 */
const DEFAULT_LANE_BATCH_PAGES = 16;

/** Whether {@link writeKdumpParallel} with `opts` compresses in lanes rather than in Web Workers. */
export function usesLanes(
  opts: Pick<ParallelWriteOptions, "codec" | "lanes" | "workers" | "workerUrl">,
): boolean {
  return (opts.lanes ?? true) && opts.workers === undefined && opts.workerUrl === undefined &&
    lanesSupported(opts.codec);
}

/**
 * Codec workers, startable ahead of the write so that their start-up (each loads this program and compiles
 * its codec) overlaps reading and scanning the vmcore; {@link writeKdumpParallel} takes them over.
 * `terminate()` is idempotent: callers terminate them in `finally` whatever happened.
 */
export class CodecWorkers {
  readonly workers: readonly Worker[];
  /** The first error a worker reported before the writer took over, or null. */
  earlyError: string | null = null;

  private constructor(workers: Worker[]) {
    this.workers = workers;
  }

  /**
   * Start `count` workers from `url` (default: this program). With `warm`, they compile that codec on
   * synthetic pages meanwhile (a throwaway instance: output does not depend on it).
   */
  static start(count: number, opts: { url?: string | URL; warm?: PageCodec } = {}): CodecWorkers {
    const url = opts.url ?? codecWorkerUrl();
    const ws: Worker[] = [];
    const pool = new CodecWorkers(ws);
    for (let i = 0; i < count; i++) {
      const w = new Worker(url, { type: "module", name: CODEC_WORKER_NAME });
      w.onerror = (e: ErrorEvent) => {
        e.preventDefault(); // or Deno rethrows it in this thread and exits
        pool.earlyError ??= e.message;
      };
      ws.push(w);
      if (opts.warm !== undefined) {
        const c = opts.warm;
        w.postMessage({ type: "warm", codec: c.name, impl: workerEngineOf(c) } satisfies CodecWarmMessage);
      }
    }
    return pool;
  }

  terminate(): void {
    for (const w of this.workers) w.terminate();
  }
}

/** A batch buffer set; circulates between the main thread and the workers. */
interface Slot {
  pages: Uint8Array;
  /** 1 for pages that could not be read (kept on this thread, never transferred). */
  bad: Uint8Array;
  hasBad: boolean;
  out: Uint8Array;
  sizes: Uint32Array;
  /** Pages in `pages`. */
  count: number;
  seq: number;
  ready: boolean;
  worker: WorkerState | null;
  wake: (() => void) | null;
}

/** A worker or a lane, and the batches it holds. */
interface WorkerState {
  worker: Worker | null;
  lane: CodecLane | null;
  inflight: number;
}

/**
 * Write a kdump-compressed file with `opts.threads` compressing threads; same file as
 * {@link writeKdump}. Workers are terminated before this returns or throws; on error the caller aborts the
 * sink as with writeKdump. Errors in workers become VmsiftError.
 */
export async function writeKdumpParallel(
  src: KdumpSource,
  opts: ParallelWriteOptions,
): Promise<KdumpWriteResult> {
  const threads = opts.threads;
  if (!Number.isSafeInteger(threads) || threads < 1) {
    throw new VmsiftError(`number of threads must be >= 1, not ${threads}`, { file: opts.sink.label });
  }
  const lanes = usesLanes(opts);
  // lanes: the main thread only reads and writes (a batch compressed here would hold up every lane's next call)
  const mainCompresses = !lanes && (opts.mainCompresses ?? true) && threads >= 2;
  let pool = opts.workers;
  const run = new ParallelRun(src, opts, mainCompresses, lanes);
  try {
    const ps = src.pageSize;
    if (lanes) run.startLanes(CodecLane.create(opts.codec, threads, ps));
    else {
      // (started here, workers load while the headers and bitmaps are written)
      pool ??= CodecWorkers.start(mainCompresses ? threads - 1 : threads, { url: opts.workerUrl });
      run.start(pool, opts.codec, ps);
    }
    const L = writeKdumpHead(src, opts.codec.flag, opts);
    const control = opts.control;
    const out = new PagePairWriter(
      opts.sink,
      L,
      ps,
      opts.cacheSize ?? ps << 4,
      (src.dumpLevel & 1) !== 0,
      control?.sizeLimit,
    );
    const status = (opts.codec.flag | (opts.extraStatus ?? 0)) >>> 0;
    try {
      await run.pages(out, L.numDumpable);
      finishPages(run.res, out, L.numDumpable, opts.sink, src.eraseinfo);
    } catch (e) {
      // Batches still with the workers are dropped: the file keeps what was emitted, in pfn order.
      const r = finishIncomplete(e, out, opts.sink, status, L.numDumpable, control);
      run.res.incomplete = r.info;
      run.res.fileSize = r.fileSize;
    }
    return withUnreadable(run.res, run.unreadable, out, opts.sink, status, L.numDumpable, control);
  } finally {
    pool?.terminate();
    // lanes cannot be terminated: let their queued calls finish (the first lane's codec is the caller's)
    await run.lanesIdle();
    run.stop();
  }
}

class ParallelRun {
  readonly res: KdumpWriteResult = {
    dumpablePages: 0,
    zeroPages: 0,
    rawPages: 0,
    compressedPages: 0,
    fileSize: 0,
  };
  readonly unreadable = new UnreadablePages();
  readonly #src: KdumpSource;
  readonly #opts: ParallelWriteOptions;
  readonly #mainCompresses: boolean;
  readonly #batchPages: number;
  readonly #inflight: number;
  readonly #workers: WorkerState[] = [];
  readonly #free: Slot[] = [];
  /** Dispatched batches, oldest first. */
  readonly #pending: Slot[] = [];
  readonly #bySeq = new Map<number, Slot>();
  #nextSeq = 0;
  #failure: VmsiftError | null = null;
  #out: PagePairWriter | null = null;
  #total = 0;
  /** For #yield (with mainCompresses). */
  #channel: MessageChannel | null = null;

  constructor(src: KdumpSource, opts: ParallelWriteOptions, mainCompresses: boolean, lanes: boolean) {
    this.#src = src;
    this.#opts = opts;
    this.#mainCompresses = mainCompresses;
    const batch = opts.batchPages ?? (lanes ? DEFAULT_LANE_BATCH_PAGES : DEFAULT_BATCH_PAGES);
    this.#batchPages = Math.max(1, Math.floor(batch));
    this.#inflight = Math.max(1, Math.floor(opts.inflightPerWorker ?? 2));
  }

  start(pool: CodecWorkers, codec: PageCodec, pageSize: number): void {
    if (pool.workers.length === 0) throw new Error("parallel writer: no workers");
    if (pool.earlyError !== null) this.#fail(`compression worker failed: ${pool.earlyError}`);
    const init: CodecInitMessage = { type: "init", codec: codec.name, impl: workerEngineOf(codec), pageSize };
    for (const worker of pool.workers) {
      const ws: WorkerState = { worker, lane: null, inflight: 0 };
      this.#workers.push(ws);
      worker.onmessage = (e: MessageEvent) => this.#onReply(e.data as CodecReply);
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault(); // or Deno rethrows it in this thread and exits
        this.#fail(`compression worker failed: ${e.message}`);
      };
      worker.onmessageerror = () => this.#fail("compression worker sent an unreadable message");
      worker.postMessage(init);
    }
  }

  startLanes(lanes: CodecLane[]): void {
    if (lanes.length === 0) throw new Error("parallel writer: no lanes");
    for (const lane of lanes) this.#workers.push({ worker: null, lane, inflight: 0 });
  }

  /** Settles when no lane has a library call running or queued. */
  async lanesIdle(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.lane?.idle()));
  }

  /** A lane finished batch `s` (or failed). */
  #laneDone(s: Slot, err: unknown): void {
    if (err !== undefined) {
      this.#fail(`compression: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    s.ready = true;
    if (s.worker !== null) s.worker.inflight--;
    const wake = s.wake;
    s.wake = null;
    wake?.();
  }

  /** After the workers are terminated: nothing more can arrive. */
  stop(): void {
    this.#channel?.port1.close();
    this.#channel?.port2.close();
    this.#channel = null;
    this.#workers.length = 0;
    for (const s of this.#pending) s.wake?.();
  }

  #fail(message: string): void {
    if (this.#failure === null) {
      this.#failure = new VmsiftError(message, { file: this.#opts.sink.label });
    }
    for (const s of this.#pending) {
      const wake = s.wake;
      s.wake = null;
      wake?.();
    }
  }

  #onReply(m: CodecReply): void {
    if (m.type === "error") {
      this.#fail(`compression worker: ${m.message}`);
      return;
    }
    const s = this.#bySeq.get(m.seq);
    if (s === undefined || s.ready) {
      this.#fail(`compression worker answered an unknown batch ${m.seq}`);
      return;
    }
    s.pages = new Uint8Array(m.pages);
    s.out = new Uint8Array(m.out);
    s.sizes = new Uint32Array(m.sizes);
    s.ready = true;
    if (s.worker !== null) s.worker.inflight--;
    const wake = s.wake;
    s.wake = null;
    wake?.();
  }

  #newSlot(): Slot {
    const ps = this.#src.pageSize;
    const B = this.#batchPages;
    return {
      pages: new Uint8Array(B * ps),
      bad: new Uint8Array(B),
      hasBad: false,
      out: new Uint8Array(B * ps),
      sizes: new Uint32Array(B),
      count: 0,
      seq: -1,
      ready: false,
      worker: null,
      wake: null,
    };
  }

  async pages(out: PagePairWriter, total: number): Promise<void> {
    this.#out = out;
    this.#total = total;
    // one batch being filled, and with mainCompresses two more: one compressed here, one waiting for the
    // oldest batch of a worker
    const local = this.#mainCompresses ? 2 : 0;
    for (let i = this.#workers.length * this.#inflight + local + 1; i > 0; i--) {
      this.#free.push(this.#newSlot());
    }
    if (this.#mainCompresses) this.#channel = new MessageChannel();
    let loop: LoopYielder | null = null;
    try {
      await this.#pageLoop(() => loop ??= new LoopYielder());
    } finally {
      (loop as LoopYielder | null)?.close();
    }
  }

  async #pageLoop(yielder: () => LoopYielder): Promise<void> {
    const src = this.#src;
    const ps = src.pageSize;
    const B = this.#batchPages;
    let cur: Slot | null = null;
    const interrupted = this.#opts.control?.interrupted;
    let lastYield = performance.now();
    for (const [start, n] of bitmapRuns(src.bitmap2, src.maxMapnr, B)) {
      for (let done = 0; done < n;) {
        if (cur === null) cur = this.#free.pop() ?? await this.#reclaim();
        const k = Math.min(n - done, B - cur.count);
        const nbad = readRunChecked(
          src.mem,
          start + done,
          ps,
          cur.pages.subarray(cur.count * ps, (cur.count + k) * ps),
          cur.bad.subarray(cur.count, cur.count + k),
          this.unreadable,
          readRun,
          readPageLenient,
        );
        if (nbad > 0) cur.hasBad = true;
        cur.count += k;
        done += k;
        if (cur.count === B) {
          // after compressing a batch here, let the workers' answers in so that they get more work at once
          if (this.#dispatch(cur)) await this.#yield();
          this.#emitReady();
          cur = null;
          if (interrupted !== undefined) {
            // let the event loop turn now and then (signal listeners), then look at the flag
            if (performance.now() - lastYield >= YIELD_INTERVAL_MS) {
              await yielder().turn();
              lastYield = performance.now();
            }
            const sig = interrupted();
            if (sig !== null) throw new DumpInterrupted(sig);
          }
        }
      }
    }
    if (cur !== null && cur.count > 0) this.#dispatch(cur);
    while (this.#pending.length > 0) this.#free.push(await this.#reclaim());
  }

  /** Let pending events (worker answers) run. */
  #yield(): Promise<void> {
    const ch = this.#channel!;
    return new Promise<void>((resolve) => {
      ch.port1.onmessage = () => resolve();
      ch.port2.postMessage(null);
    });
  }

  /** Write the oldest batches that are done, without waiting. */
  #emitReady(): void {
    while (this.#pending.length > 0 && this.#pending[0].ready) this.#free.push(this.#emitHead());
  }

  /** Send `s` to the least busy worker, or compress it here (returns true) with mainCompresses. */
  #dispatch(s: Slot): boolean {
    if (this.#failure !== null) throw this.#failure;
    s.seq = this.#nextSeq++;
    s.ready = false;
    s.worker = null;
    this.#pending.push(s);
    const zero = (this.#src.dumpLevel & 1) !== 0;
    {
      let w = this.#workers[0];
      for (const x of this.#workers) if (x.inflight < w.inflight) w = x;
      if (this.#mainCompresses && w.inflight >= this.#inflight) {
        compressBatch(this.#opts.codec, this.#src.pageSize, s.pages, s.count, zero, s.out, s.sizes);
        s.ready = true;
        return true;
      } else if (w.lane !== null) {
        s.worker = w;
        w.inflight++;
        w.lane.run(this.#src.pageSize, s.pages, s.count, zero, s.out, s.sizes).then(
          () => this.#laneDone(s, undefined),
          (e) => this.#laneDone(s, e ?? "failed"),
        );
      } else {
        s.worker = w;
        w.inflight++;
        this.#bySeq.set(s.seq, s);
        const pages = s.pages.buffer as ArrayBuffer;
        const out = s.out.buffer as ArrayBuffer;
        const sizes = s.sizes.buffer as ArrayBuffer;
        const m: CodecBatchMessage = { type: "batch", seq: s.seq, count: s.count, zero, pages, out, sizes };
        w.worker!.postMessage(m, [pages, out, sizes]);
      }
    }
    return false;
  }

  /** Wait for the oldest batch, write it, return its buffers. */
  async #reclaim(): Promise<Slot> {
    const head = this.#pending[0];
    if (head === undefined) throw new Error("parallel writer: no batch to wait for");
    while (!head.ready && this.#failure === null) {
      if (this.#workers.length === 0) throw new Error("parallel writer: workers gone");
      await new Promise<void>((resolve) => head.wake = resolve);
    }
    if (this.#failure !== null) throw this.#failure;
    return this.#emitHead();
  }

  #emitHead(): Slot {
    const s = this.#pending.shift()!;
    if (s.worker?.worker) this.#bySeq.delete(s.seq);
    const out = this.#out!;
    const ps = this.#src.pageSize;
    const flag = this.#opts.codec.flag;
    const res = this.res;
    const { pages, sizes, out: packed, bad } = s;
    const hasBad = s.hasBad;
    let off = 0;
    for (let i = 0; i < s.count; i++) {
      const size = sizes[i];
      if (hasBad && bad[i] !== 0) {
        // unreadable: a never-written descriptor (its compressed bytes, if any, are skipped)
        out.addMissing();
        if (size !== ZERO_PAGE && size < ps) off += size;
      } else if (size === ZERO_PAGE) {
        out.addZero();
        res.zeroPages++;
      } else if (size < ps) {
        out.addData(packed.subarray(off, off + size), flag);
        off += size;
        res.compressedPages++;
      } else {
        out.addData(pages.subarray(i * ps, (i + 1) * ps), 0);
        res.rawPages++;
      }
    }
    res.dumpablePages += s.count;
    this.#opts.onProgress?.(res.dumpablePages, this.#total, out.dataEnd);
    s.count = 0;
    if (s.hasBad) s.bad.fill(0);
    s.hasBad = false;
    s.ready = false;
    s.worker = null;
    return s;
  }
}
