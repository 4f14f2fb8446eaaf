/**
 * Opening the input of a dump: the vmcore and its VMCOREINFO (from the note, or from -i FILE).
 */
import { VmsiftError } from "../core/errors.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";
import { ElfCore } from "../formats/elfCore.ts";

/** Exit status of makedumpfile when the VMCOREINFO file's release does not match the dump. */
export const EXIT_WRONG_RELEASE = 2;

/** The opened vmcore and the VMCOREINFO to use. */
export interface DumpInput {
  core: ElfCore;
  info: VmcoreInfo;
  /** Offset of the VMCOREINFO desc text inside the copied notes, or -1 when the vmcore has no such note. */
  vmcoreinfoOffsetInNotes: number;
  vmcoreinfoSize: number;
}

/** Open VMCORE; take VMCOREINFO from `vmcoreinfoFile` when given, else from the vmcore's note. */
export function openDumpInput(
  vmcore: string,
  vmcoreinfoFile?: string,
  opts: { mmap?: boolean } = {},
): DumpInput {
  const core = ElfCore.open(vmcore, { mmap: opts.mmap });
  try {
    const note = core.vmcoreinfoNote;
    const noteInfo = note
      ? VmcoreInfo.parse(new TextDecoder().decode(note.desc), `${vmcore} (VMCOREINFO note)`)
      : undefined;
    let info: VmcoreInfo;
    if (vmcoreinfoFile !== undefined) {
      let text: string;
      try {
        text = Deno.readTextFileSync(vmcoreinfoFile);
      } catch (e) {
        throw new VmsiftError(`cannot read VMCOREINFO file: ${(e as Error).message}`, {
          file: vmcoreinfoFile,
        });
      }
      info = VmcoreInfo.parse(text, vmcoreinfoFile);
      if (info.osrelease === undefined) {
        throw new VmsiftError("VMCOREINFO file has no OSRELEASE line", { file: vmcoreinfoFile });
      }
      if (noteInfo?.osrelease !== undefined && noteInfo.osrelease !== info.osrelease) {
        throw new VmsiftError(
          `OSRELEASE ${info.osrelease} does not match the vmcore's ${noteInfo.osrelease}`,
          { file: vmcoreinfoFile },
          EXIT_WRONG_RELEASE,
        );
      }
    } else {
      if (!noteInfo) {
        throw new VmsiftError("the vmcore has no VMCOREINFO note; give one with -i VMCOREINFO", {
          file: vmcore,
          offset: core.noteSegment.fileOffset,
        });
      }
      info = noteInfo;
    }
    // PAGESIZE is checked by the architecture (core/arch): 4096 on x86_64, 4/16/64 KiB on arm64.
    return {
      core,
      info,
      vmcoreinfoOffsetInNotes: note ? note.descFileOffset - core.noteSegment.fileOffset : -1,
      vmcoreinfoSize: note ? note.desc.length : 0,
    };
  } catch (e) {
    core.close();
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
