/**
 * A /proc/kcore look-alike made from an ELF vmcore, for --mem-usage tests: the vmcore's RAM as direct-map
 * PT_LOADs (p_vaddr = PAGE_OFFSET + paddr, p_paddr = paddr), plus what a real kcore also has and a reader
 * must skip: the kernel text mapped again above __START_KERNEL_map with its physical address (it overlaps
 * RAM), a vmalloc segment and a vmemmap segment with p_paddr = -1 (offsets point at zeros).
 */
import { ElfCore } from "../../formats/elfCore.ts";

const PAGE_OFFSET = 0xffff888000000000n;
const DATA_START = 1 << 20;

/** Options of writeFakeKcore. */
export interface FakeKcoreOptions {
  /** Leave the VMCOREINFO note out (as kernels before 4.19 do), keeping the other notes. */
  withoutVmcoreinfo?: boolean;
}

/** Write the kcore look-alike of `vmcore` to `out`. */
export function writeFakeKcore(vmcore: string, out: string, opts: FakeKcoreOptions = {}): void {
  const core = ElfCore.open(vmcore, { mmap: false });
  try {
    const notes = notesBytes(core, opts.withoutVmcoreinfo ?? false);
    type Ph = { type: number; offset: number; vaddr: bigint; paddr: bigint; size: number };
    const phs: Ph[] = [];
    let pos = DATA_START;
    phs.push({ type: 4, offset: pos, vaddr: 0n, paddr: 0n, size: notes.length });
    pos += Math.ceil(notes.length / 4096) * 4096;
    const ram: Array<{ at: number; seg: (typeof core.segments)[number] }> = [];
    for (const s of core.segments) {
      phs.push({
        type: 1,
        offset: pos,
        vaddr: PAGE_OFFSET + BigInt(s.paddr),
        paddr: BigInt(s.paddr),
        size: s.memSize,
      });
      ram.push({ at: pos, seg: s });
      pos += Math.ceil(s.memSize / 4096) * 4096;
    }
    // the kernel text again (16 MiB at physical 16 MiB, inside RAM), vmalloc and vmemmap (no paddr)
    const text = ram.find((r) => r.seg.paddr <= 16 << 20 && r.seg.paddr + r.seg.memSize >= 32 << 20);
    if (text) {
      phs.push({
        type: 1,
        offset: text.at + (16 << 20) - text.seg.paddr,
        vaddr: 0xffffffff81000000n,
        paddr: 16n << 20n,
        size: 16 << 20,
      });
    }
    phs.push({ type: 1, offset: pos, vaddr: 0xffffc90000000000n, paddr: 0xffffffffffffffffn, size: 1 << 20 });
    phs.push({ type: 1, offset: pos, vaddr: 0xffffea0000000000n, paddr: 0xffffffffffffffffn, size: 1 << 20 });
    const fileSize = pos + (1 << 20);
    const head = new Uint8Array(64 + phs.length * 56);
    const dv = new DataView(head.buffer);
    head.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
    dv.setUint16(16, 4, true); // ET_CORE
    dv.setUint16(18, 62, true); // EM_X86_64
    dv.setUint32(20, 1, true);
    dv.setBigUint64(32, 64n, true);
    dv.setUint16(52, 64, true);
    dv.setUint16(54, 56, true);
    dv.setUint16(56, phs.length, true);
    phs.forEach((p, i) => {
      const b = 64 + i * 56;
      dv.setUint32(b, p.type, true);
      dv.setUint32(b + 4, 7, true);
      dv.setBigUint64(b + 8, BigInt(p.offset), true);
      dv.setBigUint64(b + 16, p.vaddr, true);
      dv.setBigUint64(b + 24, p.paddr, true);
      dv.setBigUint64(b + 32, BigInt(p.size), true);
      dv.setBigUint64(b + 40, BigInt(p.size), true);
      dv.setBigUint64(b + 48, 4096n, true);
    });
    const f = Deno.openSync(out, { write: true, create: true, truncate: true });
    try {
      f.truncateSync(fileSize);
      writeAt(f, 0, head);
      writeAt(f, DATA_START, notes);
      const buf = new Uint8Array(8 << 20);
      for (const { at, seg } of ram) {
        for (let done = 0; done < seg.memSize; done += buf.length) {
          const n = Math.min(buf.length, seg.memSize - done);
          if (!core.readPhys(seg.paddr + done, buf.subarray(0, n))) throw new Error("unreadable segment");
          writeAt(f, at + done, buf.subarray(0, n));
        }
      }
    } finally {
      f.close();
    }
  } finally {
    core.close();
  }
}

/** The vmcore's notes re-encoded (optionally without VMCOREINFO). */
function notesBytes(core: ElfCore, withoutVmcoreinfo: boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const n of core.notes) {
    if (withoutVmcoreinfo && n.name === "VMCOREINFO") continue;
    const name = new TextEncoder().encode(n.name + "\0");
    const len = 12 + align4(name.length) + align4(n.desc.length);
    const b = new Uint8Array(len);
    const dv = new DataView(b.buffer);
    dv.setUint32(0, name.length, true);
    dv.setUint32(4, n.desc.length, true);
    dv.setUint32(8, n.type, true);
    b.set(name, 12);
    b.set(n.desc, 12 + align4(name.length));
    parts.push(b);
  }
  const all = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}

function writeAt(f: Deno.FsFile, offset: number, bytes: Uint8Array): void {
  f.seekSync(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < bytes.length) done += f.writeSync(bytes.subarray(done));
}

/**
 * Physical address of the kernel's own VMCOREINFO ELF note inside the vmcore's memory (what
 * /sys/kernel/vmcoreinfo names): the note header + "VMCOREINFO\0" followed by the first bytes of the text.
 */
export function findVmcoreinfoNote(vmcore: string): { paddr: number; size: number } | undefined {
  const core = ElfCore.open(vmcore, { mmap: false });
  try {
    const desc = core.vmcoreinfoNote!.desc;
    const pattern = new Uint8Array([11, 0, 0, 0]);
    const name = new TextEncoder().encode("VMCOREINFO\0");
    const head = desc.subarray(0, 32);
    const chunk = new Uint8Array(8 << 20);
    for (const s of core.segments) {
      for (let off = 0; off < s.memSize; off += chunk.length - 64) {
        const n = Math.min(chunk.length, s.memSize - off);
        const c = chunk.subarray(0, n);
        if (!core.readPhys(s.paddr + off, c)) continue;
        for (let i = c.indexOf(11); i >= 0 && i + 56 <= n; i = c.indexOf(11, i + 1)) {
          if (!eq(c, i, pattern) || !eq(c, i + 12, name) || !eq(c, i + 24, head)) continue;
          const descsz = new DataView(c.buffer, c.byteOffset + i + 4, 4).getUint32(0, true);
          return { paddr: s.paddr + off + i, size: 24 + align4(descsz) + 12 };
        }
      }
    }
    return undefined;
  } finally {
    core.close();
  }
}

function eq(buf: Uint8Array, at: number, pat: Uint8Array): boolean {
  if (at + pat.length > buf.length) return false;
  for (let i = 0; i < pat.length; i++) if (buf[at + i] !== pat[i]) return false;
  return true;
}
