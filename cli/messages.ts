/**
 * Messages by makedumpfile's --message-level bits: 1 progress, 2 common, 4 error, 8 debug, 16 report.
 * Common and report messages go to stdout, or to stderr when stdout carries data (-F); errors, debug and
 * progress go to stderr.
 */
export const ML_PROGRESS = 1;
export const ML_COMMON = 2;
export const ML_ERROR = 4;
export const ML_DEBUG = 8;
export const ML_REPORT = 16;

export class Messages {
  readonly level: number;
  readonly #toStderr: boolean;
  readonly #enc = new TextEncoder();

  constructor(level: number, stdoutIsData = false) {
    this.level = level;
    this.#toStderr = stdoutIsData;
  }

  enabled(bit: number): boolean {
    return (this.level & bit) !== 0;
  }

  common(text: string): void {
    if (this.enabled(ML_COMMON)) this.#out(text);
  }

  report(text: string): void {
    if (this.enabled(ML_REPORT)) this.#out(text);
  }

  debug(text: string): void {
    if (this.enabled(ML_DEBUG)) this.#err(text);
  }

  error(text: string): void {
    if (this.enabled(ML_ERROR)) this.#err(text);
  }

  #out(text: string): void {
    const b = this.#enc.encode(text.endsWith("\n") ? text : text + "\n");
    writeAll(this.#toStderr ? Deno.stderr : Deno.stdout, b);
  }

  #err(text: string): void {
    writeAll(Deno.stderr, this.#enc.encode(text.endsWith("\n") ? text : text + "\n"));
  }
}

/**
 * Write all of `b`. A message that cannot be written (stdout closed by `| head`, a full console) must not
 * fail a dump that is otherwise fine, so write errors of messages are dropped.
 */
function writeAll(w: { writeSync(p: Uint8Array): number }, b: Uint8Array): void {
  let off = 0;
  try {
    while (off < b.length) off += w.writeSync(b.subarray(off));
  } catch {
    // dropped: see above
  }
}
