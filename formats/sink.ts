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
}
