/**
 * Opening the input of a dump: a probe table of input formats (ELF vmcore, kdump-compressed, flattened
 * kdump; as libkdumpfile's format_ops), each opened with the VMCOREINFO to use (the dump's own, or -i FILE
 * checked against the dump's OSRELEASE).
 */
import { VmsiftError } from "../core/errors.ts";
import type { PhysicalMemory } from "../core/physMem.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";
import { ElfCore } from "../formats/elfCore.ts";
import { hasFlatSignature } from "../formats/flatReader.ts";
import { isKdumpHead } from "../formats/kdump/header.ts";
import { type KdumpInput, openKdumpInput } from "../formats/kdump/inputKdump.ts";
import { PositionalFile } from "../io/positionalFile.ts";

/** Exit status of makedumpfile when the VMCOREINFO file's release does not match the dump. */
const EXIT_WRONG_RELEASE = 2;

/** The formats a dump can be made from. */
export type InputFormat = "elf" | "kdump" | "flattened";

/** Options of {@link openInput}. */
export interface OpenInputOptions {
  /** `-i FILE`: VMCOREINFO to use instead of the dump's (its OSRELEASE must match the dump's). */
  vmcoreinfoFile?: string;
  /** Read an ELF vmcore through mmap (default true; makedumpfile's --non-mmap turns it off). */
  mmap?: boolean;
}

/** An ELF vmcore (/proc/vmcore, QEMU dump-guest-memory, makedumpfile -E) and the VMCOREINFO to use. */
export interface ElfDumpInput {
  /** Always "elf". */
  readonly format: "elf";
  /** The path it was opened from. */
  readonly path: string;
  /** The ELF reader (segments, notes, headers). */
  readonly core: ElfCore;
  /** The vmcore's memory (the same object as `core`). */
  readonly mem: PhysicalMemory;
  /** The VMCOREINFO used: the vmcore's note, or the `-i` file. */
  readonly info: VmcoreInfo;
  /** Offset of the VMCOREINFO desc text inside the copied notes, or -1 when the vmcore has no such note. */
  readonly vmcoreinfoOffsetInNotes: number;
  /** Length of the VMCOREINFO desc text, 0 without the note. */
  readonly vmcoreinfoSize: number;
  /** Close the file. */
  close(): void;
}

/** A kdump-compressed or flattened kdump file to re-filter, and the VMCOREINFO to use. */
export interface KdumpDumpInput {
  /** "kdump", or "flattened" for makedumpfile's -F stream. */
  readonly format: "kdump" | "flattened";
  /** The path it was opened from. */
  readonly path: string;
  /** The dump's headers, bitmaps, notes and pages. */
  readonly kdump: KdumpInput;
  /** The dump's pages (absent pages read as zeros). */
  readonly mem: PhysicalMemory;
  /** The VMCOREINFO used: the dump's own, or the `-i` file. */
  readonly info: VmcoreInfo;
  /** Close the file. */
  close(): void;
}

/** An opened input of a dump; `close()` it when done. */
export type DumpInput = ElfDumpInput | KdumpDumpInput;

/** One entry of the probe table: how to recognise a format from its first bytes, and how to open it. */
export interface InputFormatOps {
  /** The format's name. */
  readonly name: InputFormat;
  /** True when `head` (the first 32 bytes of the file, fewer when it is shorter) is this format's. */
  probe(head: Uint8Array): boolean;
  /** Open `path`, known to be of this format. */
  open(path: string, opts: OpenInputOptions): DumpInput;
}

/** The formats {@link openInput} recognises, tried in order. */
export const INPUT_FORMATS: readonly InputFormatOps[] = [
  { name: "elf", probe: ElfCore.sniff, open: (path, opts) => openElfInput(path, opts.vmcoreinfoFile, opts) },
  { name: "kdump", probe: isKdumpHead, open: (path, opts) => openKdumpFileInput(path, opts) },
  { name: "flattened", probe: hasFlatSignature, open: (path, opts) => openKdumpFileInput(path, opts) },
];

/**
 * Open the input of a dump, whatever its format (the probe table {@link INPUT_FORMATS}; a file no entry
 * recognises is opened as ELF, whose reader says what is wrong with it). Throws VmsiftError.
 *
 * @example Open a vmcore and print its kernel release
 * ```ts
 * import { openInput } from "@vmsift/vmsift";
 *
 * const path = Deno.args[0]; // e.g. /proc/vmcore, or a kdump-compressed file
 * if (path !== undefined) {
 *   const input = openInput(path);
 *   try {
 *     console.log(input.format, input.info.osrelease);
 *   } finally {
 *     input.close();
 *   }
 * }
 * ```
 */
export function openInput(path: string, opts: OpenInputOptions = {}): DumpInput {
  const head = readHead(path);
  const ops = INPUT_FORMATS.find((f) => f.probe(head)) ?? INPUT_FORMATS[0];
  return ops.open(path, opts);
}

/** The first 32 bytes of `path` (fewer when it is shorter); nothing when it cannot be read. */
function readHead(path: string): Uint8Array {
  let f: PositionalFile;
  try {
    f = PositionalFile.open(path);
  } catch {
    return new Uint8Array(0); // the format's own open reports the error
  }
  try {
    const h = new Uint8Array(32);
    return h.subarray(0, f.readAt(0, h));
  } finally {
    f.close();
  }
}

/**
 * Read `-i FILE` (VMCOREINFO text, as `makedumpfile -g` writes it). Its OSRELEASE must be there and match
 * the dump's (`dumpInfo`, when the dump has VMCOREINFO), else VmsiftError (exit status 2 on a mismatch,
 * as makedumpfile).
 */
export function readVmcoreinfoFile(path: string, dumpInfo?: VmcoreInfo): VmcoreInfo {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    throw new VmsiftError(`cannot read VMCOREINFO file: ${(e as Error).message}`, { file: path });
  }
  const info = VmcoreInfo.parse(text, path);
  if (info.osrelease === undefined) {
    throw new VmsiftError("VMCOREINFO file has no OSRELEASE line", { file: path });
  }
  if (dumpInfo?.osrelease !== undefined && dumpInfo.osrelease !== info.osrelease) {
    throw new VmsiftError(
      `OSRELEASE ${info.osrelease} does not match the vmcore's ${dumpInfo.osrelease}`,
      { file: path },
      EXIT_WRONG_RELEASE,
    );
  }
  return info;
}

/** Open an ELF VMCORE; take VMCOREINFO from `vmcoreinfoFile` when given, else from the vmcore's note. */
export function openElfInput(
  vmcore: string,
  vmcoreinfoFile?: string,
  opts: { mmap?: boolean } = {},
): ElfDumpInput {
  const core = ElfCore.open(vmcore, { mmap: opts.mmap });
  try {
    const note = core.vmcoreinfoNote;
    const noteInfo = note
      ? VmcoreInfo.parse(new TextDecoder().decode(note.desc), `${vmcore} (VMCOREINFO note)`)
      : undefined;
    let info: VmcoreInfo;
    if (vmcoreinfoFile !== undefined) {
      info = readVmcoreinfoFile(vmcoreinfoFile, noteInfo);
    } else {
      if (!noteInfo) {
        throw new VmsiftError("the vmcore has no VMCOREINFO note; give one with -i VMCOREINFO", {
          file: vmcore,
          offset: core.noteSegment.fileOffset,
        });
      }
      info = noteInfo;
    }
    const pageSize = info.pageSize;
    if (pageSize !== undefined && pageSize !== 4096) {
      throw new VmsiftError(`PAGESIZE ${pageSize} is not supported (x86_64 uses 4096)`, {
        file: info.source,
      });
    }
    return {
      format: "elf",
      path: vmcore,
      core,
      mem: core,
      info,
      vmcoreinfoOffsetInNotes: note ? note.descFileOffset - core.noteSegment.fileOffset : -1,
      vmcoreinfoSize: note ? note.desc.length : 0,
      close: () => core.close(),
    };
  } catch (e) {
    core.close();
    throw e;
  }
}

/**
 * Open a kdump-compressed or flattened file to re-filter, with its VMCOREINFO (offset_vmcoreinfo or the
 * VMCOREINFO note), or `-i FILE` checked against it.
 */
function openKdumpFileInput(
  path: string,
  opts: Pick<OpenInputOptions, "vmcoreinfoFile"> = {},
): KdumpDumpInput {
  const kdump = openKdumpInput(path);
  try {
    const text = kdump.vmcoreinfoText;
    const own = () => text === undefined ? undefined : VmcoreInfo.parse(text, `${path} (VMCOREINFO)`);
    let info: VmcoreInfo | undefined;
    if (opts.vmcoreinfoFile !== undefined) {
      let dumpInfo: VmcoreInfo | undefined;
      try {
        dumpInfo = own();
      } catch { /* the dump's own VMCOREINFO is broken: -i replaces it, nothing to compare with */ }
      info = readVmcoreinfoFile(opts.vmcoreinfoFile, dumpInfo);
    } else info = own();
    if (info === undefined) {
      throw new VmsiftError(
        "the dump has no VMCOREINFO (no offset_vmcoreinfo, no VMCOREINFO note); give -i",
        {
          file: path,
        },
      );
    }
    if (info.pageSize !== undefined && info.pageSize !== kdump.pageSize) {
      throw new VmsiftError(
        `PAGESIZE ${info.pageSize} differs from the dump's block size ${kdump.pageSize}`,
        {
          file: path,
        },
      );
    }
    return { format: kdump.format, path, kdump, mem: kdump.mem, info, close: () => kdump.close() };
  } catch (e) {
    kdump.close();
    throw e;
  }
}

/** True when something (file, link, directory) exists at `path`. */
export function pathExists(path: string): boolean {
  try {
    Deno.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}
