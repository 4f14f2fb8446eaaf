/**
 * The test oracle for erased secrets: every occurrence of some byte strings in the memory an ELF dump
 * holds (its PT_LOAD contents), by physical address. Independent of vmsift's readers (its own program
 * header walk); node:buffer's indexOf does the search.
 */
import { Buffer } from "node:buffer";

/** One occurrence. */
export interface KeyHit {
  /** The needle's name. */
  name: string;
  /** Physical address of its first byte. */
  paddr: number;
}

const CHUNK = 64 << 20;

/** Every occurrence of every needle in the PT_LOAD contents of the ELF64 little-endian file `path`. */
export function scanElf(path: string, needles: [string, Uint8Array][]): KeyHit[] {
  const f = Deno.openSync(path);
  try {
    const read = (off: number, buf: Uint8Array) => {
      f.seekSync(off, Deno.SeekMode.Start);
      let got = 0;
      while (got < buf.length) {
        const n = f.readSync(buf.subarray(got));
        if (n === null) break;
        got += n;
      }
      return got;
    };
    const hdr = new Uint8Array(64);
    read(0, hdr);
    const dv = new DataView(hdr.buffer);
    const phoff = Number(dv.getBigUint64(32, true)), phnum = dv.getUint16(56, true);
    const ph = new Uint8Array(56 * phnum);
    read(phoff, ph);
    const pv = new DataView(ph.buffer);
    const longest = Math.max(...needles.map(([, n]) => n.length));
    const hits: KeyHit[] = [];
    for (let i = 0; i < phnum; i++) {
      const o = i * 56;
      if (pv.getUint32(o, true) !== 1) continue; // PT_LOAD
      const off = Number(pv.getBigUint64(o + 8, true)), pa = Number(pv.getBigUint64(o + 24, true));
      const size = Number(pv.getBigUint64(o + 32, true));
      for (let c = 0; c < size; c += CHUNK) {
        // Overlap the next chunk by the longest needle so that nothing is missed or found twice.
        const buf = Buffer.alloc(Math.min(size - c, CHUNK + longest - 1));
        const got = read(off + c, buf);
        const own = Math.min(got, CHUNK);
        for (const [name, needle] of needles) {
          for (let at = buf.indexOf(needle); at >= 0 && at < own; at = buf.indexOf(needle, at + 1)) {
            if (at + needle.length <= got) hits.push({ name, paddr: pa + c + at });
          }
        }
      }
    }
    return hits.sort((a, b) => a.paddr - b.paddr);
  } finally {
    f.close();
  }
}
