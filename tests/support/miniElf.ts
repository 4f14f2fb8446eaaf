/**
 * Builds small ELF64 x86_64 core files in memory for tests: given PT_LOAD segments (paddr + bytes) and
 * notes, returns the file bytes. Program headers go at `phoff` (64 normally, 192 for QEMU 7.2's layout).
 */
export interface MiniSegment {
  paddr: number;
  data: Uint8Array;
  /** p_memsz when larger than data (defaults to data.length). */
  memSize?: number;
}

export interface MiniNote {
  name: string;
  type: number;
  desc: Uint8Array;
}

const align4 = (n: number) => (n + 3) & ~3;

/** Encode notes as a PT_NOTE blob. */
export function encodeNotes(notes: MiniNote[]): Uint8Array {
  const enc = new TextEncoder();
  let size = 0;
  for (const n of notes) size += 12 + align4(enc.encode(n.name).length + 1) + align4(n.desc.length);
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  let p = 0;
  for (const n of notes) {
    const name = enc.encode(n.name);
    dv.setUint32(p, name.length + 1, true);
    dv.setUint32(p + 4, n.desc.length, true);
    dv.setUint32(p + 8, n.type, true);
    out.set(name, p + 12);
    p += 12 + align4(name.length + 1);
    out.set(n.desc, p);
    p += align4(n.desc.length);
  }
  return out;
}

/** The whole ELF core file. */
export function buildElfCore(
  segments: MiniSegment[],
  notes: MiniNote[],
  opts: { phoff?: number } = {},
): Uint8Array {
  const phoff = opts.phoff ?? 64;
  const phnum = segments.length + 1;
  const noteBytes = encodeNotes(notes);
  const noteOff = phoff + phnum * 56;
  let dataOff = noteOff + noteBytes.length;
  const offsets: number[] = [];
  for (const s of segments) {
    offsets.push(dataOff);
    dataOff += s.data.length;
  }
  const out = new Uint8Array(dataOff);
  const dv = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0]);
  dv.setUint16(16, 4, true); // ET_CORE
  dv.setUint16(18, 62, true); // EM_X86_64
  dv.setUint32(20, 1, true);
  dv.setBigUint64(32, BigInt(phoff), true);
  dv.setUint16(52, 64, true);
  dv.setUint16(54, 56, true);
  dv.setUint16(56, phnum, true);
  let ph = phoff;
  dv.setUint32(ph, 4, true); // PT_NOTE
  dv.setBigUint64(ph + 8, BigInt(noteOff), true);
  dv.setBigUint64(ph + 32, BigInt(noteBytes.length), true);
  dv.setBigUint64(ph + 40, BigInt(noteBytes.length), true);
  out.set(noteBytes, noteOff);
  segments.forEach((s, i) => {
    ph += 56;
    dv.setUint32(ph, 1, true); // PT_LOAD
    dv.setUint32(ph + 4, 7, true);
    dv.setBigUint64(ph + 8, BigInt(offsets[i]), true);
    dv.setBigUint64(ph + 16, BigInt(s.paddr), true);
    dv.setBigUint64(ph + 24, BigInt(s.paddr), true);
    dv.setBigUint64(ph + 32, BigInt(s.data.length), true);
    dv.setBigUint64(ph + 40, BigInt(s.memSize ?? s.data.length), true);
    out.set(s.data, offsets[i]);
  });
  return out;
}
