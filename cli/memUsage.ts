/**
 * `vmsift --mem-usage /proc/kcore`: the page classes of the running system, as makedumpfile prints them
 * (same table), and the size of the dump to expect, so an administrator can size crashkernel= and the dump
 * target. Memory is read through /proc/kcore (formats/kcore.ts), minus the crashkernel= reservation named in
 * /proc/iomem; VMCOREINFO comes from kcore's note (Linux 4.19+) or, as makedumpfile falls back, from the
 * physical address in /sys/kernel/vmcoreinfo. The classification is the dump's, at dump level 31.
 */
import { VmsiftError } from "../core/errors.ts";
import { buildMemoryModel } from "../core/memoryModel.ts";
import { markPresentPages } from "../core/presentPages.ts";
import { excludeUnnecessaryPages } from "../core/scan.ts";
import { type PageStats, pageStatsOf } from "../core/stats.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";
import { excludeZeroPages } from "../core/zeroPages.ts";
import { iomemRanges, type PhysRange, rangesBytes } from "../formats/iomem.ts";
import { KcoreMemory } from "../formats/kcore.ts";
import { parseNotes } from "../formats/elfNotes.ts";
import { kdumpLayout } from "../formats/kdump/layout.ts";
import { createBitmaps } from "../io/fileBitmap.ts";
import { libcAvailable, O_RDONLY, preadFull, strerror, sysClose, sysOpen } from "../io/libc.ts";

/** Where the running system's facts are read from (the defaults are the real files; tests pass others). */
export interface MemUsageSources {
  /** The kcore (normally /proc/kcore). */
  kcore: string;
  /** Default /proc/iomem. */
  iomem?: string;
  /** Default /sys/kernel/vmcoreinfo ("ADDR SIZE" in hex), used when kcore has no VMCOREINFO note. */
  sysVmcoreinfo?: string;
  /** Keep kernel-image pages as a vmsift dump does (default true; false = makedumpfile's counts). */
  imageGuard?: boolean;
  /** Memory for both bitmaps, bytes (default 64 MiB: a machine of 256 GiB); beyond it, files in workDir. */
  bitmapBudget?: number;
  /** Directory for the bitmap files of bigger machines (default /var/tmp). */
  workDir?: string;
}

/** Default bitmap memory of --mem-usage: both bitmaps of a 256 GiB machine (the first kernel has memory). */
export const MEM_USAGE_BITMAP_BUDGET = 64 << 20;

/** What --mem-usage measured. */
export interface MemUsage {
  stats: PageStats;
  pageSize: number;
  /** The crashkernel= reservation(s) found in /proc/iomem (left out of the counts). */
  crashKernel: PhysRange[];
  /** Where VMCOREINFO came from. */
  vmcoreinfoSource: string;
  /** Bytes of a -d 31 kdump-compressed file without compression (headers, bitmaps, descriptors, pages). */
  dumpBytesUncompressed: number;
  /** Pages of the kernel image that kcore maps twice (makedumpfile adds them to Total and KERN_DATA). */
  kernelImageMappedTwice: number;
}

/** Pages excluded at -d 31 (every class makedumpfile subtracts from the total to get KERN_DATA). */
function excludedPages(s: PageStats): number {
  return s.zero + s.cache + s.cachePrivate + s.user + s.free + s.hwpoison + s.offline;
}

/** Dump level --mem-usage classifies at (makedumpfile: MAX_DUMP_LEVEL). */
const MEM_USAGE_LEVEL = 31;

/** Measure the running system. Throws VmsiftError naming the file on failure. */
export function measureMemUsage(src: MemUsageSources): MemUsage {
  const iomemPath = src.iomem ?? "/proc/iomem";
  const crashKernel = iomemRanges(readText(iomemPath), "Crash kernel");
  if (crashKernel.some((r) => r.start === 0 && r.end === 1)) {
    throw new VmsiftError("the addresses are hidden (all zero): run as root", { file: iomemPath });
  }
  const mem = KcoreMemory.open(src.kcore, { exclude: crashKernel });
  try {
    const { info, source } = kcoreVmcoreinfo(mem, src.sysVmcoreinfo ?? "/sys/kernel/vmcoreinfo");
    const model = buildMemoryModel(mem, info, { kernelImageGuard: src.imageGuard ?? true });
    const { maxMapnr, pageSize } = model;
    const bitmaps = createBitmaps(maxMapnr, {
      budgetBytes: src.bitmapBudget ?? MEM_USAGE_BITMAP_BUDGET,
      dir: src.workDir ?? "/var/tmp",
    });
    let stats: PageStats;
    let zero: number;
    try {
      const { bitmap1, bitmap2 } = bitmaps;
      const original = markPresentPages(mem.segments, pageSize, maxMapnr, bitmap1);
      markPresentPages(mem.segments, pageSize, maxMapnr, bitmap2);
      const scan = excludeUnnecessaryPages(model, MEM_USAGE_LEVEL, bitmap1, bitmap2);
      // makedumpfile checks zero pages after the struct-page exclusion (only pages still dumpable).
      zero = excludeZeroPages(mem, bitmap2, maxMapnr, pageSize);
      stats = pageStatsOf(original, maxMapnr, scan.counts, zero);
    } finally {
      bitmaps.close();
    }
    const kept = stats.original - excludedPages(stats);
    const layout = kdumpLayout({
      maxMapnr,
      // kcore's notes stand in for the crash kernel's (per-CPU registers + VMCOREINFO: a few KiB)
      noteSize: mem.notes.reduce(
        (s, n) => s + 12 + ((n.name.length + 4) & ~3) + ((n.desc.length + 3) & ~3),
        0,
      ),
      blockSize: pageSize,
      numDumpable: kept + zero,
    });
    return {
      stats,
      pageSize,
      crashKernel,
      vmcoreinfoSource: source,
      dumpBytesUncompressed: layout.pageDataOffset + (kept + (zero > 0 ? 1 : 0)) * pageSize,
      kernelImageMappedTwice: Math.ceil(mem.textBytes / pageSize),
    };
  } finally {
    mem.close();
  }
}

/** VMCOREINFO of the running kernel: kcore's note, else the physical range in /sys/kernel/vmcoreinfo. */
function kcoreVmcoreinfo(mem: KcoreMemory, sysPath: string): { info: VmcoreInfo; source: string } {
  const note = mem.vmcoreinfoNote;
  if (note !== undefined) {
    const source = `${mem.label} (VMCOREINFO note)`;
    return { info: VmcoreInfo.parse(new TextDecoder().decode(note.desc), source), source };
  }
  const m = /^([0-9a-fA-F]+)\s+([0-9a-fA-F]+)/.exec(readText(sysPath));
  if (m === null) throw new VmsiftError("expected 'ADDRESS SIZE' in hex", { file: sysPath, offset: 0 });
  const addr = parseInt(m[1], 16);
  const size = parseInt(m[2], 16);
  if (size <= 0 || size > 1 << 20) {
    throw new VmsiftError(`VMCOREINFO size ${size} is implausible`, { file: sysPath });
  }
  // The address is the kernel's vmcoreinfo ELF note (Elf64_Nhdr, "VMCOREINFO", then the text).
  const bytes = new Uint8Array(size);
  if (!mem.readPhys(addr, bytes)) {
    throw new VmsiftError(`VMCOREINFO at physical 0x${addr.toString(16)} is not in kcore's RAM`, {
      file: mem.label,
      address: addr,
    });
  }
  let found;
  try {
    found = parseNotes(bytes, 0, mem.label).find((n) => n.name === "VMCOREINFO");
  } catch { /* not a note there: reported below */ }
  if (found === undefined) {
    throw new VmsiftError(`no VMCOREINFO note at physical 0x${addr.toString(16)} (from ${sysPath})`, {
      file: mem.label,
      address: addr,
    });
  }
  let end = found.desc.indexOf(0);
  if (end < 0) end = found.desc.length;
  const source = `${sysPath} -> ${mem.label} physical 0x${addr.toString(16)}`;
  return { info: VmcoreInfo.parse(new TextDecoder().decode(found.desc.subarray(0, end)), source), source };
}

/**
 * A small text file. With --allow-ffi (the launcher's permissions) through libc, since Deno's file API refuses
 * /proc and /sys paths without --allow-all; procfs files have no size (lseek to the end fails): read until
 * end of file.
 */
function readText(path: string): string {
  if (!libcAvailable()) {
    try {
      return Deno.readTextFileSync(path);
    } catch (e) {
      throw new VmsiftError(`cannot read: ${(e as Error).message}`, { file: path });
    }
  }
  const fd = sysOpen(path, O_RDONLY);
  if (fd < 0) throw new VmsiftError(`cannot open for reading: ${strerror(fd)}`, { file: path });
  try {
    const parts: Uint8Array[] = [];
    let at = 0;
    for (;;) {
      const buf = new Uint8Array(64 << 10);
      const n = preadFull(fd, buf, at, path); // procfs may return less before the end: read on until 0
      if (n === 0) break;
      parts.push(buf.subarray(0, n));
      at += n;
      if (at > 64 << 20) throw new VmsiftError("more than 64 MiB of text", { file: path });
    }
    const all = new Uint8Array(at);
    let pos = 0;
    for (const p of parts) {
      all.set(p, pos);
      pos += p.length;
    }
    return new TextDecoder().decode(all);
  } finally {
    sysClose(fd);
  }
}

/** makedumpfile's print_mem_usage() table (same columns and tabs), then vmsift's sizing lines. */
export function formatMemUsage(u: MemUsage): string {
  const s = u.stats;
  const excluded = excludedPages(s);
  const pad = (n: number) => String(n).padEnd(16);
  const lines = [
    "",
    "TYPE\t\tPAGES\t\t\tEXCLUDABLE\tDESCRIPTION",
    "----------------------------------------------------------------------",
    `ZERO\t\t${pad(s.zero)}\tyes\t\tPages filled with zero`,
    `NON_PRI_CACHE\t${pad(s.cache)}\tyes\t\tCache pages without private flag`,
    `PRI_CACHE\t${pad(s.cachePrivate)}\tyes\t\tCache pages with private flag`,
    `USER\t\t${pad(s.user)}\tyes\t\tUser process pages`,
    `FREE\t\t${pad(s.free)}\tyes\t\tFree pages`,
    `KERN_DATA\t${pad(s.original - excluded)}\tno\t\tDumpable kernel data `,
    "",
    `page size:\t\t${pad(u.pageSize)}`,
    `Total pages on system:\t${pad(s.original)}`,
    `Total size on system:\t${pad(s.original * u.pageSize)} Byte`,
    "",
    `Dump size at -d 31:\t${
      pad(u.dumpBytesUncompressed)
    } Byte before compression (-c/-l/-p/-z make it smaller)`,
  ];
  if (s.keptKernelImage > 0) {
    lines.push(`Kernel image pages:\t${pad(s.keptKernelImage)}\tcounted in KERN_DATA (vmsift keeps them)`);
  }
  if (u.kernelImageMappedTwice > 0) {
    lines.push(
      `Kernel image in kcore:\t${pad(u.kernelImageMappedTwice)}\tpages mapped twice, counted once here ` +
        "(makedumpfile adds them to Total and KERN_DATA)",
    );
  }
  const ck = rangesBytes(u.crashKernel);
  lines.push(
    ck > 0
      ? `Crash kernel reserved:\t${pad(ck)} Byte (${(ck / 2 ** 20).toFixed(0)} MiB, left out of the counts)`
      : "Crash kernel reserved:\tnone (no crashkernel= reservation in /proc/iomem)",
  );
  return lines.join("\n");
}

/** The --mem-usage command: measure, print the table on stdout; returns the exit status. */
export function runMemUsageCommand(
  kcore: string,
  opts: { imageGuard: boolean; workDir?: string; cyclicBufferKiB?: number },
): number {
  const text = formatMemUsage(measureMemUsage({
    kcore,
    imageGuard: opts.imageGuard,
    workDir: opts.workDir,
    bitmapBudget: opts.cyclicBufferKiB !== undefined ? opts.cyclicBufferKiB * 1024 : undefined,
  }));
  // The measuring process is part of the live system: its anonymous memory is in USER (Deno: ~20 MiB).
  const anon = /^RssAnon:\s+(\d+) kB/m.exec(readText("/proc/self/status"));
  const own = anon
    ? `\nvmsift's own memory:\t${String(Number(anon[1]) / 4).padEnd(16)}\tpages, in USER (RssAnon)`
    : "";
  console.log(text + own);
  return 0;
}
