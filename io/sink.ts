/**
 * Where writers put bytes. The kdump, ELF and flattened writers are written once against this interface;
 * backends: buffered file, O_DIRECT file (io/), flattened stream, split files.
 * Offsets and sizes are plain numbers (files stay below 2^53 bytes).
 */
export interface Sink {
  /** A name for messages (the path, or "stdout"). */
  readonly label: string;
  /**
   * Write `bytes` at `offset`. Writers never write the same byte twice except through `rewrite` (header
   * status updates), so backends may buffer partial blocks until they are complete.
   */
  write(offset: number, bytes: Uint8Array): void;
  /** Overwrite bytes already written (e.g. the header's incomplete flag); may be slower. */
  rewrite(offset: number, bytes: Uint8Array): void;
  /** Flush everything and set the final file size to `size` bytes. */
  finish(size: number): void;
  /** Release the file; after an error, `abort` instead removes a partial output. */
  close(): void;
  /** Close and remove the output (used on errors so no partial DUMPFILE is left). */
  abort(): void;
  /**
   * Byte ranges handed to the operating system successfully (files only). After a failed write (ENOSPC)
   * this tells which bytes the file really holds, so that an incomplete dump keeps only descriptors whose
   * data is on disk (formats/kdump/writer.ts PagePairWriter.salvage).
   */
  readonly writtenRanges?: { ranges(): Array<[number, number]>; covers(start: number, end: number): boolean };
  /** Forget bytes in [from, to) accepted but not yet written (after ENOSPC), default all. */
  dropPending?(from?: number, to?: number): void;
  /** Set the file size at once (frees room on a full file system before finish writes what is cached). */
  truncate?(size: number): void;
}

/**
 * Open several outputs: every opener in turn; when one fails, those already opened are aborted (removed)
 * before the error goes on.
 */
export function openSinks(openers: ReadonlyArray<() => Sink>): Sink[] {
  const sinks: Sink[] = [];
  try {
    for (const open of openers) sinks.push(open());
  } catch (e) {
    for (const s of sinks) s.abort();
    throw e;
  }
  return sinks;
}

/**
 * Run `body` (sync or async) writing to `sinks`, then close them all; on any error abort them all (partial
 * outputs removed) and rethrow.
 */
export function useSinks<T>(sinks: readonly Sink[], body: () => T): T {
  const close = <R>(r: R): R => {
    for (const s of sinks) s.close();
    return r;
  };
  const abort = (e: unknown): never => {
    for (const s of sinks) s.abort();
    throw e;
  };
  let r: T;
  try {
    r = body();
    if (!(r instanceof Promise)) return close(r);
  } catch (e) {
    return abort(e);
  }
  return r.then(close).catch(abort) as T;
}
