/**
 * The floor of `-l -d 31` / `-c -d 31` in Deno (bench/floor.ts): `deno run --allow-read --allow-write
 * --allow-ffi loop.ts IN OFFSETS OUT [lzo|zlib]`, loop.c's loop through Deno FFI, the fewest calls per page
 * a Deno program can make: libc memcmp (zero test) and lzo1x_1_compress or libz compress2 (level 1) on
 * addresses in one mmap of the whole file (MADV_RANDOM, as loop.c), output compressed straight into a 1 MiB
 * buffer written with write(). No imports: nothing of vmsift is loaded.
 */
const libc = Deno.dlopen("libc.so.6", {
  open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  mmap: { parameters: ["usize", "usize", "i32", "i32", "i32", "i64"], result: "usize" },
  madvise: { parameters: ["usize", "usize", "i32"], result: "i32" },
  memcmp: { parameters: ["usize", "buffer", "usize"], result: "i32" },
  memcpy: { parameters: ["buffer", "usize", "usize"], result: "usize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
}).symbols;
const lzo = Deno.dlopen("liblzo2.so.2", {
  __lzo_init_v2: {
    parameters: ["u32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32", "i32"],
    result: "i32",
  },
  lzo1x_1_compress: { parameters: ["usize", "usize", "usize", "buffer", "buffer"], result: "i32" },
}).symbols;
const libz = Deno.dlopen("libz.so.1", {
  compress2: { parameters: ["usize", "buffer", "usize", "usize", "i32"], result: "i32" },
}).symbols;

const [inPath, offsetsPath, outPath, codec = "lzo"] = Deno.args;
const zlib = codec === "zlib";
const PAGE = 4096, CHUNK = 1 << 20;
const cString = (s: string) => new TextEncoder().encode(s + "\0");
const inFd = libc.open(cString(inPath), 0, 0);
if (inFd < 0) throw new Error(`${inPath}: open failed`);
const base = libc.mmap(
  0n,
  BigInt(Deno.statSync(inPath).size),
  1, /* PROT_READ */
  1, /* MAP_SHARED */
  inFd,
  0n,
);
if (base === 0xffffffffffffffffn) throw new Error(`${inPath}: mmap failed`);
const offsets = new Float64Array(Deno.readFileSync(offsetsPath).buffer);
const outFd = libc.open(cString(outPath), 0o1 | 0o100 | 0o1000, /* O_WRONLY|O_CREAT|O_TRUNC */ 0o600);
if (outFd < 0) throw new Error(`${outPath}: open failed`);
if (lzo.__lzo_init_v2(2, 2, 4, 8, 4, 8, 8, 8, 8, -1) !== 0) throw new Error("lzo init failed");

const zero = new Uint8Array(PAGE), buf = new Uint8Array(CHUNK + 2 * PAGE), wrk = new Uint8Array(1 << 17);
const bufAddr = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
const lenOut = new BigUint64Array(1), lenBytes = new Uint8Array(lenOut.buffer);
const PAGE_N = BigInt(PAGE);
let used = 0, nonZero = 0;
for (let i = 0; i < offsets.length; i++) {
  const p = base + BigInt(offsets[i]);
  if (libc.memcmp(p, zero, PAGE_N) === 0) continue;
  nonZero++;
  lenOut[0] = 2n * PAGE_N;
  const rc = zlib
    ? libz.compress2(bufAddr + BigInt(used), lenBytes, p, PAGE_N, 1)
    : lzo.lzo1x_1_compress(p, PAGE_N, bufAddr + BigInt(used), lenBytes, wrk);
  let len = rc === 0 ? Number(lenOut[0]) : PAGE;
  if (len >= PAGE) {
    libc.memcpy(buf.subarray(used), p, PAGE_N);
    len = PAGE;
  }
  used += len;
  if (used >= CHUNK) {
    if (libc.write(outFd, buf, BigInt(used)) !== BigInt(used)) throw new Error(`${outPath}: write failed`);
    used = 0;
  }
}
if (libc.write(outFd, buf, BigInt(used)) !== BigInt(used) || libc.close(outFd) !== 0) {
  throw new Error(`${outPath}: write failed`);
}
console.log(`${offsets.length} pages, ${nonZero} not zero`);
