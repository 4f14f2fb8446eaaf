/**
 * A full output: `-L SIZE` reached or the file system out of space (ENOSPC). Sinks throw it; the writers
 * finish an incomplete file or the dump layer retries at the next fallback level (formats/incomplete.ts).
 */
import { VmsiftError } from "../core/errors.ts";
import { ENOSPC, SysError } from "./libc.ts";

/** The output cannot take more bytes: `-L` reached or the file system is full. */
export class OutputFullError extends VmsiftError {
  readonly reason: "size-limit" | "no-space";
  constructor(reason: "size-limit" | "no-space", message: string, file?: string, offset?: number) {
    super(message, { file, offset });
    this.name = "OutputFullError";
    this.reason = reason;
  }
}

/** `e` as an OutputFullError when it means "no space" (SysError ENOSPC included), else null. */
export function asOutputFull(e: unknown): OutputFullError | null {
  if (e instanceof OutputFullError) return e;
  if (e instanceof SysError && e.errno === ENOSPC) {
    const off = e.place.offset;
    return new OutputFullError(
      "no-space",
      e.message,
      e.place.file,
      typeof off === "number" ? off : undefined,
    );
  }
  return null;
}
