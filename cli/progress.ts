/**
 * Progress of a long step (message level bit 1). On a terminal: one line rewritten in place with percent,
 * pages/s, the throughput read (pages × page size: memory dumped per second, what operators compare with the
 * disk) and written (the dump file's bytes per second), and the ETA. Otherwise (serial console, log file): a
 * plain line every few seconds, so the log stays readable.
 */
export class Progress {
  readonly #label: string;
  readonly #tty: boolean;
  readonly #enabled: boolean;
  readonly #intervalMs: number;
  readonly #pageSize: number;
  readonly #start = performance.now();
  #last = 0;
  #lastLen = 0;
  readonly #enc = new TextEncoder();

  /** `pageSize`: bytes per page of the dumped machine (default 4096), for the read throughput. */
  constructor(
    label: string,
    enabled: boolean,
    opts: { tty?: boolean; intervalMs?: number; pageSize?: number } = {},
  ) {
    this.#label = label;
    this.#pageSize = opts.pageSize ?? 4096;
    this.#enabled = enabled;
    this.#tty = opts.tty ?? Deno.stderr.isTerminal();
    this.#intervalMs = opts.intervalMs ?? (this.#tty ? 200 : 5000);
  }

  /** Report `done` of `total` pages and `bytes` written to the dump so far; rate-limited. */
  update(done: number, total: number, bytes: number): void {
    if (!this.#enabled) return;
    const now = performance.now();
    if (now - this.#last < this.#intervalMs || done >= total) return;
    this.#last = now;
    this.#emit(this.line(done, total, bytes, (now - this.#start) / 1000), false);
  }

  /** Final line (always printed when enabled). */
  finish(done: number, total: number, bytes: number): void {
    if (!this.#enabled) return;
    this.#emit(this.line(done, total, bytes, (performance.now() - this.#start) / 1000), true);
  }

  /** The text of one progress line (exported for tests). */
  line(done: number, total: number, bytes: number, seconds: number): string {
    const pct = total > 0 ? (done * 100) / total : 100;
    const rate = seconds > 0 ? done / seconds : 0;
    const read = seconds > 0 ? (done * this.#pageSize) / seconds / 1e6 : 0;
    const written = seconds > 0 ? bytes / seconds / 1e6 : 0;
    const eta = rate > 0 ? Math.max(0, (total - done) / rate) : 0;
    return `${this.#label.padEnd(28)}: [${pct.toFixed(1).padStart(5)} %] ${Math.round(rate)} pages/s, ` +
      `read ${read.toFixed(1)} MB/s, written ${written.toFixed(1)} MB/s, eta ${fmtEta(eta)}`;
  }

  #emit(text: string, final: boolean): void {
    let s: string;
    if (this.#tty) {
      const pad = this.#lastLen > text.length ? " ".repeat(this.#lastLen - text.length) : "";
      s = "\r" + text + pad + (final ? "\n" : "");
      this.#lastLen = text.length;
    } else {
      s = text + "\n";
    }
    const b = this.#enc.encode(s);
    let off = 0;
    while (off < b.length) off += Deno.stderr.writeSync(b.subarray(off));
  }
}

/** Seconds as `42s`, `1m00s`, `59m59s`, `1h00m`: rounded up to whole seconds first, so no field reads 60. */
export function fmtEta(seconds: number): string {
  const s = Math.ceil(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  const m = Math.ceil(s / 60); // minutes rounded up as well
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}
