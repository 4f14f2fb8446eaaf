/**
 * The one error type of vmsift. Every failure a user can meet carries where it happened (the file and the
 * offset or address) so that main.ts can print it as one line and exit with `exitCode`.
 */
export interface ErrorPlace {
  /** File the error is about (vmcore, dump file, VMCOREINFO file, ...). */
  file?: string;
  /** Byte offset in that file. */
  offset?: number | bigint;
  /** Physical or virtual address, when the problem is in memory rather than in a file. */
  address?: number | bigint;
}

/** An expected failure with a place; main.ts prints `vmsift: <file>: offset 0x..: <message>`. */
export class VmsiftError extends Error {
  /** The file and offset (or kernel address) the error is about. */
  readonly place: ErrorPlace;
  /** Exit status of the command line tool for this error (1, or 2 for a VMCOREINFO release mismatch). */
  readonly exitCode: number;
  /** An error about `place`; `exitCode` is what the command line tool exits with. */
  constructor(message: string, place: ErrorPlace = {}, exitCode = 1) {
    super(message);
    this.name = "VmsiftError";
    this.place = place;
    this.exitCode = exitCode;
  }

  /** One line: `<file>: offset 0x..: <message>` (file and offset only when known). */
  oneLine(): string {
    const parts: string[] = [];
    if (this.place.file !== undefined) parts.push(this.place.file);
    if (this.place.offset !== undefined) parts.push(`offset 0x${this.place.offset.toString(16)}`);
    if (this.place.address !== undefined) parts.push(`address 0x${this.place.address.toString(16)}`);
    parts.push(this.message);
    return parts.join(": ");
  }
}

/** Format a number or bigint as 0x-prefixed hex. */
export function hex(v: number | bigint): string {
  return "0x" + v.toString(16);
}
