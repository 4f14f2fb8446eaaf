/**
 * Interrupting a dump: SIGTERM/SIGINT are recorded, the writers poll the flag between runs of pages and
 * finish the file as incomplete (flag set, bitmap files removed).
 */
import { VmsiftError } from "../core/errors.ts";

/** Signals that interrupt a dump. */
const STOP_SIGNALS: Deno.Signal[] = ["SIGTERM", "SIGINT"];

/**
 * Run `body` with SIGTERM/SIGINT listeners that only record the signal (pass `interrupted` to
 * {@link runDump}); the listeners are removed afterwards. A signal that arrives after the output was complete
 * still fails the run (VmsiftError).
 */
export async function withStopSignals<T>(body: (interrupted: () => string | null) => Promise<T>): Promise<T> {
  let got: string | null = null;
  const handlers: Array<[Deno.Signal, () => void]> = [];
  for (const sig of STOP_SIGNALS) {
    const h = () => {
      got ??= sig;
    };
    try {
      Deno.addSignalListener(sig, h);
      handlers.push([sig, h]);
    } catch { /* not supported here (e.g. Windows): the default action applies */ }
  }
  try {
    const r = await body(() => got);
    // A signal during a phase that does not poll (the scan): the output is complete, but the run was still
    // interrupted.
    if (got !== null) throw new VmsiftError(`interrupted by ${got} (the output was already complete)`);
    return r;
  } finally {
    for (const [sig, h] of handlers) Deno.removeSignalListener(sig, h);
  }
}
