/**
 * Re-lays an ELF vmcore out in the shape /proc/vmcore has under kexec (see
 * ../shared/fixtures/kexec-headers/README.md): the PT_NOTE at 0x1000, a PT_LOAD for the kernel image first
 * (p_vaddr in the kernel text mapping, its physical range inside a System RAM load, its bytes a second copy
 * of the same memory), then the System RAM loads with direct-map p_vaddr, each starting in the file at the
 * same offset within a page as its p_paddr, and the file holding whole pages (the bytes past a partial last
 * page are the real memory there, as /proc/vmcore reads them). Physical ranges missing from `ram` (the crash
 * kernel's reservation) are holes.
 */
import { ElfCore } from "../../formats/elfCore.ts";

/** One load of the new layout. */
export interface KexecLoad {
  paddr: number;
  size: number;
  vaddr: bigint;
}

/** What {@link writeKexecVmcore} needs. */
export interface KexecShape {
  /** The kernel-image load (written first). */
  image: KexecLoad;
  /** System RAM loads, sorted. */
  ram: KexecLoad[];
}

const PAGE = 4096;

/**
 * The shape used for the real 6.1 fixture (128 MiB guest, KASLR): image [_text, _end) = 0x1000000 +
 * 0x3430000 at SYMBOL(_stext); RAM 0x1000-0x9fc00 (partial last page), 0x100000 up to a 16 MiB "crash
 * kernel" hole at 0x5000000, and the rest up to 0x7fe0000 (e820 keeps the top 128 KiB), direct map at
 * 0xffff8cebc0000000.
 */
export function realFixtureKexecShape(): KexecShape {
  const po = 0xffff8cebc0000000n;
  const ram = (a: number, b: number): KexecLoad => ({ paddr: a, size: b - a, vaddr: po + BigInt(a) });
  return {
    image: { paddr: 0x1000000, size: 0x3430000, vaddr: 0xffffffff9d400000n },
    ram: [ram(0x1000, 0x9fc00), ram(0x100000, 0x5000000), ram(0x6000000, 0x7fe0000)],
  };
}

/** Write `src`'s memory to `out` in the kexec shape. Returns the number of PT_LOADs written. */
export function writeKexecVmcore(src: string, out: string, shape: KexecShape): number {
  const core = ElfCore.open(src);
  const loads = [shape.image, ...shape.ram];
  const phnum = 1 + loads.length;
  const notes = core.noteSegment.bytes;
  const noteOff = 0x1000;
  let cursor = noteOff + Math.ceil(notes.length / PAGE) * PAGE;
  const offsets: number[] = [];
  for (const l of loads) {
    const start = l.paddr - (l.paddr % PAGE);
    const end = Math.ceil((l.paddr + l.size) / PAGE) * PAGE;
    offsets.push(cursor + (l.paddr - start));
    cursor += end - start;
  }
  const head = new Uint8Array(noteOff);
  const dv = new DataView(head.buffer);
  core.file.readExact(0, head.subarray(0, 64));
  dv.setBigUint64(32, 64n, true); // e_phoff
  dv.setBigUint64(40, 0n, true); // no section headers
  dv.setUint16(58, 0, true);
  dv.setUint16(60, 0, true);
  dv.setUint16(62, 0, true);
  dv.setUint16(56, phnum, true);
  let ph = 64;
  dv.setUint32(ph, 4, true);
  dv.setBigUint64(ph + 8, BigInt(noteOff), true);
  dv.setBigUint64(ph + 32, BigInt(notes.length), true);
  dv.setBigUint64(ph + 40, BigInt(notes.length), true);
  loads.forEach((l, i) => {
    ph += 56;
    dv.setUint32(ph, 1, true);
    dv.setUint32(ph + 4, 7, true); // RWX, as kexec writes
    dv.setBigUint64(ph + 8, BigInt(offsets[i]), true);
    dv.setBigUint64(ph + 16, l.vaddr, true);
    dv.setBigUint64(ph + 24, BigInt(l.paddr), true);
    dv.setBigUint64(ph + 32, BigInt(l.size), true);
    dv.setBigUint64(ph + 40, BigInt(l.size), true);
  });
  const f = Deno.openSync(out, { write: true, create: true, truncate: true });
  try {
    f.writeSync(head);
    writeAll(f, noteOff, notes);
    const buf = new Uint8Array(1 << 20);
    loads.forEach((l, i) => {
      // Whole pages, from the page holding p_paddr to the page holding the last byte.
      const start = l.paddr - (l.paddr % PAGE);
      const end = Math.ceil((l.paddr + l.size) / PAGE) * PAGE;
      const fileStart = offsets[i] - (l.paddr - start);
      for (let p = start; p < end; p += buf.length) {
        const n = Math.min(buf.length, end - p);
        if (!core.readPhys(p, buf.subarray(0, n))) throw new Error(`source lacks 0x${p.toString(16)}+${n}`);
        writeAll(f, fileStart + (p - start), buf.subarray(0, n));
      }
    });
  } finally {
    f.close();
    core.close();
  }
  return loads.length;
}

function writeAll(f: Deno.FsFile, offset: number, data: Uint8Array): void {
  f.seekSync(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < data.length) done += f.writeSync(data.subarray(done));
}
