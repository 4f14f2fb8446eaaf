/**
 * `-e`: exclude the vmemmap pages whose struct pages describe only excluded pages (Cliff Wickman's seed
 * proposition 4; makedumpfile find_vmemmap / find_unused_vmemmap_pages / delete_unused_vmemmap_pages,
 * kdump-reference.md section 1.1). Run after the struct-page scan; clears pages in bitmap 2 only.
 *
 * How: the struct-page range of every run of sections with a mem_map is mapped through the kernel page
 * tables (X86Translator.mapRun: any depth, 4- or 5-level, 4 KiB / 2 MiB / 1 GiB leaves; one piece per
 * physically contiguous run, so O(vmemmap pages / 512) translations with 2 MiB leaves). Unlike makedumpfile
 * (4-level only, 2 MiB leaves only, else "vmemmap pmd not huge, abort") nothing is assumed about the mapping.
 * Then ONE pass in pfn order over both bitmaps (read in windows as u32 words): a virtual vmemmap page whose
 * bytes lie entirely inside a section run's struct array holds the struct pages of pfns [a, b) with
 * a = first struct touching the page and b = one past the last struct touching it (a struct straddling a
 * page boundary belongs to both pages). Its physical page V becomes a candidate when every pfn of [a, b) is
 * excluded: bitmap 1 set and bitmap 2 clear.
 *
 * Rules (a doubtful vmemmap page is kept and counted):
 * - Holes: a pfn of [a, b) that is not present (bitmap 1 clear: outside every PT_LOAD, e.g. firmware areas
 *   or the crashkernel reservation in a kexec vmcore) keeps V, as in makedumpfile (its runs need bitmap 1 =
 *   all ones). Such struct pages are real kernel state (PG_reserved, memmap of reserved memory) that
 *   `kmem -p` can still show, and keeping them costs 1/64 of the hole, compressing to almost nothing.
 *   `excludeOverHoles` treats hole pfns as excluded instead (counted in keptForHoles when off).
 * - Pages at the edges of a struct array that also hold other bytes (struct arrays not page aligned, a
 *   non-vmemmap SPARSEMEM mem_map inside other data) are never candidates.
 * - A physical page mapped at several vmemmap addresses (hugetlb vmemmap optimisation remaps tail vmemmap
 *   pages onto one page) is a candidate only when every one of its mappings is.
 * - V is cleared only when V itself is present and still in bitmap 2; all tests use bitmap 2 as the scan
 *   left it (clears are applied after the pass), so the result does not depend on the order of pages.
 * Unlike makedumpfile, a single 64-pfn word is enough (its runs need two consecutive words).
 *
 * Memory: two bitmap windows, the pieces returned by mapRun, and candidate pages stored as runs of
 * consecutive physical pfns (vmemmap is allocated in large contiguous blocks, so a handful of runs).
 */
import type { PfnBitmap } from "./bitmap.ts";
import type { MemSection } from "./sparsemem.ts";
import type { MappedPiece, X86Translator } from "./pageTable.ts";

/** The parts of the memory model this pass needs (a MemoryModel fits). */
export interface VmemmapModel {
  vm: Pick<X86Translator, "mapRun">;
  sparse: { sections: readonly MemSection[]; pageStructSize: number };
  maxMapnr: number;
  pageSize: number;
}

/** Options of excludeVmemmapPages. */
export interface VmemmapExcludeOptions {
  /** Count hole pfns (bitmap 1 clear) as excluded (default false: a hole keeps its vmemmap page). */
  excludeOverHoles?: boolean;
}

/** What the pass did. All counts are pages. */
export interface VmemmapExcludeResult {
  /** Vmemmap pages cleared from bitmap 2. */
  pagesExcluded: number;
  /** Mapped virtual vmemmap pages lying wholly inside a struct array (each tested once). */
  vmemmapPagesExamined: number;
  /** Distinct physical vmemmap pages whose struct pages describe only excluded pfns. */
  candidates: number;
  /** Candidates kept because V itself is not present or was already excluded. */
  keptNotDumped: number;
  /** Pages kept only because some pfn they describe is a hole (0 with excludeOverHoles). */
  keptForHoles: number;
  /** Physical pages mapped at several vmemmap addresses of which at least one describes a kept pfn. */
  keptShared: number;
  /** Partial pages at struct-array edges (never excluded). */
  edgePages: number;
  /** Virtual vmemmap pages without a translation (nothing to exclude). */
  unmappedPages: number;
  /** Struct-array runs mapped (virtually contiguous sections are one run). */
  runs: number;
  /** Physically contiguous pieces returned by the page-table walk. */
  pieces: number;
  /** Wall-clock seconds of the pass. */
  seconds: number;
}

/** Pfns per bitmap window (128 KiB of each bitmap; a multiple of 32 and of a 4 KiB bitmap block). */
const WIN_BITS = 1 << 20;

/** A growable list of [start, end) runs of numbers, merged when adjacent. */
class Runs {
  starts = new Float64Array(64);
  ends = new Float64Array(64);
  n = 0;
  add(v: number): void {
    const n = this.n;
    if (n > 0 && this.ends[n - 1] === v) {
      this.ends[n - 1] = v + 1;
      return;
    }
    if (n === this.starts.length) {
      const s = new Float64Array(n * 2), e = new Float64Array(n * 2);
      s.set(this.starts);
      e.set(this.ends);
      this.starts = s;
      this.ends = e;
    }
    this.starts[n] = v;
    this.ends[n] = v + 1;
    this.n = n + 1;
  }
}

/** A struct-array run: virtually contiguous sections with consecutive pfns. */
interface StructRun {
  pfnStart: number;
  pfnEnd: number;
  memMap: bigint;
  pieces: MappedPiece[];
}

/**
 * Clear from bitmap 2 the vmemmap pages that hold only struct pages of excluded pfns (see the file
 * comment). bitmap 1 = present pages, bitmap 2 = pages to dump, as the scan left them.
 */
export function excludeVmemmapPages(
  model: VmemmapModel,
  bitmap1: PfnBitmap,
  bitmap2: PfnBitmap,
  opts: VmemmapExcludeOptions = {},
): VmemmapExcludeResult {
  const t0 = performance.now();
  const res: VmemmapExcludeResult = {
    pagesExcluded: 0,
    vmemmapPagesExamined: 0,
    candidates: 0,
    keptNotDumped: 0,
    keptForHoles: 0,
    keptShared: 0,
    edgePages: 0,
    unmappedPages: 0,
    runs: 0,
    pieces: 0,
    seconds: 0,
  };
  const size = model.sparse.pageStructSize;
  const ps = model.pageSize;
  const maxMapnr = Math.min(model.maxMapnr, bitmap1.nbits, bitmap2.nbits);
  const overHoles = opts.excludeOverHoles ?? false;

  // 1. Struct-array runs and their physical pieces.
  const runs: StructRun[] = [];
  for (const s of model.sparse.sections) {
    const end = Math.min(s.pfnEnd, maxMapnr);
    if (end <= s.pfnStart) continue;
    const last = runs[runs.length - 1];
    if (
      last !== undefined && last.pfnEnd === s.pfnStart &&
      last.memMap + BigInt((last.pfnEnd - last.pfnStart) * size) === s.memMap
    ) {
      last.pfnEnd = end;
    } else {
      runs.push({ pfnStart: s.pfnStart, pfnEnd: end, memMap: s.memMap, pieces: [] });
    }
  }
  for (const r of runs) {
    r.pieces = model.vm.mapRun(r.memMap, (r.pfnEnd - r.pfnStart) * size);
    res.pieces += r.pieces.length;
  }
  res.runs = runs.length;

  // 2. Physical pages reached through more than one mapping (normally none).
  const shared = sharedRanges(runs, ps);
  let sharedTotal = 0;
  const sharedBase = new Float64Array(shared.starts.length);
  for (let i = 0; i < shared.starts.length; i++) {
    sharedBase[i] = sharedTotal;
    sharedTotal += shared.ends[i] - shared.starts[i];
  }
  const sharedCand = new Uint8Array(sharedTotal);
  const sharedVeto = new Uint8Array(sharedTotal);
  const sharedIndex = (v: number): number => {
    let lo = 0, hi = shared.starts.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (v < shared.starts[mid]) hi = mid - 1;
      else if (v >= shared.ends[mid]) lo = mid + 1;
      else return sharedBase[mid] + v - shared.starts[mid];
    }
    return -1;
  };

  // 3. One pass in pfn order over both bitmaps, through windows of u32 words.
  const winBytes = WIN_BITS / 8;
  const w1b = new Uint8Array(winBytes), w2b = new Uint8Array(winBytes);
  const w1 = new Uint32Array(w1b.buffer), w2 = new Uint32Array(w2b.buffer);
  let wBase = 0, wEnd = 0; // window [wBase, wEnd), empty at first
  const cand = new Runs();

  for (const r of runs) {
    const runLen = (r.pfnEnd - r.pfnStart) * size;
    const baseMod = Number(r.memMap % BigInt(ps));
    for (const piece of r.pieces) {
      const po = Number(piece.vaddr - r.memMap); // piece offset in the struct array
      const jFirst = Math.floor((po + baseMod) / ps);
      const jLast = Math.floor((po + piece.len - 1 + baseMod) / ps);
      for (let j = jFirst; j <= jLast; j++) {
        const o = j * ps - baseMod; // offset of the virtual page in the struct array (may be < 0)
        const full = o >= 0 && o + ps <= runLen;
        if (piece.paddr === undefined) {
          if (full) res.unmappedPages++;
          continue;
        }
        const v = Math.floor((piece.paddr + Math.max(o, po) - po) / ps);
        const si = sharedTotal > 0 ? sharedIndex(v) : -1;
        if (!full) {
          res.edgePages++;
          if (si >= 0) sharedVeto[si] = 1;
          continue;
        }
        res.vmemmapPagesExamined++;
        const a = r.pfnStart + Math.floor(o / size);
        const b = r.pfnStart + Math.ceil((o + ps) / size);
        if (a < wBase || b > wEnd) {
          wBase = Math.floor(a / 32768) * 32768;
          if (b > wBase + WIN_BITS) wBase = a - (a & 31);
          wEnd = wBase + WIN_BITS;
          bitmap1.readBytes(wBase / 8, w1b);
          bitmap2.readBytes(wBase / 8, w2b);
        }
        // Word-wise: any kept pfn (b1 & b2), any hole (~b1) in [a, b).
        let kept = 0, hole = 0;
        let i = a - wBase;
        const e = b - wBase;
        while (i < e) {
          const wi = i >>> 5, bit = i & 31;
          const n = Math.min(32 - bit, e - i);
          const mask = n === 32 ? 0xffffffff : ((1 << n) - 1) << bit;
          const x1 = w1[wi];
          kept |= x1 & w2[wi] & mask;
          hole |= ~x1 & mask;
          i += n;
        }
        const ok = kept === 0 && (hole === 0 || overHoles);
        if (kept === 0 && hole !== 0 && !overHoles) res.keptForHoles++;
        if (si >= 0) {
          if (ok) sharedCand[si] = 1;
          else sharedVeto[si] = 1;
        } else if (ok) {
          cand.add(v);
        }
      }
    }
  }

  // 4. Apply: V must be present and still dumpable.
  const apply = (v: number) => {
    res.candidates++;
    if (v < maxMapnr && bitmap1.get(v) && bitmap2.get(v)) {
      bitmap2.clear(v);
      res.pagesExcluded++;
    } else {
      res.keptNotDumped++;
    }
  };
  for (let k = 0; k < cand.n; k++) {
    for (let v = cand.starts[k]; v < cand.ends[k]; v++) apply(v);
  }
  for (let k = 0; k < shared.starts.length; k++) {
    for (let v = shared.starts[k]; v < shared.ends[k]; v++) {
      const si = sharedBase[k] + v - shared.starts[k];
      if (sharedVeto[si] !== 0) {
        if (sharedCand[si] !== 0) res.keptShared++;
      } else if (sharedCand[si] !== 0) {
        apply(v);
      }
    }
  }
  res.seconds = (performance.now() - t0) / 1000;
  return res;
}

/**
 * Physical page ranges covered by more than one mapped piece (pieces sorted by physical start, then swept),
 * as sorted disjoint [start, end) pfn ranges.
 */
function sharedRanges(runs: readonly StructRun[], ps: number): { starts: number[]; ends: number[] } {
  const starts: number[] = [], ends: number[] = [];
  for (const r of runs) {
    for (const p of r.pieces) {
      if (p.paddr === undefined) continue;
      starts.push(Math.floor(p.paddr / ps));
      ends.push(Math.ceil((p.paddr + p.len) / ps));
    }
  }
  const order = Array.from(starts.keys()).sort((x, y) => starts[x] - starts[y]);
  const out = { starts: [] as number[], ends: [] as number[] };
  let maxEnd = -1;
  for (const k of order) {
    const s = starts[k], e = ends[k];
    if (s < maxEnd) {
      const os = s, oe = Math.min(e, maxEnd);
      const n = out.starts.length;
      if (n > 0 && os <= out.ends[n - 1]) out.ends[n - 1] = Math.max(out.ends[n - 1], oe);
      else {
        out.starts.push(os);
        out.ends.push(oe);
      }
    }
    maxEnd = Math.max(maxEnd, e);
  }
  return out;
}
