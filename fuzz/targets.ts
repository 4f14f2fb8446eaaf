/**
 * Fuzz targets: each turns a PRNG into a serialisable `FuzzInput` (patches over a named seed) and runs one
 * parser or flow on it. Seeds: the real 6.1 vmcore and makedumpfile's kdump of it (when present), two small
 * synthetic vmcores (fixtures/synthetic), a tiny ELF core, kdump files written from the small ones, and
 * flattened streams of those. Every input must end in success or a VmsiftError with a place.
 */
import { buildElfCore } from "../fixtures/miniElf.ts";
import { VmsiftError } from "../core/errors.ts";
import { MemBitmap } from "../core/bitmap.ts";
import { buildMemoryModel, type MemoryModel } from "../core/memoryModel.ts";
import type { PhysicalMemory } from "../core/physMem.ts";
import { markPresentPages } from "../core/presentPages.ts";
import { extractDmesg } from "../core/printk.ts";
import { excludeUnnecessaryPages } from "../core/scan.ts";
import { excludeVmemmapPages } from "../core/vmemmapExclude.ts";
import { VmcoreInfo } from "../core/vmcoreinfo.ts";
import { ElfCore } from "../formats/elfCore.ts";
import { parseNotes } from "../formats/elfNotes.ts";
import { encodeFlatHeader, encodeRecordHeader, FlatReader } from "../formats/flatReader.ts";
import { rebuildFlat } from "../formats/flatRebuild.ts";
import { describeDump } from "../formats/kdump/info.ts";
import { makeUtsname, MH, SH } from "../formats/kdump/header.ts";
import { KdumpFile } from "../formats/kdump/reader.ts";
import { verifyDump } from "../formats/kdump/verify.ts";
import { writeKdump } from "../formats/kdump/writer.ts";
import { type CodecName, createCodec } from "../formats/codecs/registry.ts";
import { dumpVmcore } from "../dump/run.ts";
import { filterInput } from "../dump/filter.ts";
import { openInput } from "../dump/input.ts";
import { readUtsname } from "../core/utsname.ts";
import { generate } from "../fixtures/synthetic/generate.ts";
import { MiB, normalizeParams } from "../fixtures/synthetic/params.ts";
import {
  applyPatches,
  decode,
  type Field,
  mutateField,
  mutateVmcoreinfo,
  OverlayMem,
  type Patch,
  PatchedFile,
  randomBytes,
  Rng,
} from "./mutators.ts";
import { ArenaVm, OLDLOG_LEN, type OldLogSeed, oldLogSeed } from "./oldlog.ts";
import { loadNodeZlib } from "../formats/codecs/nodeZlib.ts";
import type { Sink } from "../io/sink.ts";

// The node:zlib engines (fallbacks) are imported on demand; these tests use them directly.
await loadNodeZlib();

/** One fuzz input: a seed and what to change in it. JSON-serialisable (kept in fuzz/corpus/). */
export interface FuzzInput {
  target: TargetName;
  /** Seed name (see `SEED_NAMES`). */
  base: string;
  /** Patches to the seed file (ELF, kdump, flattened stream) or to the PT_NOTE bytes (notes target). */
  file?: Patch[];
  /** Truncate the seed file to this many bytes (small seeds only). */
  truncate?: number;
  /** Patches to physical memory (memory, printk, vmcoreinfo targets; dump: mapped to file offsets). */
  phys?: Patch[];
  /** A VMCOREINFO text replacing the seed's. */
  text?: string;
  /** Flow options: dump level, codec, pfns to read, ... */
  opt?: {
    level?: number;
    partial?: boolean;
    caller?: boolean;
    vmemmap?: boolean;
    guard?: boolean;
    codec?: string;
    pfns?: number[];
    zero?: boolean;
    chunk?: number;
    model?: boolean;
  };
}

export const TARGET_NAMES = [
  "elf",
  "notes",
  "vmcoreinfo",
  "memory",
  "printk",
  "kdump",
  "verify",
  "flat",
  "dump",
  "oldlog",
] as const;
export type TargetName = typeof TARGET_NAMES[number];

/** Relative frequency of each target in a mixed run (slow flows less often). */
export const TARGET_WEIGHT: Record<TargetName, number> = {
  elf: 14,
  notes: 14,
  vmcoreinfo: 10,
  memory: 18,
  printk: 12,
  kdump: 14,
  verify: 3,
  flat: 10,
  dump: 1,
  oldlog: 8,
};

/** Bound of the harness: skip the struct-page scan above this many pfns (a 64 GiB machine). */
export const MAX_SCAN_PFNS = 1 << 24;
/** Skip runDump for vmcores declaring more memory than this (dump time is proportional to memory). */
export const MAX_DUMP_BYTES = 2 ** 36;

/** Thrown by the harness for inputs it chooses not to run (counted, not a failure). */
export class SkipInput extends Error {}

// ---------------------------------------------------------------------------------------------------------
// Seeds

/** Paths of the seed files, made once by `prepareSeeds` in a work directory. */
export interface SeedPaths {
  dir: string;
  /** ELF vmcores by name: real, synth4, synth5, mini. */
  elf: Record<string, string>;
  /** kdump files by name (real, synth, mini) with the vmcore each was made from. */
  kdump: Record<string, { path: string; vmcore: string }>;
  /** Flattened streams by name (synth, mini). */
  flat: Record<string, string>;
}

const REAL_CACHE = Deno.env.get("VMSIFT_FIXTURE_CACHE") ?? "/var/tmp/vmsift-fixtures";

function exists(p: string): boolean {
  try {
    return Deno.statSync(p).isFile;
  } catch {
    return false;
  }
}

/** A Sink keeping written bytes in memory (sparse: a list of writes), for the harness. */
export class MemSink implements Sink {
  readonly label: string;
  readonly writes: Patch[] = [];
  parts: { at: number; bytes: Uint8Array }[] = [];
  size = 0;
  constructor(label = "memory-sink") {
    this.label = label;
  }
  write(offset: number, bytes: Uint8Array): void {
    this.parts.push({ at: offset, bytes: bytes.slice() });
  }
  rewrite(offset: number, bytes: Uint8Array): void {
    this.parts.push({ at: offset, bytes: bytes.slice() });
  }
  finish(size: number): void {
    this.size = size;
  }
  close(): void {}
  abort(): void {
    this.parts = [];
  }
  /** The file, when it is at most `max` bytes. */
  bytes(max = 256 * MiB): Uint8Array | undefined {
    if (this.size > max) return undefined;
    const out = new Uint8Array(this.size);
    for (const p of this.parts) out.set(p.bytes.subarray(0, Math.max(0, this.size - p.at)), p.at);
    return out;
  }
}

/** A Sink that only checks its contract (offsets in range) and drops the bytes. */
class NullSink implements Sink {
  readonly label = "null-sink";
  write(offset: number, bytes: Uint8Array): void {
    if (!(offset >= 0) || !Number.isSafeInteger(offset + bytes.length)) {
      throw new Error(`sink write at ${offset}`);
    }
  }
  rewrite(offset: number, bytes: Uint8Array): void {
    this.write(offset, bytes);
  }
  finish(): void {}
  close(): void {}
  abort(): void {}
}

/** A tiny ELF core: two PT_LOADs with text, zeros and noise, a VMCOREINFO note and two NT_PRSTATUS. */
export function miniElfBytes(): Uint8Array {
  const rng = new Rng("mini-elf");
  const seg = (n: number) => {
    const b = new Uint8Array(n);
    const text = new TextEncoder().encode("vmsift fuzz seed: the quick brown fox jumps over the lazy dog. ");
    for (let p = 0; p < n; p += 4096) {
      const kind = (p >> 12) % 4;
      if (kind === 0) continue; // zero page
      for (let i = 0; i < 4096; i++) b[p + i] = kind === 1 ? text[i % text.length] : rng.u32() & 0xff;
    }
    return b;
  };
  const segs = [{ paddr: 0, data: seg(64 * 1024) }, {
    paddr: 0x100000,
    data: seg(32 * 1024),
    memSize: 48 * 1024,
  }];
  const info = [
    "OSRELEASE=6.1.0-mini",
    "BUILD-ID=0123456789abcdef",
    "PAGESIZE=4096",
    "SYMBOL(init_top_pgt)=ffffffff82a0a000",
    "SYMBOL(mem_section)=ffff888000010000",
    "SIZE(page)=64",
    "OFFSET(page.flags)=0",
    "LENGTH(mem_section)=2048",
    "NUMBER(phys_base)=-2097152",
    "NUMBER(sme_mask)=0",
    "KERNELOFFSET=1000000",
    "CRASHTIME=1700000000",
    "",
  ].join("\n");
  const notes = [
    { name: "CORE", type: 1, desc: new Uint8Array(336) },
    { name: "CORE", type: 1, desc: new Uint8Array(336) },
    { name: "VMCOREINFO", type: 0, desc: new TextEncoder().encode(info) },
  ];
  return buildElfCore(segs, notes, { vaddrBase: 0xffff888000000000n });
}

/** Write a kdump of an ELF core with the library writer (no classification: every present page). */
function kdumpOfElf(elfPath: string, codec: CodecName | null, level: number): Uint8Array {
  const core = ElfCore.open(elfPath);
  try {
    let maxMapnr = 0;
    for (const s of core.segments) maxMapnr = Math.max(maxMapnr, Math.ceil((s.paddr + s.memSize) / 4096));
    const b1 = new MemBitmap(maxMapnr), b2 = new MemBitmap(maxMapnr);
    markPresentPages(core.segments, 4096, maxMapnr, b1);
    markPresentPages(core.segments, 4096, maxMapnr, b2);
    const note = core.vmcoreinfoNote;
    const sink = new MemSink();
    writeKdump({
      mem: core,
      bitmap1: b1,
      bitmap2: b2,
      maxMapnr,
      pageSize: 4096,
      noteBytes: core.noteSegment.bytes,
      vmcoreinfoOffsetInNotes: note ? note.descFileOffset - core.noteSegment.fileOffset : -1,
      vmcoreinfoSize: note ? note.desc.length : 0,
      utsname: makeUtsname(["Linux", "fuzz", "6.1.0-mini", "#1", "x86_64", "(none)"]),
      crashTime: 1700000000,
      nrCpus: core.nrCpus,
      physBase: 0n,
      dumpLevel: level,
    }, { codec: codec === null ? null : createCodec(codec), sink });
    return sink.bytes()!;
  } finally {
    core.close();
  }
}

/** A flattened stream of `file`: records of varied sizes, one out of order, one rewriting the sub header. */
export function flattenBytes(file: Uint8Array, seed: string): Uint8Array {
  const rng = new Rng(seed);
  const recs: [number, Uint8Array][] = [];
  let at = 0;
  while (at < file.length) {
    const n = Math.min(file.length - at, 1 + rng.int(rng.chance(0.3) ? 300 : 70000));
    recs.push([at, file.subarray(at, at + n)]);
    at += n;
  }
  if (recs.length > 3) [recs[1], recs[2]] = [recs[2], recs[1]];
  recs.push([4096, file.subarray(4096, 4096 + 104)]); // makedumpfile's second sub-header record
  let total = 4096 + 16;
  for (const [, b] of recs) total += 16 + b.length;
  const out = new Uint8Array(total);
  out.set(encodeFlatHeader());
  let p = 4096;
  for (const [o, b] of recs) {
    encodeRecordHeader(out, p, o, b.length);
    out.set(b, p + 16);
    p += 16 + b.length;
  }
  encodeRecordHeader(out, p, -1, -1);
  return out;
}

/**
 * Make the seeds in `dir` (kept between runs). Synthetic vmcores come from fixtures/synthetic; when that
 * generator fails they are left out (reported in `notes`).
 */
export async function prepareSeeds(dir: string, notes: string[] = []): Promise<SeedPaths> {
  Deno.mkdirSync(dir, { recursive: true });
  const seeds: SeedPaths = { dir, elf: {}, kdump: {}, flat: {} };
  const mini = `${dir}/mini.elf`;
  if (!exists(mini)) Deno.writeFileSync(mini, miniElfBytes());
  seeds.elf.mini = mini;
  const synth: [string, Parameters<typeof normalizeParams>[0]][] = [
    ["synth4", { memBytes: 64 * MiB, seed: 11, content: "text", scheme: "4.18", levels: 4 }],
    ["synth5", { memBytes: 64 * MiB, seed: 12, content: "text", scheme: "6.12", levels: 5, vmemmap4k: true }],
  ];
  for (const [name, p] of synth) {
    const path = `${dir}/${name}.elf`;
    try {
      if (!exists(path)) {
        const tmp = `${path}.${Deno.pid}.tmp`;
        generate(normalizeParams(p), tmp);
        Deno.renameSync(tmp, path);
      }
      seeds.elf[name] = path;
    } catch (e) {
      notes.push(`synthetic seed ${name} not made: ${(e as Error).message}`);
    }
  }
  const real = `${REAL_CACHE}/vmcore.elf`;
  if (exists(real)) seeds.elf.real = real;
  else {
    try {
      const fx = await import("../tests/support/fixture.ts");
      if (fx.haveReal()) seeds.elf.real = await fx.realVmcore();
    } catch { /* no real fixture */ }
  }
  const realKdump = `${REAL_CACHE}/makedumpfile-c-d31.kdump`;
  if (seeds.elf.real !== undefined) {
    if (!exists(realKdump)) {
      try {
        const fx = await import("../tests/support/fixture.ts");
        await fx.unpackReal("makedumpfile-c-d31.kdump");
      } catch { /* absent */ }
    }
    if (exists(realKdump)) seeds.kdump.real = { path: realKdump, vmcore: seeds.elf.real };
  }
  const mk = (name: string, vmcore: string, codec: CodecName | null, level: number) => {
    const path = `${dir}/${name}.kdump`;
    if (!exists(path)) Deno.writeFileSync(path, kdumpOfElf(vmcore, codec, level));
    seeds.kdump[name] = { path, vmcore };
  };
  mk("mini", mini, "zlib", 1);
  mk("miniraw", mini, null, 0);
  if (seeds.elf.synth4 !== undefined) {
    const path = `${dir}/synth.kdump`;
    try {
      if (!exists(path)) {
        const sink = new MemSink();
        // (awaited: the seed was written before the dump had finished)
        await dumpVmcore(seeds.elf.synth4, {
          dumpLevel: 31,
          codec: createCodec("zlib"),
          openSinks: () => [sink],
          bitmapDir: dir,
          bitmapBudget: 8 << 20,
        });
        Deno.writeFileSync(path, sink.bytes()!);
      }
      seeds.kdump.synth = { path, vmcore: seeds.elf.synth4 };
    } catch (e) {
      notes.push(`synthetic kdump not made: ${(e as Error).message}`);
    }
  }
  for (const name of ["mini", "synth"]) {
    const k = seeds.kdump[name];
    if (k === undefined) continue;
    const path = `${dir}/${name}.flat`;
    if (!exists(path)) Deno.writeFileSync(path, flattenBytes(Deno.readFileSync(k.path), name));
    seeds.flat[name] = path;
  }
  return seeds;
}

// ---------------------------------------------------------------------------------------------------------
// Per-process context: opened seeds, clean models and the fields worth mutating.

interface MemSeed {
  core: ElfCore;
  info: VmcoreInfo;
  model: MemoryModel | undefined;
  pte: Field[];
  memsec: Field[];
  page: Field[];
  printk: Field[];
  other: Field[];
}

interface FileSeed {
  bytes: Uint8Array;
  fields: Field[];
  /** Ranges where random bytes are worth writing. */
  regions: [number, number][];
  /** Some pfns present in the seed (kdump). */
  pfns: number[];
}

/** Everything a worker needs; seeds are opened lazily. */
export class FuzzContext {
  readonly seeds: SeedPaths;
  readonly workDir: string;
  readonly #mem = new Map<string, MemSeed>();
  readonly #file = new Map<string, FileSeed>();
  readonly #copies = new Map<string, PatchedFile>();
  readonly #old = new Map<string, OldLogSeed>();
  /** Inputs the harness skipped (too large to run by design), by reason. */
  readonly skipped = new Map<string, number>();

  constructor(seeds: SeedPaths, job = 0) {
    this.seeds = seeds;
    this.workDir = `${seeds.dir}/work${job}`;
    Deno.mkdirSync(this.workDir, { recursive: true });
  }

  close(): void {
    for (const m of this.#mem.values()) m.core.close();
    this.#mem.clear();
  }

  /** Seeds usable by `target`. */
  bases(target: TargetName): string[] {
    switch (target) {
      case "elf":
        return Object.keys(this.seeds.elf);
      case "notes":
        return Object.keys(this.seeds.elf);
      case "vmcoreinfo":
      case "memory":
      case "printk":
        return Object.keys(this.seeds.elf).filter((n) => n !== "mini");
      case "kdump":
        return Object.keys(this.seeds.kdump);
      case "verify":
        return Object.keys(this.seeds.kdump).filter((n) => n !== "real");
      case "flat":
        return Object.keys(this.seeds.flat);
      case "dump":
        return Object.keys(this.seeds.elf).filter((n) => n.startsWith("synth"));
      case "oldlog":
        return ["structured", "structured-old", "plain"];
    }
  }

  /** Working copy of a seed file (patched per input, restored after). */
  copy(kind: "elf" | "kdump", base: string): PatchedFile {
    const key = `${kind}:${base}`;
    let c = this.#copies.get(key);
    if (c === undefined) {
      const src = kind === "elf" ? this.seeds.elf[base] : this.seeds.kdump[base]?.path;
      if (src === undefined) throw new SkipInput(`no seed ${key}`);
      const big = Deno.statSync(src).size > 64 * MiB;
      c = new PatchedFile(src, `${this.workDir}/${base}.${kind}`, { fresh: !big, refreshBytes: 1 << 16 });
      this.#copies.set(key, c);
    }
    return c;
  }

  /** A pre-5.10 kernel log seed (built in memory). */
  oldLog(base: string): OldLogSeed {
    let s = this.#old.get(base);
    if (s === undefined) {
      if (base !== "structured" && base !== "structured-old" && base !== "plain") throw new SkipInput(base);
      s = oldLogSeed(base);
      this.#old.set(base, s);
    }
    return s;
  }

  mem(base: string): MemSeed {
    let m = this.#mem.get(base);
    if (m !== undefined) return m;
    const path = this.seeds.elf[base];
    if (path === undefined) throw new SkipInput(`no seed ${base}`);
    const core = ElfCore.open(path);
    const note = core.vmcoreinfoNote;
    const info = VmcoreInfo.parse(new TextDecoder().decode(note!.desc), `${path} (VMCOREINFO note)`);
    let model: MemoryModel | undefined;
    try {
      model = buildMemoryModel(core, info);
    } catch { /* seed without a usable model: only text mutations */ }
    m = { core, info, model, ...landmarks(core, info, model) };
    this.#mem.set(base, m);
    return m;
  }

  /** Fields and regions of a seed file (ELF headers/notes, kdump headers/descriptors, flat records). */
  fileSeed(kind: "elf" | "kdump" | "flat", base: string): FileSeed {
    const key = `${kind}:${base}`;
    let s = this.#file.get(key);
    if (s !== undefined) return s;
    const src = kind === "elf"
      ? this.seeds.elf[base]
      : kind === "kdump"
      ? this.seeds.kdump[base]?.path
      : this.seeds.flat[base];
    if (src === undefined) throw new SkipInput(`no seed ${key}`);
    if (kind === "elf") s = elfFields(this.seeds.elf[base]);
    else if (kind === "kdump") s = kdumpFields(this.seeds.kdump[base].path);
    else s = flatFields(Deno.readFileSync(this.seeds.flat[base]));
    this.#file.set(key, s);
    return s;
  }
}

function readPa(mem: PhysicalMemory, pa: number, size: number): bigint {
  const b = new Uint8Array(size);
  return mem.readPhys(pa, b) ? decode(b, 0, size) : 0n;
}

/** Physical places of the kernel structures the parsers read, found through the clean model. */
function landmarks(core: ElfCore, info: VmcoreInfo, model: MemoryModel | undefined) {
  const pte: Field[] = [],
    memsec: Field[] = [],
    page: Field[] = [],
    printk: Field[] = [],
    other: Field[] = [];
  if (model === undefined) return { pte, memsec, page, printk, other };
  const vm = model.vm;
  const seenPte = new Set<number>();
  const addPtes = (va: bigint | undefined) => {
    if (va === undefined) return;
    for (const s of vm.walk(va).steps) {
      if (s.entry === undefined || seenPte.has(s.entryPa)) continue;
      seenPte.add(s.entryPa);
      pte.push({ at: s.entryPa, size: 8, kind: "pte", tablePa: s.tablePa, name: s.level });
    }
  };
  const field = (list: Field[], va: bigint, size: Field["size"], kind: Field["kind"], name: string) => {
    const pa = vm.vtop(va);
    if (pa !== undefined) list.push({ at: pa, size, kind, name });
  };
  const num = (k: string) => info.offset(k);
  // mem_section roots and entries.
  const ms = info.symbol("mem_section");
  if (ms !== undefined) {
    addPtes(ms);
    for (let i = 0; i < 4; i++) field(memsec, ms + BigInt(8 * i), 8, "ptr", `mem_section root ${i}`);
    const rootPa = vm.vtop(ms);
    const root = rootPa === undefined ? 0n : readPa(core, rootPa, 8);
    const sz = info.size("mem_section") ?? 16;
    const off = num("mem_section.section_mem_map") ?? 0;
    for (const sec of model.sparse.sections.slice(0, 8)) {
      const entry = root + BigInt(sec.nr * sz + off);
      addPtes(entry);
      field(memsec, entry, 8, sec.nr % 2 ? "flags" : "ptr", `section ${sec.nr} mem_map`);
    }
  }
  // Struct pages: a spread over every section, incl. section edges.
  const size = info.size("page") ?? 64;
  const pfields: [string, Field["size"], Field["kind"]][] = [
    ["page.flags", 8, "flags"],
    ["page._mapcount", 4, "raw"],
    ["page.private", 8, "len"],
    ["page.compound_head", 8, "ptr"],
    ["page.mapping", 8, "ptr"],
    ["page.compound_order", 1, "len"],
    ["page.compound_dtor", 1, "raw"],
    ["page.lru", 8, "ptr"],
  ];
  const rng = new Rng("landmarks");
  for (const sec of model.sparse.sections) {
    const n = sec.pfnEnd - sec.pfnStart;
    const picks = [0, 1, n - 1, ...Array.from({ length: 40 }, () => rng.int(n))];
    for (const i of picks) {
      const va = sec.memMap + BigInt(i * size);
      if (i % 7 === 0) addPtes(va);
      for (const [k, sz, kind] of pfields) {
        const o = num(k);
        if (o !== undefined) {
          field(page, va + BigInt(o) + (k === "page.compound_order" ? BigInt(size) : 0n), sz, kind, k);
        }
      }
      field(page, va + BigInt(size + (num("page.flags") ?? 0)), 8, "flags", "tail flags");
    }
  }
  // printk (lockless ring).
  const prbSym = info.symbol("prb");
  if (prbSym !== undefined) {
    addPtes(prbSym);
    field(printk, prbSym, 8, "ptr", "prb pointer");
    const prbPa = vm.vtop(prbSym);
    const prb = prbPa === undefined ? 0n : readPa(core, prbPa, 8);
    const dr = num("printk_ringbuffer.desc_ring") ?? 0, tr = num("printk_ringbuffer.text_data_ring") ?? 48;
    const f = (o: number | undefined, sz: Field["size"], kind: Field["kind"], name: string) => {
      if (o !== undefined) field(printk, prb + BigInt(o), sz, kind, name);
    };
    f(dr + (num("prb_desc_ring.count_bits") ?? 0), 4, "len", "count_bits");
    f(dr + (num("prb_desc_ring.descs") ?? 8), 8, "ptr", "descs");
    f(dr + (num("prb_desc_ring.infos") ?? 16), 8, "ptr", "infos");
    f(dr + (num("prb_desc_ring.head_id") ?? 24), 8, "id", "head_id");
    f(dr + (num("prb_desc_ring.tail_id") ?? 32), 8, "id", "tail_id");
    f(tr + (num("prb_data_ring.size_bits") ?? 0), 4, "len", "size_bits");
    f(tr + (num("prb_data_ring.data") ?? 8), 8, "ptr", "data");
    const pa = vm.vtop(prb);
    if (pa !== undefined) {
      const descs = readPa(core, pa + dr + (num("prb_desc_ring.descs") ?? 8), 8);
      const infos = readPa(core, pa + dr + (num("prb_desc_ring.infos") ?? 16), 8);
      const head = Number(readPa(core, pa + dr + (num("prb_desc_ring.head_id") ?? 24), 8) & 0xffffn);
      const ds = info.size("prb_desc") ?? 24, is = info.size("printk_info") ?? 88;
      const lpos = num("prb_desc.text_blk_lpos") ?? 8;
      for (let k = 0; k < 24; k++) {
        const idx = Math.max(0, head - k * 7);
        const d = descs + BigInt(idx * ds), i = infos + BigInt(idx * is);
        addPtes(d);
        field(printk, d + BigInt(num("prb_desc.state_var") ?? 0), 8, "id", "state_var");
        field(printk, d + BigInt(lpos + (num("prb_data_blk_lpos.begin") ?? 0)), 8, "off", "begin");
        field(printk, d + BigInt(lpos + (num("prb_data_blk_lpos.next") ?? 8)), 8, "off", "next");
        field(printk, i + BigInt(num("printk_info.text_len") ?? 16), 2, "len", "text_len");
        field(printk, i + BigInt(num("printk_info.seq") ?? 0), 8, "id", "seq");
      }
    }
  }
  for (const s of ["log_buf", "log_buf_len", "log_first_idx", "log_next_idx", "clear_seq"]) {
    const v = info.symbol(s);
    if (v !== undefined) field(printk, v, 8, "len", s);
  }
  const uts = info.symbol("init_uts_ns");
  if (uts !== undefined) {
    addPtes(uts);
    for (let i = 0; i < 6; i++) {
      field(other, uts + BigInt((num("uts_namespace.name") ?? 0) + 65 * i), 8, "raw", "uts");
    }
  }
  addPtes(info.symbol("_stext"));
  addPtes(info.symbol("init_top_pgt"));
  return { pte, memsec, page, printk, other };
}

function elfFields(path: string): FileSeed {
  const f = Deno.openSync(path, { read: true });
  const head = new Uint8Array(1 << 16);
  let n = 0;
  try {
    for (;;) {
      const got = f.readSync(head.subarray(n));
      if (got === null || got === 0) break;
      n += got;
      if (n === head.length) break;
    }
  } finally {
    f.close();
  }
  const bytes = head.subarray(0, n);
  const dv = new DataView(bytes.buffer);
  const fields: Field[] = [
    { at: 4, size: 1, kind: "raw", name: "class" },
    { at: 5, size: 1, kind: "raw", name: "data" },
    { at: 16, size: 2, kind: "raw", name: "e_type" },
    { at: 18, size: 2, kind: "raw", name: "e_machine" },
    { at: 32, size: 8, kind: "off", name: "e_phoff" },
    { at: 40, size: 8, kind: "off", name: "e_shoff" },
    { at: 48, size: 4, kind: "flags", name: "e_flags" },
    { at: 54, size: 2, kind: "len", name: "e_phentsize" },
    { at: 56, size: 2, kind: "len", name: "e_phnum" },
    { at: 58, size: 2, kind: "len", name: "e_shentsize" },
  ];
  const regions: [number, number][] = [[0, 64]];
  const phoff = Number(dv.getBigUint64(32, true));
  const phnum = dv.getUint16(56, true);
  regions.push([phoff, phoff + phnum * 56]);
  for (let i = 0; i < phnum && phoff + i * 56 + 56 <= n; i++) {
    const b = phoff + i * 56;
    const type = dv.getUint32(b, true);
    fields.push(
      { at: b, size: 4, kind: "raw", name: `p_type ${i}` },
      { at: b + 8, size: 8, kind: "off", name: `p_offset ${i}` },
      { at: b + 24, size: 8, kind: "off", name: `p_paddr ${i}` },
      { at: b + 32, size: 8, kind: "len", name: `p_filesz ${i}` },
      { at: b + 40, size: 8, kind: "len", name: `p_memsz ${i}` },
    );
    if (type === 4) {
      const off = Number(dv.getBigUint64(b + 8, true)), sz = Number(dv.getBigUint64(b + 32, true));
      regions.push([off, Math.min(n, off + sz)]);
      // Note headers.
      let p = off;
      while (p + 12 <= Math.min(n, off + sz)) {
        const namesz = dv.getUint32(p, true), descsz = dv.getUint32(p + 4, true);
        fields.push(
          { at: p, size: 4, kind: "len", name: "namesz" },
          { at: p + 4, size: 4, kind: "len", name: "descsz" },
          { at: p + 8, size: 4, kind: "raw", name: "n_type" },
        );
        if (namesz === 0 && descsz === 0) break;
        p += 12 + ((namesz + 3) & ~3) + ((descsz + 3) & ~3);
      }
    }
  }
  return { bytes, fields, regions, pfns: [] };
}

function kdumpFields(path: string): FileSeed {
  const k = KdumpFile.open(path);
  try {
    const bs = k.blockSize;
    const fields: Field[] = [];
    const mh: [keyof typeof MH, Field["size"], Field["kind"]][] = [
      ["headerVersion", 4, "raw"],
      ["status", 4, "flags"],
      ["blockSize", 4, "len"],
      ["subHdrSize", 4, "len"],
      ["bitmapBlocks", 4, "len"],
      ["maxMapnr", 4, "len"],
      ["nrCpus", 4, "len"],
      ["timestampUsec", 8, "raw"],
    ];
    for (const [n, sz, kind] of mh) fields.push({ at: MH[n], size: sz, kind, name: n });
    const sh: [keyof typeof SH, Field["size"], Field["kind"]][] = [
      ["physBase", 8, "raw"],
      ["dumpLevel", 4, "flags"],
      ["split", 4, "raw"],
      ["offsetVmcoreinfo", 8, "off"],
      ["sizeVmcoreinfo", 8, "len"],
      ["offsetNote", 8, "off"],
      ["sizeNote", 8, "len"],
      ["offsetEraseinfo", 8, "off"],
      ["sizeEraseinfo", 8, "len"],
      ["startPfn64", 8, "raw"],
      ["endPfn64", 8, "raw"],
      ["maxMapnr64", 8, "len"],
    ];
    for (const [n, sz, kind] of sh) fields.push({ at: bs + SH[n], size: sz, kind, name: n });
    const pfns: number[] = [];
    const rng = new Rng("kdump-pfns");
    const dumpable: number[] = [];
    for (let p = 0; p < k.maxMapnr && dumpable.length < 4096; p++) if (k.bitmap2.get(p)) dumpable.push(p);
    for (let i = 0; i < 64 && dumpable.length > 0; i++) pfns.push(rng.pick(dumpable));
    const nd = k.numDumpable;
    for (let j = 0; j < 96 && nd > 0; j++) {
      const i = j < 8 ? j : rng.int(nd);
      const at = k.descFileOffset(i);
      fields.push(
        { at, size: 8, kind: "off", name: `desc ${i} offset` },
        { at: at + 8, size: 4, kind: "len", name: `desc ${i} size` },
        { at: at + 12, size: 4, kind: "flags", name: `desc ${i} flags` },
      );
    }
    const size = k.file.size;
    const regions: [number, number][] = [
      [0, 464],
      [bs, bs + 104],
      [k.offsetBitmap1, k.layout.dataOffset],
      [k.layout.dataOffset, Math.min(size, k.layout.pageDataOffset)],
      [k.layout.pageDataOffset, size],
    ];
    if (k.notes.length > 0) regions.push([k.subHeader.offsetNote, k.subHeader.offsetNote + k.notes.length]);
    const head = new Uint8Array(Math.min(size, 1 << 16));
    k.file.readExact(0, head);
    return { bytes: head, fields, regions, pfns };
  } finally {
    k.close();
  }
}

function flatFields(bytes: Uint8Array): FileSeed {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const fields: Field[] = [
    { at: 16, size: 8, kind: "raw", be: true, name: "type" },
    { at: 24, size: 8, kind: "raw", be: true, name: "version" },
    { at: 0, size: 8, kind: "raw", name: "signature" },
  ];
  let p = 4096;
  while (p + 16 <= bytes.length) {
    const size = dv.getBigInt64(p + 8, false);
    fields.push(
      { at: p, size: 8, kind: "off", be: true, name: "record offset" },
      { at: p + 8, size: 8, kind: "len", be: true, name: "record size" },
    );
    if (size < 0n) break;
    p += 16 + Number(size);
  }
  return { bytes, fields, regions: [[0, 4096], [4096, bytes.length]], pfns: [] };
}

// ---------------------------------------------------------------------------------------------------------
// Generation

function patchesFromFields(
  rng: Rng,
  fields: readonly Field[],
  read: (f: Field) => bigint,
  n: number,
): Patch[] {
  const out: Patch[] = [];
  if (fields.length === 0) return out;
  for (let i = 0; i < n; i++) {
    const f = rng.pick(fields);
    out.push(mutateField(rng, f, read(f)));
  }
  return out;
}

function count(rng: Rng): number {
  return 1 + (rng.chance(0.6) ? 0 : rng.int(rng.chance(0.8) ? 3 : 10));
}

/** Make input number `index` of a run (deterministic in seed, index). */
export function generateInput(ctx: FuzzContext, target: TargetName, rng: Rng): FuzzInput {
  const bases = ctx.bases(target);
  if (bases.length === 0) throw new SkipInput(`no seed for ${target}`);
  const base = rng.pick(bases);
  const input: FuzzInput = { target, base };
  switch (target) {
    case "elf":
    case "notes": {
      const s = ctx.fileSeed("elf", base);
      const fields = target === "notes"
        ? s.fields.filter((f) => /namesz|descsz|n_type/.test(f.name ?? ""))
        : s.fields;
      const patches = patchesFromFields(rng, fields, (f) => decode(s.bytes, f.at, f.size), count(rng));
      if (rng.chance(0.35)) {
        const [lo, hi] = rng.pick(s.regions.slice(target === "notes" ? 2 : 0));
        if (hi > lo) patches.push(randomBytes(rng, lo, hi));
      }
      if (rng.chance(0.15)) {
        // Edit the VMCOREINFO desc in place (same length).
        const text = new TextDecoder().decode(s.bytes);
        const at = text.indexOf("OSRELEASE=");
        if (at >= 0) {
          const end = Math.min(s.bytes.length, at + 4096);
          const mut = mutateVmcoreinfo(rng, new TextDecoder().decode(s.bytes.subarray(at, end)));
          const enc = new TextEncoder().encode(mut).subarray(0, end - at);
          patches.push({ at, bytes: Array.from(enc) });
        }
      }
      input.file = patches;
      if (target === "elf" && base === "mini" && rng.chance(0.15)) {
        input.truncate = rng.int(Deno.statSync(ctx.seeds.elf.mini).size);
      }
      if (target === "elf") input.opt = { pfns: [rng.int(1 << 20), rng.int(64), rng.int(1 << 16)] };
      return input;
    }
    case "vmcoreinfo": {
      const m = ctx.mem(base);
      input.text = mutateVmcoreinfo(rng, m.info.text);
      input.opt = flowOpts(rng);
      return input;
    }
    case "memory":
    case "printk": {
      const m = ctx.mem(base);
      const groups = target === "printk"
        ? [m.printk, m.printk, m.pte]
        : [m.pte, m.memsec, m.page, m.page, m.printk, m.other];
      const patches: Patch[] = [];
      const n = count(rng);
      for (let i = 0; i < n; i++) {
        const g = rng.pick(groups.filter((x) => x.length > 0));
        if (g === undefined) break;
        patches.push(...patchesFromFields(rng, g, (f) => readPa(m.core, f.at, f.size), 1));
      }
      if (rng.chance(0.1) && m.page.length > 0) {
        const f = rng.pick(m.page);
        patches.push({ at: f.at - (f.at % 64), bytes: rng.bytes(64) });
      }
      input.phys = patches;
      input.opt = flowOpts(rng);
      if (rng.chance(0.15)) input.text = mutateVmcoreinfo(rng, m.info.text);
      return input;
    }
    case "kdump":
    case "verify": {
      const s = ctx.fileSeed("kdump", base);
      const patches = patchesFromFields(
        rng,
        s.fields,
        (f) => f.at < s.bytes.length ? decode(s.bytes, f.at, f.size) : 0n,
        count(rng),
      );
      if (rng.chance(0.4)) {
        const [lo, hi] = rng.pick(s.regions);
        if (hi > lo) patches.push(randomBytes(rng, lo, hi));
      }
      input.file = patches;
      input.opt = {
        pfns: [...Array.from({ length: 6 }, () => rng.pick(s.pfns.length ? s.pfns : [0])), rng.int(1 << 22)],
        zero: rng.chance(0.3),
        model: rng.chance(0.2),
      };
      return input;
    }
    case "flat": {
      const s = ctx.fileSeed("flat", base);
      const patches = patchesFromFields(
        rng,
        s.fields,
        (f) => decode(s.bytes, f.at, f.size, f.be),
        count(rng),
      );
      if (rng.chance(0.2)) patches.push(randomBytes(rng, 0, 64));
      input.file = patches;
      if (rng.chance(0.1)) input.truncate = rng.int(s.bytes.length);
      input.opt = { chunk: rng.pick([4096, 65536, 1 << 20]), model: rng.chance(0.3) };
      return input;
    }
    case "oldlog": {
      const s = ctx.oldLog(base);
      input.phys = patchesFromFields(rng, s.fields, (f) => decode(s.arena, f.at, f.size), count(rng));
      if (rng.chance(0.2)) input.phys.push(randomBytes(rng, 0, s.arena.length));
      if (rng.chance(0.2)) input.text = mutateVmcoreinfo(rng, s.text);
      input.opt = { partial: rng.chance(0.4), caller: rng.chance(0.4) };
      return input;
    }
    case "dump": {
      const m = ctx.mem(base);
      const patches: Patch[] = [];
      const n = count(rng);
      for (let i = 0; i < n; i++) {
        const g = rng.pick([m.pte, m.memsec, m.page, m.page, m.other].filter((x) => x.length > 0));
        if (g === undefined) break;
        patches.push(...patchesFromFields(rng, g, (f) => readPa(m.core, f.at, f.size), 1));
      }
      input.phys = patches;
      if (rng.chance(0.2)) {
        const s = ctx.fileSeed("elf", base);
        input.file = patchesFromFields(rng, s.fields, (f) => decode(s.bytes, f.at, f.size), 1);
      }
      input.opt = { ...flowOpts(rng), codec: rng.pick(["none", "zlib", "lzo", "snappy", "zstd"]) };
      return input;
    }
  }
}

function flowOpts(rng: Rng): NonNullable<FuzzInput["opt"]> {
  return {
    level: rng.pick([0, 1, 2, 16, 31, rng.int(32)]),
    partial: rng.chance(0.3),
    caller: rng.chance(0.3),
    vmemmap: rng.chance(0.3),
    guard: rng.chance(0.8),
  };
}

// ---------------------------------------------------------------------------------------------------------
// Execution

/** Swallow VmsiftErrors (an expected outcome) but let anything else through. */
function expect(fn: () => void): void {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof VmsiftError)) throw e;
    checkError(e);
  }
}

/** A VmsiftError must be one line and say where (file, offset or address). */
export function checkError(e: VmsiftError): void {
  const line = e.oneLine();
  if (/[\n\r]/.test(line)) throw new BadErrorReport(`multi-line VmsiftError: ${JSON.stringify(line)}`, e);
  const p = e.place ?? {};
  if (p.file === undefined && p.offset === undefined && p.address === undefined) {
    throw new BadErrorReport(`VmsiftError without file/offset/address: ${line}`, e);
  }
}

/** A VmsiftError that breaks the reporting contract (no place, several lines). */
export class BadErrorReport extends Error {
  readonly vmsiftError: VmsiftError;
  constructor(msg: string, cause: VmsiftError) {
    super(msg);
    this.name = "BadErrorReport";
    this.vmsiftError = cause;
    this.stack = cause.stack;
  }
}

function exerciseInfo(info: VmcoreInfo): void {
  for (const k of info.keys()) {
    const m = /^(SYMBOL|SIZE|OFFSET|LENGTH|NUMBER)\((.*)\)$/.exec(k);
    expect(() => {
      if (m === null) return void info.raw(k);
      const name = m[2];
      if (m[1] === "SYMBOL") info.symbol(name);
      else if (m[1] === "SIZE") info.size(name);
      else if (m[1] === "OFFSET") info.offset(name);
      else if (m[1] === "LENGTH") info.length(name);
      else {
        info.number(name);
        info.numberN(name);
      }
    });
  }
  expect(() => info.pageSize);
  expect(() => info.crashTime);
  expect(() => info.kernelOffset);
  void info.osrelease;
  void info.buildId;
}

/** The in-memory flow: model, dmesg, utsname, struct-page scan, vmemmap exclusion. */
function memoryFlow(
  mem: PhysicalMemory,
  info: VmcoreInfo,
  opt: FuzzInput["opt"] = {},
  skipped?: Map<string, number>,
): void {
  let model: MemoryModel;
  try {
    model = buildMemoryModel(mem, info, { kernelImageGuard: opt.guard ?? true });
  } catch (e) {
    if (e instanceof VmsiftError) return checkError(e);
    throw e;
  }
  expect(() => void extractDmesg(model.vm, info, { partial: opt.partial, callerColumn: opt.caller }));
  expect(() => void readUtsname(model.vm, info));
  if (model.maxMapnr > MAX_SCAN_PFNS) {
    skipped?.set("scan of a huge machine", (skipped.get("scan of a huge machine") ?? 0) + 1);
    return;
  }
  expect(() => {
    const b1 = new MemBitmap(model.maxMapnr), b2 = new MemBitmap(model.maxMapnr);
    markPresentPages(mem.segments, model.pageSize, model.maxMapnr, b1);
    markPresentPages(mem.segments, model.pageSize, model.maxMapnr, b2);
    excludeUnnecessaryPages(model, opt.level ?? 31, b1, b2);
    if (opt.vmemmap) excludeVmemmapPages(model, b1, b2);
  });
}

function exerciseKdump(k: KdumpFile, opt: FuzzInput["opt"] = {}, skipped?: Map<string, number>): void {
  const page = new Uint8Array(k.blockSize);
  for (const pfn of opt.pfns ?? []) {
    expect(() => k.readPage(pfn, page));
    expect(() => void k.readPhys(pfn * k.blockSize + 100, new Uint8Array(64)));
    expect(() => void k.readPhys(pfn * k.blockSize, page));
  }
  if (k.notes.length > 0) expect(() => void parseNotes(k.notes, k.subHeader.offsetNote, k.path));
  if (k.vmcoreinfo !== undefined) {
    const info = VmcoreInfo.parse(k.vmcoreinfo, `${k.path} (VMCOREINFO)`);
    exerciseInfo(info);
    if (opt.model) memoryFlow(k, info, { level: 31 }, skipped);
  }
}

/** Run one input. Returns normally or with a VmsiftError (checked); anything else is a finding. */
export function runInput(ctx: FuzzContext, input: FuzzInput): void {
  expect(() => runInputRaw(ctx, input));
}

function runInputRaw(ctx: FuzzContext, input: FuzzInput): void {
  const opt = input.opt ?? {};
  switch (input.target) {
    case "elf": {
      const c = ctx.copy("elf", input.base);
      const big = c.size > 64 * MiB;
      const patches = (input.file ?? []).filter((p) => !big || p.at + p.bytes.length <= 1 << 16);
      c.apply(patches, big ? undefined : input.truncate);
      try {
        const core = ElfCore.open(c.path);
        try {
          void core.nrCpus;
          const note = core.vmcoreinfoNote;
          if (note !== undefined) {
            exerciseInfo(VmcoreInfo.parse(new TextDecoder().decode(note.desc), core.label));
          }
          const buf = new Uint8Array(4096 + 64);
          for (const s of core.segments.slice(0, 4)) {
            core.readPhys(s.paddr, buf.subarray(0, 64));
            if (s.memSize > 32) core.readPhys(s.paddr + s.memSize - 32, buf.subarray(0, 32));
            core.readPhys(s.paddr + s.memSize - 8, buf); // may straddle
          }
          for (const p of opt.pfns ?? []) core.readPhys(p * 4096, buf);
        } finally {
          core.close();
        }
      } finally {
        c.restore();
      }
      return;
    }
    case "notes": {
      const s = ctx.fileSeed("elf", input.base);
      const bytes = applyPatches(s.bytes, input.file ?? []);
      const dv = new DataView(bytes.buffer);
      const phoff = Number(decode(s.bytes, 32, 8)), phnum = decode(s.bytes, 56, 2);
      for (let i = 0; i < Number(phnum); i++) {
        const b = phoff + i * 56;
        if (b + 56 > s.bytes.length || dv.getUint32(b, true) !== 4) continue;
        const off = Number(decode(s.bytes, b + 8, 8)), sz = Number(decode(s.bytes, b + 32, 8));
        const notes = parseNotes(bytes.subarray(off, Math.min(bytes.length, off + sz)), off, "notes");
        for (const n of notes) {
          if (n.name === "VMCOREINFO") {
            exerciseInfo(VmcoreInfo.parse(new TextDecoder().decode(n.desc), "note"));
          }
        }
      }
      return;
    }
    case "vmcoreinfo": {
      const m = ctx.mem(input.base);
      const info = VmcoreInfo.parse(input.text ?? m.info.text, "fuzzed VMCOREINFO");
      exerciseInfo(info);
      memoryFlow(m.core, info, opt, ctx.skipped);
      return;
    }
    case "memory":
    case "printk": {
      const m = ctx.mem(input.base);
      const mem = new OverlayMem(m.core, input.phys ?? []);
      const info = input.text === undefined ? m.info : VmcoreInfo.parse(input.text, "fuzzed VMCOREINFO");
      if (input.target === "printk") {
        const model = buildMemoryModel(mem, info);
        expect(() => void extractDmesg(model.vm, info, { partial: opt.partial, callerColumn: opt.caller }));
        return;
      }
      memoryFlow(mem, info, opt, ctx.skipped);
      return;
    }
    case "kdump":
    case "verify": {
      const c = ctx.copy("kdump", input.base);
      c.apply(input.file ?? []);
      try {
        if (input.target === "verify") {
          verifyDump(c.path, ctx.seeds.kdump[input.base].vmcore, { maxProblems: 5 });
          return;
        }
        const k = KdumpFile.open(c.path, { zeroExcluded: opt.zero, codecImpl: "builtin" });
        try {
          exerciseKdump(k, opt, ctx.skipped);
        } finally {
          k.close();
        }
        if (c.size < 4 * MiB) expect(() => void describeDump(c.path));
      } finally {
        c.restore();
      }
      return;
    }
    case "flat": {
      const s = ctx.fileSeed("flat", input.base);
      let bytes = applyPatches(s.bytes, input.file ?? []);
      if (input.truncate !== undefined) bytes = bytes.subarray(0, input.truncate);
      let pos = 0;
      const src = {
        readSync(p: Uint8Array): number | null {
          if (pos >= bytes.length) return null;
          const n = Math.min(p.length, bytes.length - pos, 1 + (pos % 7919)); // short reads too
          p.set(bytes.subarray(pos, pos + n));
          pos += n;
          return n;
        },
      };
      const reader = new FlatReader(src, "fuzzed.flat", { chunkSize: opt.chunk, maxRecordSize: 16 * MiB });
      const sink = new MemSink("rebuilt");
      rebuildFlat(reader, sink);
      if (opt.model) {
        const out = sink.bytes(64 * MiB);
        if (out === undefined) return;
        const path = `${ctx.workDir}/rebuilt.kdump`;
        Deno.writeFileSync(path, out);
        const k = KdumpFile.open(path, { codecImpl: "builtin" });
        try {
          exerciseKdump(k, { pfns: [0, 1, 2, 16, 17, 300, 1000] });
        } finally {
          k.close();
        }
      }
      return;
    }
    case "oldlog": {
      const s = ctx.oldLog(input.base);
      const vm = new ArenaVm(applyPatches(s.arena, input.phys ?? []), OLDLOG_LEN);
      const info = VmcoreInfo.parse(input.text ?? s.text, "fuzzed VMCOREINFO");
      extractDmesg(vm, info, { partial: opt.partial, callerColumn: opt.caller });
      return;
    }
    case "dump": {
      const c = ctx.copy("elf", input.base);
      const m = ctx.mem(input.base);
      const patches = [...(input.file ?? [])];
      for (const p of input.phys ?? []) {
        for (const s of m.core.segments) {
          if (p.at >= s.paddr && p.at + p.bytes.length <= s.paddr + s.fileSize) {
            patches.push({ at: s.fileOffset + p.at - s.paddr, bytes: p.bytes });
          }
        }
      }
      c.apply(patches);
      try {
        const pre = ElfCore.open(c.path);
        const end = pre.segments.reduce((a, s) => Math.max(a, s.paddr + s.memSize), 0);
        pre.close();
        if (end > MAX_DUMP_BYTES) {
          ctx.skipped.set("dump of a huge machine", (ctx.skipped.get("dump of a huge machine") ?? 0) + 1);
          return;
        }
        // The dump layer's filter and the synchronous writer (runDump is async: its errors would not reach
        // this synchronous target).
        const input = openInput(c.path);
        try {
          const f = filterInput(
            input,
            { dumpLevel: opt.level ?? 31, imageGuard: opt.guard, excludeVmemmap: opt.vmemmap },
            (n) => ({ bitmap1: new MemBitmap(n), bitmap2: new MemBitmap(n) }),
          );
          writeKdump(f.source, {
            codec: opt.codec === undefined || opt.codec === "none"
              ? null
              : createCodec(opt.codec as CodecName),
            sink: new NullSink(),
            extraStatus: f.extraStatus,
          });
        } finally {
          input.close();
        }
      } finally {
        c.restore();
      }
      return;
    }
  }
}

/** Pick a target by weight (or the one asked for). */
export function pickTarget(rng: Rng, only?: readonly TargetName[]): TargetName {
  const names = only && only.length > 0 ? only : TARGET_NAMES;
  let total = 0;
  for (const n of names) total += TARGET_WEIGHT[n];
  let r = rng.int(total);
  for (const n of names) {
    r -= TARGET_WEIGHT[n];
    if (r < 0) return n;
  }
  return names[0];
}
