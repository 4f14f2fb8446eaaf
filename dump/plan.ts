/**
 * The plan of a dump: what an opened input is written as (levels, codec, output form, bitmaps, image guard,
 * limits, threads), checked before anything is written. The same for an ELF vmcore and a kdump file being
 * re-filtered.
 */
import { VmsiftError } from "../core/errors.ts";
import type { PageCodec } from "../formats/codecs/codec.ts";
import { type CodecName, createCodecAsync, type EngineChoice } from "../formats/codecs/registry.ts";
import type { DumpInput } from "./input.ts";
import type { EraseRequest } from "./erase.ts";

/**
 * Default memory budget for the two bitmaps together (bytes): 1 MiB holds both bitmaps of a 16 GiB machine;
 * beyond that they go to a file beside DUMPFILE with a block cache of the same size, so the process stays
 * near 64 MiB RSS at any memory size (measured: 4 MiB here cost 3-4 MiB of peak RSS from 64 GiB up, and
 * the bitmap files are read and written sequentially, once each).
 */
export const DEFAULT_BITMAP_BUDGET = 1 << 20;

/** Output form: kdump-compressed (default), ELF (-E), or several split kdump files (--split). */
export type OutputForm = "kdump" | "elf" | "split";

/** What to make of an input; every field but `dumpLevel` has a default. */
export interface DumpOptions {
  /** `-d`: which pages to exclude (bit 0 zero, 1 cache, 2 cache private, 3 user, 4 free; 31 = all). */
  dumpLevel: number;
  /**
   * `-d L1,L2,...`: levels to retry with, in order, when the output is full (size limit or ENOSPC); the dump
   * is redone from the start at the next level and the output rewritten (makedumpfile's create_dumpfile).
   */
  fallbackLevels?: number[];
  /** Page codec: a name, a codec already made, or null (default) for an uncompressed dump. */
  codec?: CodecName | PageCodec | null;
  /** With a codec name: which engine (`--codec-engine`, default "auto"). */
  codecEngine?: EngineChoice;
  /** Output form (default "kdump"); "elf" needs an ELF input. */
  form?: OutputForm;
  /** `--splitblock-size` in bytes (form "split"). */
  splitblockSize?: number;
  /** Memory for both bitmaps together, bytes (default {@link DEFAULT_BITMAP_BUDGET}). */
  bitmapBudget?: number;
  /** Directory for bitmap files when the bitmaps exceed the budget (default: the first output's). */
  bitmapDir?: string;
  /** O_DIRECT for the output and bitmap files (default false). */
  directIo?: boolean;
  /** Keep kernel-image pages whatever their struct page says (default true). */
  imageGuard?: boolean;
  /** `-e`: also exclude vmemmap pages that describe only excluded pages (header status 0x10). */
  excludeVmemmap?: boolean;
  /** `-L`: largest size of each output file in bytes; a dump that does not fit is finished as incomplete. */
  sizeLimit?: number;
  /** Mark a dump that could not be finished as incomplete in its header (default true; -F: false). */
  markIncomplete?: boolean;
  /**
   * `--num-threads`: compressing threads (default 1; > 1 with an FFI engine: that many library calls at once,
   * same output; other engines compress on one thread, see dump/run.ts).
   */
  threads?: number;
  /** `--config` / `--erase` / `--erase-secrets`: data to erase (dump/erase.ts), in every form and input. */
  erase?: EraseRequest;
}

/** A checked plan: {@link runDump} carries it out. */
export interface DumpPlan {
  /** The opened input (the caller closes it). */
  readonly input: DumpInput;
  /** The requested level, then the fallback levels. */
  readonly levels: readonly number[];
  /** The page codec, or null for an uncompressed dump. */
  readonly codec: PageCodec | null;
  /** The output form. */
  readonly form: OutputForm;
  /** Form "split": `--splitblock-size` in bytes. */
  readonly splitblockSize?: number;
  /** Memory for both bitmaps together, bytes. */
  readonly bitmapBudget: number;
  /** Directory for bitmap files (default: the first output file's). */
  readonly bitmapDir?: string;
  /** O_DIRECT for the output and bitmap files. */
  readonly directIo: boolean;
  /** Keep kernel-image pages whatever their struct page says. */
  readonly imageGuard: boolean;
  /** `-e`: exclude unused vmemmap pages. */
  readonly excludeVmemmap: boolean;
  /** `-L`: largest size of each output file, bytes. */
  readonly sizeLimit?: number;
  /** Mark an unfinished dump as incomplete in its header. */
  readonly markIncomplete: boolean;
  /** Compressing threads (> 1: lanes of FFI library calls, formats/kdump/codecLanes.ts). */
  readonly threads: number;
  /** Data to erase, if any. */
  readonly erase?: EraseRequest;
}

/**
 * Check `opts` against the input and make the codec. Throws VmsiftError (e.g. -E of a kdump input, an
 * unknown codec or engine).
 *
 * @example Plan a zstd-compressed dump that excludes every page class, retried at level 31 if it does not fit
 * ```ts
 * import { openInput, planDump } from "@vmsift/vmsift";
 *
 * const path = Deno.args[0];
 * if (path !== undefined) {
 *   const input = openInput(path);
 *   try {
 *     const plan = await planDump(input, {
 *       dumpLevel: 1,
 *       fallbackLevels: [31],
 *       codec: "zstd",
 *       sizeLimit: 512 << 20,
 *     });
 *     console.log(plan.levels, plan.codec?.name);
 *   } finally {
 *     input.close();
 *   }
 * }
 * ```
 */
export async function planDump(input: DumpInput, opts: DumpOptions): Promise<DumpPlan> {
  const form = opts.form ?? "kdump";
  if (form === "elf" && input.format !== "elf") {
    throw new VmsiftError("-E cannot re-filter a kdump-compressed input", { file: input.path });
  }
  const levels = [opts.dumpLevel, ...(opts.fallbackLevels ?? [])];
  for (const l of levels) {
    if (!Number.isInteger(l) || l < 0 || l > 31) {
      throw new VmsiftError(`dump level ${l} is not an integer from 0 to 31`, { file: input.path });
    }
  }
  const codec = typeof opts.codec === "string"
    ? await createCodecAsync(opts.codec, 4096, { impl: opts.codecEngine })
    : opts.codec ?? null;
  return {
    input,
    levels,
    codec,
    form,
    splitblockSize: opts.splitblockSize,
    bitmapBudget: opts.bitmapBudget ?? DEFAULT_BITMAP_BUDGET,
    bitmapDir: opts.bitmapDir,
    directIo: opts.directIo ?? false,
    imageGuard: opts.imageGuard ?? true,
    excludeVmemmap: opts.excludeVmemmap ?? false,
    sizeLimit: opts.sizeLimit,
    markIncomplete: opts.markIncomplete ?? true,
    threads: opts.threads ?? 1,
    erase: opts.erase,
  };
}
