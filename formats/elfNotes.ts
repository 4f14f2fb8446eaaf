import { VmsiftError } from "../core/errors.ts";

/** NT_PRSTATUS, the per-CPU register note type. */
export const NT_PRSTATUS = 1;

/** One ELF note, with where its desc sits in the file (for offset_vmcoreinfo). */
export interface ElfNote {
  /** Note name ("CORE", "VMCOREINFO", ...). */
  name: string;
  /** Note type (n_type). */
  type: number;
  /** The descriptor bytes. */
  desc: Uint8Array;
  /** File offset of the desc bytes (note segment offset + position inside it). */
  descFileOffset: number;
}

/**
 * Parse a PT_NOTE segment's bytes (Elf64_Nhdr: namesz, descsz, type, then name and desc each padded to 4).
 * `fileOffset` is where `bytes` starts in `file`. Stops at trailing zero padding (namesz=descsz=type=0),
 * which /proc/vmcore leaves at the end of per-CPU note buffers.
 */
export function parseNotes(bytes: Uint8Array, fileOffset: number, file: string): ElfNote[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const notes: ElfNote[] = [];
  let pos = 0;
  while (pos + 12 <= bytes.length) {
    const namesz = dv.getUint32(pos, true);
    const descsz = dv.getUint32(pos + 4, true);
    const type = dv.getUint32(pos + 8, true);
    if (namesz === 0 && descsz === 0 && type === 0) break;
    const nameStart = pos + 12;
    const descStart = nameStart + align4(namesz);
    const end = descStart + align4(descsz);
    if (namesz > bytes.length || descsz > bytes.length || descStart + descsz > bytes.length) {
      throw new VmsiftError(
        `ELF note (namesz ${namesz}, descsz ${descsz}) runs past the end of the PT_NOTE segment`,
        { file, offset: fileOffset + pos },
      );
    }
    let nameEnd = nameStart + namesz;
    while (nameEnd > nameStart && bytes[nameEnd - 1] === 0) nameEnd--;
    const name = new TextDecoder().decode(bytes.subarray(nameStart, nameEnd));
    notes.push({
      name,
      type,
      desc: bytes.subarray(descStart, descStart + descsz),
      descFileOffset: fileOffset + descStart,
    });
    pos = Math.min(end, bytes.length);
  }
  return notes;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
