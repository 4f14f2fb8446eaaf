/**
 * Reference codecs: the system libraries crash and libkdumpfile use (liblzo2, libsnappy, libzstd), loaded
 * through Deno FFI. Tests use them as independent oracles in both directions; the benchmark compares
 * against them. Each loader returns null when its library is absent (Debian: liblzo2-2, libsnappy1v5,
 * libzstd1), so callers can skip.
 */

/** A system-library codec: compress returns a fresh array; decompress returns the output length or -1. */
export interface RefCodec {
  readonly name: string;
  compress(src: Uint8Array): Uint8Array;
  /** Decompresses into `out`; returns the number of bytes produced, or -1 on any library error. */
  decompress(src: Uint8Array, out: Uint8Array): number;
}

type Buf = Uint8Array<ArrayBuffer>;

/** Copy into a fresh ArrayBuffer-backed array (FFI buffer parameters must not be resizable/shared). */
function own(a: Uint8Array): Buf {
  return a.buffer instanceof ArrayBuffer && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength
    ? a as Buf
    : new Uint8Array(a) as Buf;
}

function tryOpen<S extends Deno.ForeignLibraryInterface>(
  names: string[],
  symbols: S,
): Deno.DynamicLibrary<S> | null {
  for (const n of names) {
    try {
      return Deno.dlopen(n, symbols);
    } catch { /* try the next name */ }
  }
  return null;
}

const lzoSymbols = {
  __lzo_init_v2: {
    parameters: ["u32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  lzo1x_1_compress: { parameters: ["buffer", "usize", "buffer", "buffer", "buffer"], result: "i32" },
  lzo1x_decompress_safe: { parameters: ["buffer", "usize", "buffer", "buffer", "pointer"], result: "i32" },
  lzo_version: { parameters: [], result: "u32" },
} as const;

const snappySymbols = {
  snappy_compress: { parameters: ["buffer", "usize", "buffer", "buffer"], result: "i32" },
  snappy_uncompress: { parameters: ["buffer", "usize", "buffer", "buffer"], result: "i32" },
  snappy_uncompressed_length: { parameters: ["buffer", "usize", "buffer"], result: "i32" },
  snappy_max_compressed_length: { parameters: ["usize"], result: "usize" },
} as const;

const zstdSymbols = {
  ZSTD_compress: { parameters: ["buffer", "usize", "buffer", "usize", "i32"], result: "usize" },
  ZSTD_decompress: { parameters: ["buffer", "usize", "buffer", "usize"], result: "usize" },
  ZSTD_compressBound: { parameters: ["usize"], result: "usize" },
  ZSTD_isError: { parameters: ["usize"], result: "u32" },
  ZSTD_createCCtx: { parameters: [], result: "pointer" },
  ZSTD_compressCCtx: {
    parameters: ["pointer", "buffer", "usize", "buffer", "usize", "i32"],
    result: "usize",
  },
  ZSTD_createDCtx: { parameters: [], result: "pointer" },
  ZSTD_decompressDCtx: { parameters: ["pointer", "buffer", "usize", "buffer", "usize"], result: "usize" },
} as const;

let lzoLib: Deno.DynamicLibrary<typeof lzoSymbols> | null | undefined;
let snappyLib: Deno.DynamicLibrary<typeof snappySymbols> | null | undefined;
let zstdLib: Deno.DynamicLibrary<typeof zstdSymbols> | null | undefined;

/** liblzo2: lzo1x_1_compress / lzo1x_decompress_safe (what makedumpfile and crash call). */
export function refLzo(): RefCodec | null {
  if (lzoLib === undefined) {
    lzoLib = tryOpen(["liblzo2.so.2", "liblzo2.so"], lzoSymbols);
    if (lzoLib) {
      // lzo_init(): __lzo_init_v2(LZO_VERSION, sizeof short, int, long, lzo_uint32_t, lzo_uint,
      // lzo_sizeof_dict_t, char *, lzo_voidp, lzo_callback_t) on LP64
      const rc = lzoLib.symbols.__lzo_init_v2(lzoLib.symbols.lzo_version(), 2, 4, 8, 4, 8, 8, 8, 8, 48);
      if (rc !== 0) throw new Error(`lzo_init failed: ${rc}`);
    }
  }
  const lib = lzoLib;
  if (!lib) return null;
  const wrk = new Uint8Array(16384 * 8); // LZO1X_1_MEM_COMPRESS
  const len = new BigUint64Array(1);
  const lenBytes = new Uint8Array(len.buffer);
  return {
    name: "liblzo2",
    compress(src) {
      const dst = new Uint8Array(src.length + (src.length >>> 4) + 64 + 3);
      const rc = lib.symbols.lzo1x_1_compress(own(src), BigInt(src.length), dst, lenBytes, wrk);
      if (rc !== 0) throw new Error(`lzo1x_1_compress: ${rc}`);
      return dst.slice(0, Number(len[0]));
    },
    decompress(src, out) {
      len[0] = BigInt(out.length);
      const o = own(out);
      const rc = lib.symbols.lzo1x_decompress_safe(own(src), BigInt(src.length), o, lenBytes, null);
      if (o !== out) out.set(o);
      return rc === 0 ? Number(len[0]) : -1;
    },
  };
}

/** libsnappy C API: snappy_compress / snappy_uncompressed_length + snappy_uncompress (as crash). */
export function refSnappy(): RefCodec | null {
  if (snappyLib === undefined) snappyLib = tryOpen(["libsnappy.so.1", "libsnappy.so"], snappySymbols);
  const lib = snappyLib;
  if (!lib) return null;
  const len = new BigUint64Array(1);
  const lenBytes = new Uint8Array(len.buffer);
  return {
    name: "libsnappy",
    compress(src) {
      const max = Number(lib.symbols.snappy_max_compressed_length(BigInt(src.length)));
      const dst = new Uint8Array(max);
      len[0] = BigInt(max);
      const rc = lib.symbols.snappy_compress(own(src), BigInt(src.length), dst, lenBytes);
      if (rc !== 0) throw new Error(`snappy_compress: ${rc}`);
      return dst.slice(0, Number(len[0]));
    },
    decompress(src, out) {
      const s = own(src);
      if (lib.symbols.snappy_uncompressed_length(s, BigInt(src.length), lenBytes) !== 0) return -1;
      if (Number(len[0]) > out.length) return -1;
      len[0] = BigInt(out.length);
      const o = own(out);
      const rc = lib.symbols.snappy_uncompress(s, BigInt(src.length), o, lenBytes);
      if (o !== out) out.set(o);
      return rc === 0 ? Number(len[0]) : -1;
    },
  };
}

/** libzstd: ZSTD_compress level `level` / ZSTD_decompress (libkdumpfile; crash uses the DCtx variant). */
export function refZstd(level = 1): RefCodec | null {
  if (zstdLib === undefined) zstdLib = tryOpen(["libzstd.so.1", "libzstd.so"], zstdSymbols);
  const lib = zstdLib;
  if (!lib) return null;
  return {
    name: "libzstd",
    compress(src) {
      const cap = Number(lib.symbols.ZSTD_compressBound(BigInt(src.length)));
      const dst = new Uint8Array(cap);
      const n = lib.symbols.ZSTD_compress(dst, BigInt(cap), own(src), BigInt(src.length), level);
      if (lib.symbols.ZSTD_isError(n)) throw new Error("ZSTD_compress failed");
      return dst.slice(0, Number(n));
    },
    decompress(src, out) {
      const o = own(out);
      const n = lib.symbols.ZSTD_decompress(o, BigInt(out.length), own(src), BigInt(src.length));
      if (o !== out) out.set(o);
      return lib.symbols.ZSTD_isError(n) ? -1 : Number(n);
    },
  };
}

/**
 * Sample `count` page-aligned 4 KiB pages spread evenly over the PT_LOAD data of an ELF64 vmcore
 * (returns [] when the file is absent or not ELF64).
 */
export function sampleElfPages(path: string, count: number, pageSize = 4096): Uint8Array[] {
  let f: Deno.FsFile;
  try {
    f = Deno.openSync(path, { read: true });
  } catch {
    return [];
  }
  try {
    const readAt = (off: number, n: number): Uint8Array => {
      const b = new Uint8Array(n);
      f.seekSync(off, Deno.SeekMode.Start);
      let got = 0;
      while (got < n) {
        const r = f.readSync(b.subarray(got));
        if (r === null || r === 0) break;
        got += r;
      }
      return b.subarray(0, got);
    };
    const eh = readAt(0, 64);
    if (eh.length < 64 || eh[0] !== 0x7f || eh[1] !== 0x45 || eh[4] !== 2) return [];
    const dv = new DataView(eh.buffer, eh.byteOffset, 64);
    const phoff = Number(dv.getBigUint64(32, true));
    const phentsize = dv.getUint16(54, true);
    const phnum = dv.getUint16(56, true);
    const ph = readAt(phoff, phentsize * phnum);
    const pv = new DataView(ph.buffer, ph.byteOffset, ph.length);
    const segs: { off: number; pages: number }[] = [];
    let total = 0;
    for (let i = 0; i < phnum; i++) {
      const b = i * phentsize;
      if (pv.getUint32(b, true) !== 1) continue; // PT_LOAD
      const off = Number(pv.getBigUint64(b + 8, true));
      const pages = Math.floor(Number(pv.getBigUint64(b + 32, true)) / pageSize);
      if (pages > 0) segs.push({ off, pages }), total += pages;
    }
    const out: Uint8Array[] = [];
    if (total === 0) return out;
    for (let k = 0; k < count; k++) {
      let idx = Math.floor((k + 0.5) * total / count);
      for (const s of segs) {
        if (idx < s.pages) {
          const p = readAt(s.off + idx * pageSize, pageSize);
          if (p.length === pageSize) out.push(p);
          break;
        }
        idx -= s.pages;
      }
    }
    return out;
  } finally {
    f.close();
  }
}
