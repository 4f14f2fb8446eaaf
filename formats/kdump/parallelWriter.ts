/**
 * `--num-threads N`: the kdump-compressed writer with page compression in Web Workers
 * (kdump-reference.md 2.3; makedumpfile's write_kdump_pages_parallel_cyclic does the same with pthreads).
 *
 * The main thread reads runs of dumpable pages straight into batch buffers and sends each batch (up to
 * `batchPages` consecutive dumpable pages, transferred, never copied) to the least busy worker. Workers detect
 * zero pages and compress (formats/codecs/codecWorker.ts; zero detection over the whole dump costs about as
 * much as reading it, so it is not left to the main thread) and send the buffers back; the main thread
 * emits descriptors and data strictly in pfn order through the same paired caches as writeKdump
 * ({@link PagePairWriter}), so the output is byte-identical to the single-threaded writer. Memory is flat: a
 * fixed pool of batch buffers circulates (at most `inflightPerWorker` batches per worker), and the producer
 * waits for the oldest batch when the pool is empty.
 */
import { VmsiftError } from "../../core/errors.ts";
import type { PageCodec } from "../codecs/codec.ts";
import {
  CODEC_WORKER_NAME,
  type CodecBatchMessage,
  type CodecInitMessage,
  type CodecReply,
  codecWorkerUrl,
  compressBatch,
  ZERO_PAGE,
} from "../codecs/codecWorker.ts";
import {
  bitmapRuns,
  finishPages,
  type KdumpSource,
  type KdumpWriteOptions,
  type KdumpWriteResult,
  PagePairWriter,
  readRun,
  writeKdumpHead,
} from "./writer.ts";

/** Options of {@link writeKdumpParallel}. */
export interface ParallelWriteOptions extends KdumpWriteOptions {
  /** The codec (its registry name is used to make one per worker). */
  codec: PageCodec;
  /** Compressing threads (>= 1). */
  threads: number;
  /** Worker module (default: codecWorkerUrl(), i.e. this program). Tests pass their own. */
  workerUrl?: string | URL;
  /** Pages per batch (default 512). */
  batchPages?: number;
  /** Batches queued per worker (default 2). */
  inflightPerWorker?: number;
  /**
   * Whether the main thread is one of the `threads` compressors (then threads - 1 workers; it compresses a
   * batch itself when every worker is busy). Default false: `threads` workers, the main thread reads and
   * writes (measured faster on 2 cores, see bench/threads.ts).
   */
  mainCompresses?: boolean;
}

/** Default pages per batch: 2 MiB of 4 KiB pages. */
export const DEFAULT_BATCH_PAGES = 512;

/** A batch buffer set; circulates between the main thread and the workers. */
interface Slot {
  pages: Uint8Array;
  out: Uint8Array;
  sizes: Uint32Array;
  /** Pages in `pages`. */
  count: number;
  seq: number;
  ready: boolean;
  worker: WorkerState | null;
  wake: (() => void) | null;
}

interface WorkerState {
  worker: Worker;
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
  const mainCompresses = (opts.mainCompresses ?? false) && threads >= 2;
  const nWorkers = mainCompresses ? threads - 1 : threads;
  const ps = src.pageSize;
  const run = new ParallelRun(src, opts, nWorkers, mainCompresses);
  try {
    // workers load while the headers and bitmaps are written
    run.start(opts.workerUrl ?? codecWorkerUrl(), opts.codec.name, ps);
    const L = writeKdumpHead(src, opts.codec.flag, opts);
    const out = new PagePairWriter(opts.sink, L, ps, opts.cacheSize ?? ps << 4, (src.dumpLevel & 1) !== 0);
    await run.pages(out, L.numDumpable);
    return finishPages(run.res, out, L.numDumpable, opts.sink);
  } finally {
    run.terminate();
  }
}

class ParallelRun {
  readonly res: KdumpWriteResult = { dumpablePages: 0, zeroPages: 0, rawPages: 0, compressedPages: 0, fileSize: 0 };
  readonly #src: KdumpSource;
  readonly #opts: ParallelWriteOptions;
  readonly #nWorkers: number;
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

  constructor(src: KdumpSource, opts: ParallelWriteOptions, nWorkers: number, mainCompresses: boolean) {
    this.#src = src;
    this.#opts = opts;
    this.#nWorkers = nWorkers;
    this.#mainCompresses = mainCompresses;
    this.#batchPages = Math.max(1, Math.floor(opts.batchPages ?? DEFAULT_BATCH_PAGES));
    this.#inflight = Math.max(1, Math.floor(opts.inflightPerWorker ?? 2));
  }

  start(url: string | URL, codecName: string, pageSize: number): void {
    for (let i = 0; i < this.#nWorkers; i++) {
      const worker = new Worker(url, { type: "module", name: CODEC_WORKER_NAME });
      const ws: WorkerState = { worker, inflight: 0 };
      this.#workers.push(ws);
      worker.onmessage = (e: MessageEvent) => this.#onReply(e.data as CodecReply);
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault(); // or Deno rethrows it in this thread and exits
        this.#fail(`compression worker failed: ${e.message}`);
      };
      worker.onmessageerror = () => this.#fail("compression worker sent an unreadable message");
      worker.postMessage({ type: "init", codec: codecName, pageSize } satisfies CodecInitMessage);
    }
  }

  terminate(): void {
    for (const w of this.#workers) w.worker.terminate();
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
    const src = this.#src;
    const ps = src.pageSize;
    const B = this.#batchPages;
    const local = this.#mainCompresses ? 1 : 0;
    for (let i = this.#nWorkers * this.#inflight + local + 1; i > 0; i--) this.#free.push(this.#newSlot());

    let cur: Slot | null = null;
    for (const [start, n] of bitmapRuns(src.bitmap2, src.maxMapnr, B)) {
      for (let done = 0; done < n;) {
        if (cur === null) cur = this.#free.pop() ?? await this.#reclaim();
        const k = Math.min(n - done, B - cur.count);
        readRun(src.mem, start + done, ps, cur.pages.subarray(cur.count * ps, (cur.count + k) * ps));
        cur.count += k;
        done += k;
        if (cur.count === B) {
          this.#dispatch(cur);
          cur = null;
        }
      }
    }
    if (cur !== null && cur.count > 0) this.#dispatch(cur);
    while (this.#pending.length > 0) this.#free.push(await this.#reclaim());
  }

  #dispatch(s: Slot): void {
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
      } else {
        s.worker = w;
        w.inflight++;
        this.#bySeq.set(s.seq, s);
        const pages = s.pages.buffer as ArrayBuffer;
        const out = s.out.buffer as ArrayBuffer;
        const sizes = s.sizes.buffer as ArrayBuffer;
        const m: CodecBatchMessage = { type: "batch", seq: s.seq, count: s.count, zero, pages, out, sizes };
        w.worker.postMessage(m, [pages, out, sizes]);
      }
    }
    // emit what is already done without waiting
    while (this.#pending.length > 0 && this.#pending[0].ready) this.#free.push(this.#emitHead());
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
    if (s.worker !== null) this.#bySeq.delete(s.seq);
    const out = this.#out!;
    const ps = this.#src.pageSize;
    const flag = this.#opts.codec.flag;
    const res = this.res;
    const { pages, sizes, out: packed } = s;
    let off = 0;
    for (let i = 0; i < s.count; i++) {
      const size = sizes[i];
      if (size === ZERO_PAGE) {
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
    s.ready = false;
    s.worker = null;
    return s;
  }
}
