/**
 * Encode and decode the kdump-compressed main header (struct disk_dump_header, 464 bytes) and sub header
 * (struct kdump_sub_header, 104 bytes), LP64 little-endian (kdump-reference.md 4.1, 4.2, 13.1).
 * 64-bit fields that are offsets or pfns are plain numbers (files and pfns stay below 2^53); phys_base is a
 * bigint because x86_64 kernels may have a "negative" one.
 */
import { UTSNAME_SIZE } from "../../core/utsname.ts";
import { MAIN_HEADER_SIZE, SUB_HEADER_SIZE } from "./layout.ts";

/** "KDUMP   " */
export const KDUMP_SIGNATURE = "KDUMP   ";

/** True when `head` (the first bytes of a file) starts with the kdump-compressed signature. */
export function isKdumpHead(head: Uint8Array): boolean {
  return head.length >= 8 && String.fromCharCode(...head.subarray(0, 8)) === KDUMP_SIGNATURE;
}

/** Legacy diskdump signature (accepted by readers, never written). */
export const DISKDUMP_SIGNATURE = "DISKDUMP";
/** header_version written by makedumpfile and by us. */
export const KDUMP_HEADER_VERSION = 6;
/** Length of one utsname field. */
const UTS_FIELD = 65;

/** status bit: the dump is incomplete (the codec bits are formats/codecs/codec.ts FLAG_*). */
export const DUMP_DH_COMPRESSED_INCOMPLETE = 0x8;
/** status bit: -e excluded unused vmemmap pages. */
export const DUMP_DH_EXCLUDED_VMEMMAP = 0x10;

/** Field offsets inside the main header. */
export const MH = {
  signature: 0,
  headerVersion: 8,
  utsname: 12,
  timestampSec: 408,
  timestampUsec: 416,
  status: 424,
  blockSize: 428,
  subHdrSize: 432,
  bitmapBlocks: 436,
  maxMapnr: 440,
  totalRamBlocks: 444,
  deviceBlocks: 448,
  writtenBlocks: 452,
  currentCpu: 456,
  nrCpus: 460,
} as const;

/** Field offsets inside the sub header. */
export const SH = {
  physBase: 0,
  dumpLevel: 8,
  split: 12,
  startPfn: 16,
  endPfn: 24,
  offsetVmcoreinfo: 32,
  sizeVmcoreinfo: 40,
  offsetNote: 48,
  sizeNote: 56,
  offsetEraseinfo: 64,
  sizeEraseinfo: 72,
  startPfn64: 80,
  endPfn64: 88,
  maxMapnr64: 96,
} as const;

/** struct disk_dump_header. */
export interface MainHeader {
  /** "KDUMP   " (or the legacy "DISKDUMP"). */
  signature: string;
  /** header_version (6 for makedumpfile 1.7). */
  headerVersion: number;
  /** 390 bytes. */
  utsname: Uint8Array;
  /** Crash time, seconds since the epoch. */
  timestampSec: number;
  /** Crash time, microseconds part. */
  timestampUsec: number;
  /** Status bits: codec flag, incomplete (0x8), excluded vmemmap (0x10). */
  status: number;
  /** Page size (block_size). */
  blockSize: number;
  /** Blocks of the sub header. */
  subHdrSize: number;
  /** Blocks of both bitmaps together. */
  bitmapBlocks: number;
  /** 32-bit copy, min(max_mapnr, 2^32-1). */
  maxMapnr: number;
  /** Unused (0). */
  totalRamBlocks: number;
  /** Unused (0). */
  deviceBlocks: number;
  /** Unused (0). */
  writtenBlocks: number;
  /** Unused (0). */
  currentCpu: number;
  /** CPUs of the crashed kernel. */
  nrCpus: number;
}

/** struct kdump_sub_header (fields up to header_version 6). */
export interface SubHeader {
  /** Where the kernel image was loaded (two's complement 64-bit). */
  physBase: bigint;
  /** dump_level the file was written at. */
  dumpLevel: number;
  /** 1 when the file is one part of a --split set. */
  split: number;
  /** 32-bit truncated copies (obsolete). */
  startPfn: number;
  /** 32-bit truncated end pfn (obsolete). */
  endPfn: number;
  /** File offset of the VMCOREINFO text, 0 without. */
  offsetVmcoreinfo: number;
  /** Its size in bytes. */
  sizeVmcoreinfo: number;
  /** File offset of the ELF notes. */
  offsetNote: number;
  /** Their size in bytes. */
  sizeNote: number;
  /** File offset of the erase information, 0 without. */
  offsetEraseinfo: number;
  /** Its size in bytes. */
  sizeEraseinfo: number;
  /** First pfn of a split part. */
  startPfn64: number;
  /** End pfn (exclusive) of a split part. */
  endPfn64: number;
  /** max_mapnr, 64-bit. */
  maxMapnr64: number;
}

const U32 = 0x1_0000_0000;

/** Truncate to the low 32 bits (the C cast makedumpfile applies to the obsolete fields). */
function low32(v: number): number {
  return v % U32;
}

/** Encode the main header into 464 bytes. */
export function encodeMainHeader(h: MainHeader): Uint8Array {
  const b = new Uint8Array(MAIN_HEADER_SIZE);
  const dv = new DataView(b.buffer);
  for (let i = 0; i < 8; i++) b[i] = h.signature.charCodeAt(i) & 0xff;
  dv.setInt32(MH.headerVersion, h.headerVersion, true);
  if (h.utsname.length !== UTSNAME_SIZE) throw new RangeError(`utsname must be ${UTSNAME_SIZE} bytes`);
  b.set(h.utsname, MH.utsname);
  dv.setBigInt64(MH.timestampSec, BigInt(h.timestampSec), true);
  dv.setBigInt64(MH.timestampUsec, BigInt(h.timestampUsec), true);
  dv.setUint32(MH.status, h.status >>> 0, true);
  dv.setInt32(MH.blockSize, h.blockSize, true);
  dv.setInt32(MH.subHdrSize, h.subHdrSize, true);
  dv.setUint32(MH.bitmapBlocks, low32(h.bitmapBlocks), true);
  dv.setUint32(MH.maxMapnr, Math.min(h.maxMapnr, U32 - 1), true);
  dv.setUint32(MH.totalRamBlocks, h.totalRamBlocks, true);
  dv.setUint32(MH.deviceBlocks, h.deviceBlocks, true);
  dv.setUint32(MH.writtenBlocks, h.writtenBlocks, true);
  dv.setUint32(MH.currentCpu, h.currentCpu, true);
  dv.setInt32(MH.nrCpus, h.nrCpus, true);
  return b;
}

/** Decode a main header from at least 464 bytes. */
export function decodeMainHeader(b: Uint8Array): MainHeader {
  if (b.length < MAIN_HEADER_SIZE) throw new RangeError(`main header needs ${MAIN_HEADER_SIZE} bytes`);
  const dv = new DataView(b.buffer, b.byteOffset, MAIN_HEADER_SIZE);
  return {
    signature: String.fromCharCode(...b.subarray(0, 8)),
    headerVersion: dv.getInt32(MH.headerVersion, true),
    utsname: b.slice(MH.utsname, MH.utsname + UTSNAME_SIZE),
    timestampSec: Number(dv.getBigInt64(MH.timestampSec, true)),
    timestampUsec: Number(dv.getBigInt64(MH.timestampUsec, true)),
    status: dv.getUint32(MH.status, true),
    blockSize: dv.getInt32(MH.blockSize, true),
    subHdrSize: dv.getInt32(MH.subHdrSize, true),
    bitmapBlocks: dv.getUint32(MH.bitmapBlocks, true),
    maxMapnr: dv.getUint32(MH.maxMapnr, true),
    totalRamBlocks: dv.getUint32(MH.totalRamBlocks, true),
    deviceBlocks: dv.getUint32(MH.deviceBlocks, true),
    writtenBlocks: dv.getUint32(MH.writtenBlocks, true),
    currentCpu: dv.getUint32(MH.currentCpu, true),
    nrCpus: dv.getInt32(MH.nrCpus, true),
  };
}

function setU64(dv: DataView, at: number, v: number): void {
  dv.setUint32(at, v % U32, true);
  dv.setUint32(at + 4, Math.floor(v / U32), true);
}

function getU64(dv: DataView, at: number): number {
  // Values beyond 2^53 lose precision; readers validate offsets against the file size anyway.
  return dv.getUint32(at + 4, true) * U32 + dv.getUint32(at, true);
}

/** Encode the sub header into 104 bytes. */
export function encodeSubHeader(s: SubHeader): Uint8Array {
  const b = new Uint8Array(SUB_HEADER_SIZE);
  const dv = new DataView(b.buffer);
  dv.setBigUint64(SH.physBase, BigInt.asUintN(64, s.physBase), true);
  dv.setInt32(SH.dumpLevel, s.dumpLevel, true);
  dv.setInt32(SH.split, s.split, true);
  setU64(dv, SH.startPfn, low32(s.startPfn));
  setU64(dv, SH.endPfn, low32(s.endPfn));
  setU64(dv, SH.offsetVmcoreinfo, s.offsetVmcoreinfo);
  setU64(dv, SH.sizeVmcoreinfo, s.sizeVmcoreinfo);
  setU64(dv, SH.offsetNote, s.offsetNote);
  setU64(dv, SH.sizeNote, s.sizeNote);
  setU64(dv, SH.offsetEraseinfo, s.offsetEraseinfo);
  setU64(dv, SH.sizeEraseinfo, s.sizeEraseinfo);
  setU64(dv, SH.startPfn64, s.startPfn64);
  setU64(dv, SH.endPfn64, s.endPfn64);
  setU64(dv, SH.maxMapnr64, s.maxMapnr64);
  return b;
}

/** Decode a sub header from at least 104 bytes. */
export function decodeSubHeader(b: Uint8Array): SubHeader {
  if (b.length < SUB_HEADER_SIZE) throw new RangeError(`sub header needs ${SUB_HEADER_SIZE} bytes`);
  const dv = new DataView(b.buffer, b.byteOffset, SUB_HEADER_SIZE);
  return {
    physBase: dv.getBigUint64(SH.physBase, true),
    dumpLevel: dv.getInt32(SH.dumpLevel, true),
    split: dv.getInt32(SH.split, true),
    startPfn: getU64(dv, SH.startPfn),
    endPfn: getU64(dv, SH.endPfn),
    offsetVmcoreinfo: getU64(dv, SH.offsetVmcoreinfo),
    sizeVmcoreinfo: getU64(dv, SH.sizeVmcoreinfo),
    offsetNote: getU64(dv, SH.offsetNote),
    sizeNote: getU64(dv, SH.sizeNote),
    offsetEraseinfo: getU64(dv, SH.offsetEraseinfo),
    sizeEraseinfo: getU64(dv, SH.sizeEraseinfo),
    startPfn64: getU64(dv, SH.startPfn64),
    endPfn64: getU64(dv, SH.endPfn64),
    maxMapnr64: getU64(dv, SH.maxMapnr64),
  };
}

/** The six utsname strings (sysname, nodename, release, version, machine, domainname). */
export function utsnameFields(uts: Uint8Array): string[] {
  const out: string[] = [];
  for (let i = 0; i < 6; i++) {
    const f = uts.subarray(i * UTS_FIELD, (i + 1) * UTS_FIELD);
    const end = f.indexOf(0);
    out.push(new TextDecoder().decode(end < 0 ? f : f.subarray(0, end)));
  }
  return out;
}

/** Build a 390-byte utsname from strings (tests and synthetic dumps); each truncated to 64 bytes. */
export function makeUtsname(fields: string[]): Uint8Array {
  const b = new Uint8Array(UTSNAME_SIZE);
  fields.slice(0, 6).forEach((s, i) => {
    const e = new TextEncoder().encode(s).subarray(0, UTS_FIELD - 1);
    b.set(e, i * UTS_FIELD);
  });
  return b;
}
