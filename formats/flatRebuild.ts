/**
 * `-R`: rebuild a normal dump file from a flattened stream (makedumpfile's rearrange_dumpdata,
 * makedumpfile.c:5445-5495). Records are replayed in stream order, so a later record wins where two
 * overlap (makedumpfile itself emits a second sub-header record after eraseinfo). The rebuilt file's size is
 * the largest record end, as with makedumpfile -R.
 */
import { VmsiftError } from "../core/errors.ts";
import { FileSink, type FileSinkOptions } from "../io/fileSink.ts";
import { type ByteSource, FlatReader, type FlatReaderOptions } from "./flatReader.ts";
import { IntervalSet } from "../io/intervalSet.ts";
import { type Sink, useSinks } from "../io/sink.ts";

/** What a rebuild did. */
export interface FlatRebuildResult {
  /** Records replayed. */
  records: number;
  /** Payload bytes replayed (overlapping bytes counted each time). */
  payloadBytes: number;
  /** Size of the rebuilt file. */
  fileSize: number;
  /** Records that overlapped bytes written by an earlier record (written with Sink.rewrite). */
  overlapping: number;
}

/**
 * Replay every record of `reader` into `sink` and finish it at the largest record end. Bytes that an
 * earlier record already wrote go through `sink.rewrite` (the Sink contract: write each byte once).
 * The caller closes (or, on error, aborts) the sink.
 */
export function rebuildFlat(reader: FlatReader, sink: Sink): FlatRebuildResult {
  const written = new IntervalSet();
  let payloadBytes = 0;
  let overlapping = 0;
  let lastRecord = -1;
  for (const c of reader.chunks()) {
    const end = c.offset + c.bytes.length;
    if (written.overlaps(c.offset, end)) {
      if (c.record !== lastRecord) overlapping++;
      // Split into the parts already written (rewrite) and the new parts (write).
      let p = c.offset;
      for (const [s, e] of written.ranges()) {
        if (e <= p) continue;
        if (s >= end) break;
        if (s > p) sink.write(p, c.bytes.subarray(p - c.offset, s - c.offset));
        const re = Math.min(e, end);
        sink.rewrite(Math.max(s, p), c.bytes.subarray(Math.max(s, p) - c.offset, re - c.offset));
        p = re;
      }
      if (p < end) sink.write(p, c.bytes.subarray(p - c.offset));
    } else {
      sink.write(c.offset, c.bytes);
    }
    written.add(c.offset, end);
    payloadBytes += c.bytes.length;
    lastRecord = c.record;
  }
  sink.finish(reader.highWater);
  return { records: reader.records, payloadBytes, fileSize: reader.highWater, overlapping };
}

/**
 * Rebuild `outPath` from a flattened stream read from `src` (Deno.stdin or an open file). The output is
 * created like any dump (0600, must not exist unless `overwrite`) and removed again on any error.
 */
export function rebuildFlatToFile(
  src: ByteSource,
  srcLabel: string,
  outPath: string,
  opts: FileSinkOptions & FlatReaderOptions = {},
): FlatRebuildResult {
  const reader = new FlatReader(src, srcLabel, opts);
  const sink = FileSink.create(outPath, opts);
  try {
    return useSinks([sink], () => rebuildFlat(reader, sink));
  } catch (e) {
    if (e instanceof VmsiftError) throw e;
    throw new VmsiftError(`rebuild failed: ${(e as Error).message}`, { file: srcLabel });
  }
}
