/**
 * Reader of makedumpfile's flattened format (-F output, -R input; makedumpfile.h:1460-1478).
 *
 * Layout: a 4096-byte header (`signature[16]` = "makedumpfile" + 4 NULs, `type` int64 big-endian = 1,
 * `version` int64 big-endian = 1, zero padded), then records `{offset int64 BE, size int64 BE}` each followed
 * by `size` payload bytes that belong at `offset` of the rebuilt file, and the end marker `{-1, -1}`.
 *
 * The reader streams: it never holds a whole record, so it works on stdin and on files of any size.
 * Validation follows the strictest known reader (libkdumpfile): all 16 signature bytes, type 1, version 1,
 * offset ≥ 0, size > 0, and the end marker exactly `{-1, -1}`.
 */
import { VmsiftError } from "../core/errors.ts";

/** Size of the flattened-format header. */
export const FLAT_HEADER_SIZE = 4096;
/** The 16 signature bytes: "makedumpfile" followed by 4 NULs. */
export const FLAT_SIGNATURE: Uint8Array = (() => {
  const s = new Uint8Array(16);
  s.set(new TextEncoder().encode("makedumpfile"));
  return s;
})();
/** TYPE_FLAT_HEADER. */
export const FLAT_TYPE = 1;
/** VERSION_FLAT_HEADER. */
export const FLAT_VERSION = 1;
/** Size of one record header {offset, size}. */
export const FLAT_RECORD_HEADER_SIZE = 16;

/** Something bytes can be read from, e.g. Deno.stdin or a Deno.FsFile. `null` means end of stream. */
export interface ByteSource {
  readSync(p: Uint8Array): number | null;
}

/** Options of {@link FlatReader}. */
export interface FlatReaderOptions {
  /** Largest accepted record payload (default 1 GiB; our writer emits ≤ 1 MiB, makedumpfile ≤ 64 KiB). */
  maxRecordSize?: number;
  /** Bytes read from the source at a time (default 1 MiB). */
  chunkSize?: number;
}

/** A piece of a record: `bytes` belong at `offset` of the rebuilt file. */
export interface FlatChunk {
  /** Offset in the rebuilt file. */
  offset: number;
  /** The bytes; valid only until the next chunk is requested. */
  bytes: Uint8Array;
  /** Offset of these bytes in the flattened stream. */
  streamOffset: number;
  /** Index of the record this chunk belongs to (0-based). */
  record: number;
}

/** True when `head` (at least 32 bytes) starts with the flattened stream's signature. */
export function hasFlatSignature(head: Uint8Array): boolean {
  return head.length >= 32 && FLAT_SIGNATURE.every((b, i) => head[i] === b);
}

/** True when `head` (at least 32 bytes) starts like a flattened stream (signature and type). */
export function isFlattened(head: Uint8Array): boolean {
  if (!hasFlatSignature(head)) return false;
  const dv = new DataView(head.buffer, head.byteOffset, 32);
  return dv.getBigInt64(16, false) === BigInt(FLAT_TYPE);
}

/** Encode a record header {offset, size} (both int64 big-endian) into `out` at `at`. */
export function encodeRecordHeader(out: Uint8Array, at: number, offset: number, size: number): void {
  const dv = new DataView(out.buffer, out.byteOffset + at, 16);
  dv.setBigInt64(0, BigInt(offset), false);
  dv.setBigInt64(8, BigInt(size), false);
}

/** The 4096-byte flattened-format header. */
export function encodeFlatHeader(): Uint8Array {
  const h = new Uint8Array(FLAT_HEADER_SIZE);
  h.set(FLAT_SIGNATURE);
  const dv = new DataView(h.buffer);
  dv.setBigInt64(16, BigInt(FLAT_TYPE), false);
  dv.setBigInt64(24, BigInt(FLAT_VERSION), false);
  return h;
}

/**
 * Streaming parser. Call {@link FlatReader.chunks} once; it validates the header, then yields the records'
 * payload in stream order, in pieces of at most `chunkSize` bytes. Every problem is a VmsiftError whose
 * offset is the position in the stream.
 */
export class FlatReader {
  readonly label: string;
  #src: ByteSource;
  #buf: Uint8Array;
  #start = 0;
  #end = 0;
  #eof = false;
  /** Stream offset of #buf[#start]. */
  #pos = 0;
  #maxRecord: number;
  /** Number of records seen (after chunks() finished: all of them). */
  records = 0;
  /** Largest end (offset + size) over all records = size of the rebuilt file. */
  highWater = 0;

  constructor(src: ByteSource, label: string, opts: FlatReaderOptions = {}) {
    this.#src = src;
    this.label = label;
    this.#buf = new Uint8Array(Math.max(FLAT_HEADER_SIZE, opts.chunkSize ?? (1 << 20)));
    this.#maxRecord = opts.maxRecordSize ?? (1 << 30);
  }

  /** Make at least `n` (<= buffer size) bytes available; returns how many are (fewer only at EOF). */
  #fill(n: number): number {
    if (this.#end - this.#start >= n) return this.#end - this.#start;
    if (this.#start > 0) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    while (this.#end < n && !this.#eof) {
      let got: number | null;
      try {
        got = this.#src.readSync(this.#buf.subarray(this.#end));
      } catch (e) {
        throw new VmsiftError(`read error: ${(e as Error).message}`, {
          file: this.label,
          offset: this.#pos + this.#end,
        });
      }
      if (got === null || got === 0) this.#eof = true;
      else this.#end += got;
    }
    return this.#end - this.#start;
  }

  #consume(n: number): void {
    this.#start += n;
    this.#pos += n;
  }

  #fail(msg: string, offset: number): never {
    throw new VmsiftError(msg, { file: this.label, offset });
  }

  /** Validate the 4096-byte header. */
  #readHeader(): void {
    const have = this.#fill(FLAT_HEADER_SIZE);
    if (have < FLAT_HEADER_SIZE) {
      this.#fail(`flattened header truncated: ${have} of ${FLAT_HEADER_SIZE} bytes`, 0);
    }
    const h = this.#buf.subarray(this.#start, this.#start + FLAT_HEADER_SIZE);
    for (let i = 0; i < 16; i++) {
      if (h[i] !== FLAT_SIGNATURE[i]) this.#fail('bad flattened signature (want "makedumpfile" + 4 NULs)', i);
    }
    const dv = new DataView(h.buffer, h.byteOffset, 32);
    const type = dv.getBigInt64(16, false);
    if (type !== BigInt(FLAT_TYPE)) this.#fail(`flattened header type ${type}, expected ${FLAT_TYPE}`, 16);
    const version = dv.getBigInt64(24, false);
    if (version !== BigInt(FLAT_VERSION)) {
      this.#fail(`flattened header version ${version}, expected ${FLAT_VERSION}`, 24);
    }
    this.#consume(FLAT_HEADER_SIZE);
  }

  /** Header check, then the records' payload in stream order. Ends after the {-1,-1} marker. */
  *chunks(): Generator<FlatChunk> {
    this.#readHeader();
    for (;;) {
      const at = this.#pos;
      const have = this.#fill(FLAT_RECORD_HEADER_SIZE);
      if (have === 0) this.#fail("flattened stream ends without the end marker {-1, -1}", at);
      if (have < FLAT_RECORD_HEADER_SIZE) {
        this.#fail(`record header truncated: ${have} of ${FLAT_RECORD_HEADER_SIZE} bytes`, at);
      }
      const dv = new DataView(this.#buf.buffer, this.#buf.byteOffset + this.#start, 16);
      const off = dv.getBigInt64(0, false);
      const size = dv.getBigInt64(8, false);
      this.#consume(FLAT_RECORD_HEADER_SIZE);
      if (off === -1n && size === -1n) return;
      if (off < 0n) this.#fail(`record ${this.records}: negative offset ${off}`, at);
      if (size <= 0n) {
        this.#fail(
          `record ${this.records}: ${size === 0n ? "zero-length record" : `negative size ${size}`}`,
          at,
        );
      }
      if (size > BigInt(this.#maxRecord)) {
        this.#fail(`record ${this.records}: size ${size} exceeds the limit of ${this.#maxRecord} bytes`, at);
      }
      if (off + size > BigInt(Number.MAX_SAFE_INTEGER)) {
        this.#fail(`record ${this.records}: offset 0x${off.toString(16)} + size ${size} is out of range`, at);
      }
      const record = this.records++;
      const offset = Number(off);
      let left = Number(size);
      if (offset + left > this.highWater) this.highWater = offset + left;
      let dst = offset;
      while (left > 0) {
        const avail = this.#fill(Math.min(left, this.#buf.length));
        if (avail === 0) {
          this.#fail(`record ${record} truncated: ${left} payload bytes missing`, this.#pos);
        }
        const n = Math.min(avail, left);
        const streamOffset = this.#pos;
        const bytes = this.#buf.subarray(this.#start, this.#start + n);
        this.#consume(n);
        yield { offset: dst, bytes, streamOffset, record };
        dst += n;
        left -= n;
      }
    }
  }
}
