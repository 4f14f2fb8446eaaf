/**
 * `describeDump`: what is in a kdump-compressed file (header, sub header, bitmaps, descriptors, codec mix),
 * as an object and as text. Descriptors are read in chunks of 64 Ki entries.
 */
import { flagName, KdumpFile } from "./reader.ts";
import { type MainHeader, type SubHeader, utsnameFields } from "./header.ts";
import type { KdumpLayout } from "./layout.ts";
import { PAGE_DESC_SIZE } from "./layout.ts";

/** Summary of a dump file. */
export interface DumpInfo {
  /** The dump's path. */
  path: string;
  /** Its size in bytes. */
  fileSize: number;
  /** The main header, utsname as its six strings. */
  header: Omit<MainHeader, "utsname"> & { utsname: string[] };
  /** The sub header, phys_base as hex text. */
  subHeader: Omit<SubHeader, "physBase"> & { physBase: string };
  /** Where each part of the file is. */
  layout: KdumpLayout;
  /** Pages the bitmaps cover. */
  maxMapnr: number;
  /** Pages set in bitmap 1 (present). */
  bitmap1Pages: number;
  /** Pages set in bitmap 2 (dumped). */
  bitmap2Pages: number;
  /** Page descriptors in the file. */
  descriptors: number;
  /** Descriptors by codec name (raw includes the shared zero page). */
  byCodec: Record<string, number>;
  /** Descriptors pointing at the shared zero page (dump_level & 1). */
  zeroPages: number;
  /** Descriptors with offset 0 (never written: incomplete dump). */
  notWritten: number;
  /** Bytes of page data (shared zero page once). */
  dataBytes: number;
  /** Descriptors with obviously bad fields (offset < 0, size 0 or > page, beyond EOF). */
  badDescriptors: number;
  /** True when the header's incomplete flag is set. */
  incomplete: boolean;
  /** The VMCOREINFO text, when the dump has one. */
  vmcoreinfo: string | undefined;
  /** Human-readable rendering. */
  text: string;
}

const STATUS_BITS: [number, string][] = [
  [0x1, "zlib"],
  [0x2, "lzo"],
  [0x4, "snappy"],
  [0x8, "incomplete"],
  [0x10, "excluded-vmemmap"],
  [0x20, "zstd"],
];

/** Render header status bits. */
export function statusText(status: number): string {
  const names = STATUS_BITS.filter(([b]) => status & b).map(([, n]) => n);
  return `0x${status.toString(16)}${names.length ? ` (${names.join(", ")})` : ""}`;
}

/** Describe a dump file (throws VmsiftError when it cannot be opened). */
export function describeDump(path: string): DumpInfo {
  const k = KdumpFile.open(path);
  try {
    const ps = k.blockSize;
    const total = k.numDumpable;
    const byCodec: Record<string, number> = {};
    let zeroPages = 0, notWritten = 0, dataBytes = 0, bad = 0;
    const sharedZero = (k.subHeader.dumpLevel & 1) !== 0;
    const pdo = k.layout.pageDataOffset;
    const batch = 65536;
    const buf = new Uint8Array(Math.min(batch, Math.max(1, total)) * PAGE_DESC_SIZE);
    const dv = new DataView(buf.buffer);
    let zeroCounted = false;
    for (let first = 0; first < total; first += batch) {
      const n = Math.min(batch, total - first);
      const got = k.file.readAt(k.descFileOffset(first), buf.subarray(0, n * PAGE_DESC_SIZE));
      buf.fill(0, got, n * PAGE_DESC_SIZE);
      for (let i = 0; i < n; i++) {
        const o = i * PAGE_DESC_SIZE;
        const off = dv.getInt32(o + 4, true) * 0x1_0000_0000 + dv.getUint32(o, true);
        const size = dv.getUint32(o + 8, true);
        const flags = dv.getUint32(o + 12, true);
        if (off === 0) {
          notWritten++;
          continue;
        }
        if (off < 0 || size === 0 || size > ps || off + size > k.file.size) bad++;
        const name = flagName(flags);
        byCodec[name] = (byCodec[name] ?? 0) + 1;
        if (sharedZero && off === pdo && flags === 0) {
          zeroPages++;
          if (!zeroCounted) dataBytes += size;
          zeroCounted = true;
        } else dataBytes += size;
      }
    }
    const h = k.header, s = k.subHeader;
    const info: DumpInfo = {
      path,
      fileSize: k.file.size,
      header: { ...h, utsname: utsnameFields(h.utsname) },
      subHeader: { ...s, physBase: `0x${s.physBase.toString(16)}` },
      layout: k.layout,
      maxMapnr: k.maxMapnr,
      bitmap1Pages: k.bitmap1.popcount(),
      bitmap2Pages: total,
      descriptors: total,
      byCodec,
      zeroPages,
      notWritten,
      dataBytes,
      badDescriptors: bad,
      incomplete: k.incomplete,
      vmcoreinfo: k.vmcoreinfo,
      text: "",
    };
    info.text = renderInfo(info);
    return info;
  } finally {
    k.close();
  }
}

function hx(v: number): string {
  return `0x${v.toString(16)}`;
}

/** Text rendering of a DumpInfo. */
export function renderInfo(i: DumpInfo): string {
  const h = i.header, s = i.subHeader, ps = h.blockSize;
  const u = h.utsname;
  const lines = [
    `${i.path}: kdump-compressed, ${i.fileSize} bytes`,
    `  signature       ${JSON.stringify(h.signature)}  header_version ${h.headerVersion}`,
    `  utsname         ${u[0]} ${u[1]} ${u[2]} ${u[3]} ${u[4]} ${u[5]}`.trimEnd(),
    `  timestamp       ${h.timestampSec}.${String(h.timestampUsec).padStart(6, "0")}`,
    `  status          ${statusText(h.status)}`,
    `  block_size      ${ps}  sub_hdr_size ${h.subHdrSize}  bitmap_blocks ${h.bitmapBlocks}`,
    `  max_mapnr       ${hx(i.maxMapnr)} (32-bit field ${hx(h.maxMapnr)})  nr_cpus ${h.nrCpus}`,
    `  phys_base       ${s.physBase}  dump_level ${s.dumpLevel}  split ${s.split}` +
    (s.split ? ` [${hx(s.startPfn64)}, ${hx(s.endPfn64)})` : ""),
    `  notes           ${s.sizeNote} bytes at ${hx(s.offsetNote)}; VMCOREINFO ${s.sizeVmcoreinfo} bytes at ` +
    hx(s.offsetVmcoreinfo),
    `  eraseinfo       ${s.sizeEraseinfo} bytes at ${hx(s.offsetEraseinfo)}`,
    `  bitmap 1        ${i.bitmap1Pages} pages present`,
    `  bitmap 2        ${i.bitmap2Pages} pages dumpable (descriptors at ${
      hx(i.layout.dataOffset)
    }, data from ` +
    `${hx(i.layout.pageDataOffset)})`,
    `  pages           ${
      Object.entries(i.byCodec).map(([k, v]) => `${k} ${v}`).join(", ") || "none"
    }; shared zero page ${i.zeroPages}` +
    (i.notWritten ? `; not written ${i.notWritten}` : "") +
    (i.badDescriptors ? `; BAD ${i.badDescriptors}` : ""),
    `  page data       ${i.dataBytes} bytes for ${i.bitmap2Pages - i.notWritten} pages (${
      i.bitmap2Pages - i.notWritten > 0
        ? ((i.dataBytes / ((i.bitmap2Pages - i.notWritten) * ps)) * 100).toFixed(1)
        : "0"
    }% of raw)`,
  ];
  if (i.incomplete) lines.push("  INCOMPLETE dump (status 0x8): some pages were not written");
  return lines.join("\n") + "\n";
}
