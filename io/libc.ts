/**
 * The few libc calls vmsift needs for raw (O_DIRECT) file I/O, through Deno FFI (needs --allow-ffi).
 * Linux x86_64 and aarch64 (the open flags below are the same on both except O_DIRECT, which arm64's
 * asm/fcntl.h moves to 0200000; the host's, not the dump's, architecture). libc.so.6 is opened lazily on first use, so
 * importing this module costs nothing on runs that never write with O_DIRECT.
 *
 * Calls return kernel style results: a non-negative value on success, `-errno` on failure, so callers never
 * have to read errno separately (it is read right after the failing call).
 */

import { type ErrorPlace, VmsiftError } from "../core/errors.ts";

/** open(2) flags (asm-generic/fcntl.h values, O_DIRECT per host architecture). */
export const O_RDONLY = 0;
export const O_RDWR = 0o2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_TRUNC = 0o1000;
export const O_DIRECT = Deno.build.arch === "aarch64" ? 0o200000 : 0o40000;
export const O_CLOEXEC = 0o2000000;

/** errno values used by callers. */
export const EINTR = 4;
export const EEXIST = 17;
export const EINVAL = 22;
export const ENOSPC = 28;

const SYMBOLS = {
  open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  fsync: { parameters: ["i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  lseek: { parameters: ["i32", "i64", "i32"], result: "i64" },
  posix_memalign: { parameters: ["buffer", "usize", "usize"], result: "i32" },
  free: { parameters: ["pointer"], result: "void" },
  unlink: { parameters: ["buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
  memcmp: { parameters: ["buffer", "buffer", "usize"], result: "i32" },
} as const;

type Lib = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

let lib: Lib | null = null;
let errnoView: Deno.UnsafePointerView | null = null;

function L(): Lib {
  if (lib === null) {
    lib = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
    // errno lives in thread-local storage; its address is fixed for this (the isolate's) thread.
    errnoView = new Deno.UnsafePointerView(lib.__errno_location()!);
  }
  return lib;
}

function errno(): number {
  return errnoView!.getInt32(0);
}

const enc = new TextEncoder();

function cstr(s: string): Uint8Array<ArrayBuffer> {
  const b = enc.encode(s);
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

/** True when FFI is allowed without prompting (the permission is granted, not merely promptable). */
export function ffiGranted(): boolean {
  try {
    return typeof Deno.dlopen === "function" &&
      Deno.permissions.querySync({ name: "ffi" }).state === "granted";
  } catch {
    return false;
  }
}

/** True when libc can be loaded (FFI permission granted, glibc present). Never prompts for permission. */
export function libcAvailable(): boolean {
  if (lib !== null) return true;
  try {
    if (!ffiGranted()) return false;
    L();
    return true;
  } catch {
    return false;
  }
}

/** open(2): returns the fd or -errno. */
export function sysOpen(path: string, flags: number, mode = 0o600): number {
  const l = L();
  for (;;) {
    const fd = l.open(cstr(path), flags | O_CLOEXEC, mode);
    if (fd >= 0) return fd;
    const e = errno();
    if (e !== EINTR) return -e;
  }
}

/** One pread(2) call (retried on EINTR): bytes read (0 at end of file) or -errno. */
export function sysPread(fd: number, buf: Uint8Array<ArrayBuffer>, offset: number): number {
  const l = L();
  for (;;) {
    const n = Number(l.pread(fd, buf, BigInt(buf.length), BigInt(offset)));
    if (n >= 0) return n;
    const e = errno();
    if (e !== EINTR) return -e;
  }
}

/** One pwrite(2) call (retried on EINTR): bytes written or -errno. */
function sysPwrite(fd: number, buf: Uint8Array<ArrayBuffer>, offset: number): number {
  const l = L();
  for (;;) {
    const n = Number(l.pwrite(fd, buf, BigInt(buf.length), BigInt(offset)));
    if (n >= 0) return n;
    const e = errno();
    if (e !== EINTR) return -e;
  }
}

/** ftruncate(2): 0 or -errno. */
export function sysFtruncate(fd: number, size: number): number {
  const l = L();
  for (;;) {
    if (l.ftruncate(fd, BigInt(size)) === 0) return 0;
    const e = errno();
    if (e !== EINTR) return -e;
  }
}

/** fsync(2): 0 or -errno. */
export function sysFsync(fd: number): number {
  const l = L();
  for (;;) {
    if (l.fsync(fd) === 0) return 0;
    const e = errno();
    if (e !== EINTR) return -e;
  }
}

/** The size of an open file: lseek(fd, 0, SEEK_END) (the file position is not used by pread); or -errno. */
export function sysFileSize(fd: number): number {
  const n = Number(L().lseek(fd, 0n, 2));
  return n >= 0 ? n : -errno();
}

/** close(2): 0 or -errno (never retried: the fd is gone either way on Linux). */
export function sysClose(fd: number): number {
  return L().close(fd) === 0 ? 0 : -errno();
}

/** unlink(2): 0 or -errno. */
export function sysUnlink(path: string): number {
  return L().unlink(cstr(path)) === 0 ? 0 : -errno();
}

/** posix_memalign(3): the pointer, or throws (it returns the error number instead of setting errno). */
export function memalign(alignment: number, size: number): Deno.PointerObject {
  const out = new BigUint64Array(1);
  const rc = L().posix_memalign(new Uint8Array(out.buffer), BigInt(alignment), BigInt(size));
  const p = rc === 0 ? Deno.UnsafePointer.create(out[0]) : null;
  if (p === null) throw new Error(`posix_memalign(${alignment}, ${size}): ${strerror(rc || 12)}`);
  return p;
}

/** free(3). */
export function memfree(p: Deno.PointerObject): void {
  L().free(p);
}

const PROT_READ = 1;
const MAP_SHARED = 1;
const MAP_FAILED = 0xffffffffffffffffn;

/** mmap(2) of `length` bytes of `fd` at `offset` (page aligned), read-only and shared: pointer or -errno. */
export function sysMmapRead(fd: number, length: number, offset: number): Deno.PointerObject | number {
  const p = L().mmap(null, BigInt(length), PROT_READ, MAP_SHARED, fd, BigInt(offset));
  if (p === null || Deno.UnsafePointer.value(p) === MAP_FAILED) return -errno();
  return p;
}

const MAP_PRIVATE = 2;
const MAP_FIXED = 0x10;
const MAP_ANONYMOUS = 0x20;

/**
 * Reserve `length` bytes of address space that read as zeros (an anonymous private read-only mapping: no
 * memory until touched): a fixed place for {@link sysMmapReadFixed}. Pointer or -errno.
 */
export function sysMmapReserve(length: number): Deno.PointerObject | number {
  const p = L().mmap(null, BigInt(length), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  if (p === null || Deno.UnsafePointer.value(p) === MAP_FAILED) return -errno();
  return p;
}

/**
 * mmap(2) of `length` bytes of `fd` at `offset` (page aligned), read-only and shared, AT `addr` (MAP_FIXED:
 * it replaces whatever `addr` held, which must be a reservation of ours): 0 or -errno. On failure the range
 * reads as zeros again (re-reserved), so that views of it never touch unmapped memory.
 */
export function sysMmapReadFixed(
  addr: Deno.PointerObject,
  length: number,
  fd: number,
  offset: number,
): number {
  const want = Deno.UnsafePointer.value(addr);
  const p = L().mmap(addr, BigInt(length), PROT_READ, MAP_SHARED | MAP_FIXED, fd, BigInt(offset));
  if (p !== null && Deno.UnsafePointer.value(p) === want) return 0;
  const e = p === null || Deno.UnsafePointer.value(p) === MAP_FAILED ? errno() : EINVAL;
  L().mmap(addr, BigInt(length), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0n);
  return -e;
}

/** madvise(2) advice: no read-around on faults (the pages are read in no particular order). */
export const MADV_RANDOM = 1;
/** madvise(2) advice: read these pages into the page cache now (readahead of exactly the range). */
export const MADV_WILLNEED = 3;

/** madvise(2) of `length` bytes at byte `offset` of the mapping at `addr` (page aligned): 0 or -errno. */
export function sysMadvise(addr: Deno.PointerObject, offset: number, length: number, advice: number): number {
  const p = offset === 0 ? addr : Deno.UnsafePointer.offset(addr, offset);
  return L().madvise(p, BigInt(length), advice) === 0 ? 0 : -errno();
}

/** munmap(2). */
export function sysMunmap(p: Deno.PointerObject, length: number): number {
  return L().munmap(p, BigInt(length)) === 0 ? 0 : -errno();
}

/** strerror(3) text for an errno value (positive or negative). */
export function strerror(e: number): string {
  const p = L().strerror(Math.abs(e));
  return p === null ? `errno ${Math.abs(e)}` : Deno.UnsafePointerView.getCString(p);
}

/** A failed system call: a VmsiftError that also carries the errno (ENOSPC matters to the -d retry logic). */
export class SysError extends VmsiftError {
  readonly errno: number;
  constructor(what: string, err: number, place: ErrorPlace) {
    super(`${what}: ${strerror(err)}`, place);
    this.errno = Math.abs(err);
  }
}

/** The signature of sysOpen, injectable for tests (e.g. to play a file system that refuses O_DIRECT). */
export type OpenFn = (path: string, flags: number, mode: number) => number;

/** Result of openMaybeDirect. */
export interface OpenedFile {
  fd: number;
  /** O_DIRECT is in effect. */
  direct: boolean;
  /** Set when O_DIRECT was asked for but refused, so the file is buffered (say it once to the user). */
  warning?: string;
}

/**
 * Open `path` with `flags`, adding O_DIRECT when `direct`. A file system that refuses O_DIRECT answers
 * EINVAL (ramfs, old tmpfs, some FUSE); then the file is opened again without it and `warning` says so. The
 * kernel creates the file before it checks O_DIRECT, so the retry drops O_EXCL and truncates instead.
 * Other failures throw SysError.
 */
export function openMaybeDirect(
  path: string,
  flags: number,
  mode: number,
  direct: boolean,
  openFn: OpenFn = sysOpen,
): OpenedFile {
  let fd = openFn(path, flags | (direct ? O_DIRECT : 0), mode);
  if (fd >= 0) return { fd, direct };
  if (fd === -EEXIST) {
    throw new SysError("cannot create (it exists; overwrite to replace it)", fd, { file: path });
  }
  if (!direct || fd !== -EINVAL) throw new SysError("cannot open", fd, { file: path });
  const retry = (flags & O_EXCL) !== 0 ? (flags & ~O_EXCL) | O_TRUNC : flags;
  fd = openFn(path, retry, mode);
  if (fd < 0) throw new SysError("cannot open", fd, { file: path });
  return {
    fd,
    direct: false,
    warning: `${path}: the file system refuses O_DIRECT; writing through the page cache instead`,
  };
}

/** pwrite all of `buf` at `offset` (looping over short writes); throws SysError naming file and offset. */
export function pwriteFull(fd: number, buf: Uint8Array<ArrayBuffer>, offset: number, file: string): number {
  let done = 0;
  let calls = 0;
  while (done < buf.length) {
    const n = sysPwrite(fd, done === 0 ? buf : buf.subarray(done), offset + done);
    calls++;
    if (n < 0) throw new SysError("write failed", n, { file, offset: offset + done });
    if (n === 0) throw new SysError("write failed", ENOSPC, { file, offset: offset + done });
    done += n;
  }
  return calls;
}

/**
 * pread into `buf` at `offset`; returns the bytes read, fewer only at the end of the file (the rest of `buf` is
 * left as it was). Throws SysError naming file and offset.
 */
export function preadFull(fd: number, buf: Uint8Array<ArrayBuffer>, offset: number, file: string): number {
  let done = 0;
  while (done < buf.length) {
    const want = buf.length - done;
    const n = sysPread(fd, done === 0 ? buf : buf.subarray(done), offset + done);
    if (n < 0) throw new SysError("read failed", n, { file, offset: offset + done });
    done += n;
    // A regular file reads short only at its end; asking again at an unaligned offset would fail O_DIRECT.
    if (n < want) break;
  }
  return done;
}

/**
 * All-zero test of whole pages with libc's memcmp against a zero page (vectorized: about half the time of the
 * JavaScript word loop on pages read from the page cache; the call itself costs ~35 ns with a BigInt length).
 * Null when libc cannot be loaded (no FFI permission): callers keep their JavaScript test.
 */
export class ZeroPageTest {
  readonly #zero: Uint8Array<ArrayBuffer>;
  readonly #len: bigint;
  readonly #lib: Lib;

  private constructor(pageSize: number, l: Lib) {
    this.#zero = new Uint8Array(new ArrayBuffer(pageSize));
    this.#len = BigInt(pageSize);
    this.#lib = l;
  }

  /** A test for pages of `pageSize` bytes, or null without libc. */
  static open(pageSize: number): ZeroPageTest | null {
    return libcAvailable() ? new ZeroPageTest(pageSize, L()) : null;
  }

  /** True when `page` (pageSize bytes of a plain, non-resizable ArrayBuffer) is all zero. */
  isZero(page: Uint8Array<ArrayBuffer>): boolean {
    return this.#lib.memcmp(page, this.#zero, this.#len) === 0;
  }
}
