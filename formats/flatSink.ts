/**
 * A Sink that writes makedumpfile's flattened format (-F) to a byte stream such as Deno.stdout.
 *
 * Records never overlap and are never empty. That matters because crash (makedumpfile.c in crash) sorts the
 * records by offset with an unstable selection sort and binary-searches them: of two records covering the
 * same byte it may use either, so the "rewrite = second record" trick of makedumpfile (a second sub-header
 * record) is ambiguous there. Instead:
 *
 * - Writes below `holdBytes` (default 1 MiB: the kdump main header, sub header and notes, which are the
 *   bytes writers rewrite; the ELF header and program headers) are kept in memory, rewrites patch them,
 *   and they are emitted at `finish()` — after the page data, which is fine: readers place records by
 *   offset (makedumpfile -R replays them in order, crash and libkdumpfile sort them). With `holdAt` the
 *   held window starts there instead of at 0.
 * - Contiguous writes are gathered into records of up to `recordSize` bytes (default 1 MiB); a rewrite of
 *   bytes still in that buffer patches it.
 * - A rewrite of bytes already sent, or a second write of them, is refused with a VmsiftError instead of
 *   producing an overlapping record.
 * - `finish(size)` beyond the written data emits one zero byte at `size - 1` so the rebuilt file has the
 *   right size (a stream cannot be cut shorter: a size below the written data is an error).
 *
 * The stream is written with few large writes: each record's 16-byte header sits in front of its payload in
 * one buffer. Nothing is written before the first record is complete (an aborted sink may write nothing).
 */
import { VmsiftError } from "../core/errors.ts";
import { encodeFlatHeader, encodeRecordHeader, FLAT_RECORD_HEADER_SIZE } from "./flatReader.ts";
import { IntervalSet } from "../io/intervalSet.ts";
import type { Sink } from "../io/sink.ts";

/** Something bytes can be written to (Deno.stdout, a Deno.FsFile, a test collector). */
export interface ByteStream {
  writeSync(p: Uint8Array): number;
}

/** Options of {@link FlatSink}. */
export interface FlatSinkOptions {
  /** Largest record payload and size of the gathering buffer (default 1 MiB). */
  recordSize?: number;
  /** Bytes of the output kept in memory until finish so they can be rewritten (default 1 MiB). */
  holdBytes?: number;
  /**
   * Where the held bytes start (default 0: the first `holdBytes` bytes). -F with ERASEINFO holds only the
   * sub header's eraseinfo fields, rewritten after the page data, so the main header's record still comes
   * first in the stream.
   */
  holdAt?: number;
}

/** Sink producing a flattened stream. */
export class FlatSink implements Sink {
  readonly label: string;
  #out: ByteStream;
  /** 16 bytes of record header + payload. */
  #rec: Uint8Array;
  #recStart = 0;
  #recLen = 0;
  #hold: Uint8Array;
  readonly holdBytes: number;
  /** First held offset: the held window is [holdAt, holdAt + holdBytes). */
  readonly holdAt: number;
  #held = new IntervalSet();
  /** Ranges already sent as records. */
  #sent = new IntervalSet();
  #headerSent = false;
  #state: "open" | "finished" | "closed" = "open";
  /** Bytes written to the stream so far (header, record headers, payload, end marker). */
  streamBytes = 0;
  /** Records emitted so far (without the end marker). */
  recordCount = 0;
  /** Highest end of written data (file offset). */
  highWater = 0;

  constructor(out: ByteStream, label = "stdout", opts: FlatSinkOptions = {}) {
    this.#out = out;
    this.label = label;
    const rs = opts.recordSize ?? (1 << 20);
    if (!(rs >= 1)) throw new VmsiftError(`bad record size ${rs}`, { file: label });
    this.#rec = new Uint8Array(FLAT_RECORD_HEADER_SIZE + rs);
    this.holdBytes = Math.max(0, opts.holdBytes ?? (1 << 20));
    this.holdAt = Math.max(0, opts.holdAt ?? 0);
    this.#hold = new Uint8Array(0);
  }

  #emit(p: Uint8Array): void {
    let done = 0;
    try {
      while (done < p.length) done += this.#out.writeSync(p.subarray(done));
    } catch (e) {
      throw new VmsiftError(`write error: ${(e as Error).message}`, {
        file: this.label,
        offset: this.streamBytes + done,
      });
    }
    this.streamBytes += done;
  }

  #emitHeader(): void {
    if (!this.#headerSent) {
      this.#headerSent = true;
      this.#emit(encodeFlatHeader());
    }
  }

  /** Send the gathered record. */
  #flushRecord(): void {
    if (this.#recLen === 0) return;
    const start = this.#recStart, end = start + this.#recLen;
    if (this.#sent.overlaps(start, end)) {
      throw new VmsiftError(`bytes 0x${start.toString(16)}-0x${end.toString(16)} were already streamed`, {
        file: this.label,
        offset: start,
      });
    }
    this.#emitHeader();
    encodeRecordHeader(this.#rec, 0, start, this.#recLen);
    this.#emit(this.#rec.subarray(0, FLAT_RECORD_HEADER_SIZE + this.#recLen));
    this.#sent.add(start, end);
    this.recordCount++;
    this.#recLen = 0;
  }

  #open(what: string, offset: number): void {
    if (this.#state !== "open") {
      throw new VmsiftError(`${what} after finish/close`, { file: this.label, offset });
    }
  }

  /** Keep `bytes` (inside the held window) for finish. */
  #holdWrite(offset: number, bytes: Uint8Array): void {
    const rel = offset - this.holdAt, end = rel + bytes.length;
    if (end > this.#hold.length) {
      const n = new Uint8Array(Math.min(this.holdBytes, Math.max(end, this.#hold.length * 2, 65536)));
      n.set(this.#hold);
      this.#hold = n;
    }
    this.#hold.set(bytes, rel);
    this.#held.add(offset, offset + bytes.length);
    if (offset + bytes.length > this.highWater) this.highWater = offset + bytes.length;
  }

  /**
   * Call `fn(at, piece, held)` for the pieces of a write at `offset`: before, inside and after the held
   * window, in order.
   */
  #pieces(
    offset: number,
    bytes: Uint8Array,
    fn: (at: number, piece: Uint8Array, held: boolean) => void,
  ): void {
    const hs = this.holdAt, he = this.holdAt + this.holdBytes, end = offset + bytes.length;
    const cuts = [offset, Math.min(Math.max(hs, offset), end), Math.min(Math.max(he, offset), end), end];
    for (let i = 0; i < 3; i++) {
      if (cuts[i + 1] > cuts[i]) {
        fn(cuts[i], bytes.subarray(cuts[i] - offset, cuts[i + 1] - offset), i === 1);
      }
    }
  }

  write(offset: number, bytes: Uint8Array): void {
    this.#open("write", offset);
    if (bytes.length === 0) return;
    if (!Number.isSafeInteger(offset) || offset < 0) {
      throw new VmsiftError(`bad write offset ${offset}`, { file: this.label });
    }
    this.#pieces(offset, bytes, (at, piece, held) => {
      if (held) this.#holdWrite(at, piece);
      else this.#streamWrite(at, piece);
    });
  }

  /** A write outside the held window: gathered into records. */
  #streamWrite(offset: number, bytes: Uint8Array): void {
    const end = offset + bytes.length;
    if (this.#sent.overlaps(offset, end)) {
      throw new VmsiftError(
        `bytes 0x${offset.toString(16)}-0x${end.toString(16)} were already streamed`,
        { file: this.label, offset },
      );
    }
    if (end > this.highWater) this.highWater = end;
    const cap = this.#rec.length - FLAT_RECORD_HEADER_SIZE;
    let pos = 0;
    while (pos < bytes.length) {
      const at = offset + pos;
      if (this.#recLen > 0 && at !== this.#recStart + this.#recLen) this.#flushRecord();
      if (this.#recLen === cap) this.#flushRecord();
      if (this.#recLen === 0) this.#recStart = at;
      const n = Math.min(cap - this.#recLen, bytes.length - pos);
      this.#rec.set(bytes.subarray(pos, pos + n), FLAT_RECORD_HEADER_SIZE + this.#recLen);
      this.#recLen += n;
      pos += n;
    }
  }

  /**
   * True when `rewrite(offset, bytes of length)` would succeed: the bytes are in the held window, still in
   * the gathering buffer, or not written yet.
   */
  canRewrite(offset: number, length: number): boolean {
    let ok = true;
    this.#pieces(offset, new Uint8Array(length), (a, piece, held) => {
      if (held) return;
      const end = a + piece.length;
      const rs = this.#recStart, re = rs + this.#recLen;
      if (this.#recLen > 0 && a >= rs && end <= re) return;
      if (this.#sent.overlaps(a, end) || (this.#recLen > 0 && a < re && end > rs)) ok = false;
    });
    return ok;
  }

  rewrite(offset: number, bytes: Uint8Array): void {
    this.#open("rewrite", offset);
    if (bytes.length === 0) return;
    this.#pieces(offset, bytes, (a, piece, held) => {
      if (held) return this.#holdWrite(a, piece);
      const end = a + piece.length;
      const rs = this.#recStart, re = rs + this.#recLen;
      if (this.#recLen > 0 && a >= rs && end <= re) {
        this.#rec.set(piece, FLAT_RECORD_HEADER_SIZE + (a - rs));
        return;
      }
      if (this.#sent.overlaps(a, end) || (this.#recLen > 0 && a < re && end > rs)) {
        throw new VmsiftError(
          `cannot rewrite bytes 0x${a.toString(16)}-0x${end.toString(16)}: already streamed ` +
            `(only bytes 0x${this.holdAt.toString(16)}-0x${(this.holdAt + this.holdBytes).toString(16)} ` +
            `can be rewritten in this flattened stream)`,
          { file: this.label, offset: a },
        );
      }
      // Never written before: an ordinary write.
      this.#streamWrite(a, piece);
    });
  }

  finish(size: number): void {
    this.#open("finish", size);
    this.#flushRecord();
    const cap = this.#rec.length - FLAT_RECORD_HEADER_SIZE;
    for (const [s, e] of this.#held.ranges()) {
      for (let p = s; p < e; p += cap) {
        const n = Math.min(cap, e - p);
        this.#recStart = p;
        const rel = p - this.holdAt;
        this.#rec.set(this.#hold.subarray(rel, rel + n), FLAT_RECORD_HEADER_SIZE);
        this.#recLen = n;
        this.#flushRecord();
      }
    }
    if (size < this.highWater) {
      throw new VmsiftError(
        `cannot cut a flattened stream to ${size} bytes: ${this.highWater} bytes were written`,
        { file: this.label, offset: size },
      );
    }
    if (size > this.highWater) {
      // One zero byte at the end gives the rebuilt file its size (gaps read as zeros everywhere).
      this.#recStart = size - 1;
      this.#rec[FLAT_RECORD_HEADER_SIZE] = 0;
      this.#recLen = 1;
      this.#flushRecord();
      this.highWater = size;
    }
    this.#emitHeader();
    const endMark = new Uint8Array(FLAT_RECORD_HEADER_SIZE);
    encodeRecordHeader(endMark, 0, -1, -1);
    this.#emit(endMark);
    this.#state = "finished";
  }

  close(): void {
    if (this.#state === "open") this.finish(this.highWater);
    this.#state = "closed";
  }

  abort(): void {
    // A stream cannot be taken back; stop writing (the reader sees no end marker and fails).
    this.#state = "closed";
    this.#recLen = 0;
  }
}
