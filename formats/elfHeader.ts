/**
 * The ELF64 header of a core file and its program-header table, checked and read: the part shared by the
 * vmcore reader (formats/elfCore.ts) and the /proc/kcore reader (formats/kcore.ts). What each program header
 * means is left to the caller.
 */
import { VmsiftError } from "../core/errors.ts";
import type { PositionalFile } from "../io/positionalFile.ts";

/** p_type of a loadable segment. */
export const PT_LOAD = 1;
/** p_type of a note segment. */
export const PT_NOTE = 4;
/** e_machine of x86_64. */
export const EM_X86_64 = 62;
/** e_machine of arm64. */
export const EM_AARCH64 = 183;
/** makedumpfile's NOT_PADDR: a PT_LOAD with no physical address. */
export const NOT_PADDR = 0xffffffffffffffffn;
/** Size of one ELF64 program header. */
export const PHDR_SIZE = 56;
const ET_CORE = 4;
const PN_XNUM = 0xffff;

/** The checked ELF header of a core and its program headers' bytes. */
export interface ElfCoreTable {
  /** e_machine: 62 (x86_64) or 183 (arm64). */
  machine: number;
  /** e_flags. */
  eFlags: number;
  /** File offset of the program headers (e_phoff). */
  phoff: number;
  /** Number of program headers (from section header 0 when e_phnum is PN_XNUM). */
  phnum: number;
  /** The program headers, phnum x 56 bytes, little-endian. */
  phdrs: DataView;
}

/**
 * Read and check the ELF header of an ELF64 little-endian x86_64 or arm64 core and read its program headers
 * (at most `maxPhnum` of them). Throws VmsiftError naming the file and offset on anything malformed.
 */
export function readElfCoreTable(
  file: Pick<PositionalFile, "path" | "size" | "readExact">,
  opts: { maxPhnum: number },
): ElfCoreTable {
  const path = file.path;
  if (file.size < 64) {
    throw new VmsiftError(`not an ELF file: only ${file.size} bytes`, { file: path, offset: 0 });
  }
  const eh = new Uint8Array(64);
  file.readExact(0, eh);
  if (eh[0] !== 0x7f || eh[1] !== 0x45 || eh[2] !== 0x4c || eh[3] !== 0x46) {
    throw new VmsiftError("not an ELF file (bad magic)", { file: path, offset: 0 });
  }
  if (eh[4] === 1) {
    throw new VmsiftError(
      "ELF32 vmcore (EI_CLASS 1) is not supported: vmsift reads ELF64 only; load the crash kernel without " +
        "kexec's --elf32-core-headers",
      { file: path, offset: 4 },
    );
  }
  if (eh[4] !== 2) throw new VmsiftError(`not ELF64 (EI_CLASS ${eh[4]})`, { file: path, offset: 4 });
  if (eh[5] !== 1) throw new VmsiftError(`not little-endian (EI_DATA ${eh[5]})`, { file: path, offset: 5 });
  const dv = new DataView(eh.buffer);
  const type = dv.getUint16(16, true);
  const machine = dv.getUint16(18, true);
  if (type !== ET_CORE) {
    throw new VmsiftError(`not an ELF core file (e_type ${type})`, { file: path, offset: 16 });
  }
  if (machine !== EM_X86_64 && machine !== EM_AARCH64) {
    throw new VmsiftError(`unsupported machine ${machine} (x86_64 = 62, arm64 = 183)`, {
      file: path,
      offset: 18,
    });
  }
  const phoff = u64n(dv, 32, path);
  const shoff = u64n(dv, 40, path);
  const eFlags = dv.getUint32(48, true);
  const phentsize = dv.getUint16(54, true);
  let phnum = dv.getUint16(56, true);
  const shentsize = dv.getUint16(58, true);
  if (phentsize !== PHDR_SIZE) {
    throw new VmsiftError(`e_phentsize is ${phentsize}, expected 56`, { file: path, offset: 54 });
  }
  if (phnum === PN_XNUM) {
    // Real count in section header 0's sh_info.
    if (shoff === 0 || shentsize < 64 || shoff + 64 > file.size) {
      throw new VmsiftError("e_phnum is PN_XNUM but there is no section header 0", {
        file: path,
        offset: 56,
      });
    }
    const sh = new Uint8Array(64);
    file.readExact(shoff, sh);
    phnum = new DataView(sh.buffer).getUint32(44, true);
  }
  if (phnum === 0) throw new VmsiftError("no program headers (e_phnum 0)", { file: path, offset: 56 });
  if (phnum > opts.maxPhnum) {
    throw new VmsiftError(`e_phnum ${phnum} is implausible`, { file: path, offset: 56 });
  }
  if (phoff + phnum * PHDR_SIZE > file.size) {
    throw new VmsiftError(
      `program headers (${phnum} x 56 bytes at 0x${
        phoff.toString(16)
      }) are truncated: file is ${file.size} bytes`,
      { file: path, offset: phoff },
    );
  }
  const ph = new Uint8Array(phnum * PHDR_SIZE);
  file.readExact(phoff, ph);
  return { machine, eFlags, phoff, phnum, phdrs: new DataView(ph.buffer) };
}

/** The little-endian u64 at `at` as a number; throws (naming `fileOffset`) when it is not a safe integer. */
export function u64n(dv: DataView, at: number, file: string, fileOffset = at): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new VmsiftError(`64-bit field 0x${v.toString(16)} is out of range`, { file, offset: fileOffset });
  }
  return Number(v);
}
