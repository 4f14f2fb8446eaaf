/**
 * The live parts of the kernel image, which the scan never excludes (core/scan.ts), whatever their struct
 * page says (makedumpfile issue 21: live kernel pages misread as hugetlb on 6.6+).
 *
 * The image runs from _text to _end, but the kernel frees parts of it after boot and reuses them as any other
 * memory: the init sections [__init_begin, __init_end) (free_initmem); on x86_64 the alignment gaps
 * [PFN_ALIGN(_etext), __start_rodata) and [PFN_ALIGN(__end_rodata), _sdata) (mark_rodata_ro), the SMP
 * lock table [__smp_locks, __smp_locks_end) (alternative_instructions), the unused decrypted bss
 * [__start_bss_decrypted_unused, __end_bss_decrypted) and the brk area past the value of _brk_end (never
 * reserved). Those follow their struct page (a part the kernel kept is PG_reserved and kept by the rules);
 * everything else in [_text, _end) is protected. The bounds come from kallsyms (core/kallsyms.ts; VMCOREINFO
 * names its tables since Linux 6.0).
 *
 * Without kallsyms (kernels before 6.0) the image is what the kernel's page tables still map in the
 * __START_KERNEL_map alias from _stext on (with the linear offset of phys_base; with page-table isolation
 * free_kernel_image_pages() unmaps the freed parts), keeping only the pages whose struct page is PG_reserved:
 * a freed page loses the flag, a live image page keeps it (core/memoryModel.ts reservedOnly).
 */
import type { KernelSymbols } from "./kallsyms.ts";
import type { VirtualMemory } from "./virtMem.ts";

/** Every symbol {@link liveImageSections} looks up (so kallsyms can decode only these). */
export const GUARD_SYMBOLS = [
  "_text",
  "_stext",
  "_etext",
  "_end",
  "__init_begin",
  "__init_end",
  "__start_rodata",
  "__end_rodata",
  "_sdata",
  "__smp_locks",
  "__smp_locks_end",
  "__start_bss_decrypted_unused",
  "__end_bss_decrypted",
  "_brk_end",
  "__brk_base",
  "__brk_limit",
  "__nosave_begin",
  "__nosave_end",
  "__bss_start",
  "__bss_stop",
];

/** A pfn range [startPfn, endPfn). */
export interface PfnRange {
  /** First pfn. */
  startPfn: number;
  /** Exclusive end. */
  endPfn: number;
}

/** One live section of the image, by its kernel virtual bounds. */
export interface ImageSection {
  name: string;
  start: bigint;
  /** Exclusive. */
  end: bigint;
}

/**
 * Image sections, from kallsyms: [_text, _end) minus what the kernel frees (or may free) after boot.
 * `readU64` reads a kernel variable (for _brk_end). Undefined when _text/_stext or _end is missing.
 */
export function liveImageSections(
  syms: Pick<KernelSymbols, "lookup">,
  readU64: (vaddr: bigint) => bigint | undefined = () => undefined,
): ImageSection[] | undefined {
  const get = (n: string) => syms.lookup(n);
  const text = get("_text") ?? get("_stext");
  const end = get("_end");
  if (text === undefined || end === undefined || end <= text) return undefined;
  const holes: [bigint, bigint][] = [];
  const hole = (a: bigint | undefined, b: bigint | undefined) => {
    if (a !== undefined && b !== undefined && a < b && a >= text && b <= end) holes.push([a, b]);
  };
  hole(get("__init_begin"), get("__init_end")); // free_initmem()
  const etext = get("_etext"), erodata = get("__end_rodata");
  hole(etext === undefined ? undefined : pageUp(etext), get("__start_rodata")); // mark_rodata_ro(), x86_64
  hole(erodata === undefined ? undefined : pageUp(erodata), get("_sdata")); // mark_rodata_ro(), x86_64
  hole(get("__smp_locks"), get("__smp_locks_end")); // alternative_instructions() on SMP
  hole(get("__start_bss_decrypted_unused"), get("__end_bss_decrypted")); // mem_encrypt_free_decrypted_mem()
  // The brk area past _brk_end (a variable holding the end of what early boot took) is never reserved.
  const brkEndVar = get("_brk_end"), brkLimit = get("__brk_limit");
  const brkEnd = brkEndVar === undefined ? undefined : readU64(brkEndVar);
  if (brkEnd !== undefined && get("__brk_base") !== undefined && brkEnd >= get("__brk_base")!) {
    hole(pageUp(brkEnd), brkLimit);
  }
  holes.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const out: ImageSection[] = [];
  let at = text;
  for (const [hs, he] of holes) {
    if (hs > at) out.push({ name: "", start: at, end: hs });
    if (he > at) at = he;
  }
  if (at < end) out.push({ name: "", start: at, end });
  // Name each live piece by the sections it overlaps (for messages).
  const named: [string, bigint | undefined, bigint | undefined][] = [
    ["text", text, etext],
    ["rodata", get("__start_rodata"), erodata],
    ["data", get("_sdata"), get("__init_begin")],
    ["nosave", get("__nosave_begin"), get("__nosave_end")],
    ["bss", get("__bss_start"), get("__bss_stop")],
    ["brk", get("__brk_base"), brkLimit],
  ];
  for (const piece of out) {
    const parts = named.filter(([, a, b]) =>
      a !== undefined && b !== undefined && a < piece.end && b > piece.start
    );
    piece.name = parts.map(([n]) => n).join("+") || "image";
  }
  return out;
}

function pageUp(v: bigint): bigint {
  return (v + 4095n) & ~4095n;
}

/**
 * Physical pfn ranges of `sections`, translated page by page through `vm` (the image is physically
 * contiguous on x86_64 and arm64; this does not assume it). Pages that do not translate are left out.
 */
export function sectionPfns(vm: VirtualMemory, sections: ImageSection[], pageSize = 4096): PfnRange[] {
  const ps = BigInt(pageSize);
  const pfns: number[] = [];
  for (const s of sections) {
    for (let v = s.start & ~(ps - 1n); v < s.end; v += ps) {
      const pa = vm.vtop(v);
      if (pa !== undefined) pfns.push(Math.floor(pa / pageSize));
    }
  }
  return mergePfns(pfns);
}

/** Sorted, merged ranges of a pfn list. */
export function mergePfns(pfns: number[]): PfnRange[] {
  pfns.sort((a, b) => a - b);
  const out: PfnRange[] = [];
  for (const p of pfns) {
    const last = out[out.length - 1];
    if (last !== undefined && p <= last.endPfn) last.endPfn = Math.max(last.endPfn, p + 1);
    else out.push({ startPfn: p, endPfn: p + 1 });
  }
  return out;
}

/** A page-table view of the image window: mapped pieces (virtual start, length, physical start). */
export interface MappedImagePiece {
  vaddr: bigint;
  len: number;
  paddr: number | undefined;
}

/**
 * Image pfns from the page tables (kernels without kallsyms): the pieces of the image window mapped at the
 * linear offset. With PTI the freed parts are holes; without it they stay mapped, and the caller keeps only
 * the pages whose struct page is PG_reserved (core/memoryModel.ts reservedOnly). Undefined when nothing is
 * mapped at the linear offset.
 */
export function mappedImagePfns(
  pieces: MappedImagePiece[],
  linearPa: (v: bigint) => number | undefined,
  pageSize = 4096,
): PfnRange[] | undefined {
  const mapped = pieces.filter((p) => p.paddr !== undefined && linearPa(p.vaddr) === p.paddr);
  if (mapped.length === 0) return undefined;
  const out: PfnRange[] = [];
  for (const p of mapped) {
    out.push({ startPfn: Math.floor(p.paddr! / pageSize), endPfn: Math.ceil((p.paddr! + p.len) / pageSize) });
  }
  return mergeRanges(out);
}

function mergeRanges(ranges: PfnRange[]): PfnRange[] {
  const sorted = [...ranges].sort((a, b) => a.startPfn - b.startPfn);
  const out: PfnRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && r.startPfn <= last.endPfn) last.endPfn = Math.max(last.endPfn, r.endPfn);
    else out.push({ ...r });
  }
  return out;
}
