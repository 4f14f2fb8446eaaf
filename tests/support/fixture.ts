/**
 * Access to the real fixture in ../shared/fixtures/real-6.1 (present in CI and for developers, but the
 * project must also test itself without it: tests using these helpers skip when it is absent).
 */
import { fileURLToPath } from "node:url";

const here = fileURLToPath(new URL(".", import.meta.url));
/** Directory of the real 6.1 fixture. */
export const REAL_DIR = `${here}../../../shared/fixtures/real-6.1`;
/** Where unpacked fixture files are cached (outside the repo; shared by test processes). */
export const CACHE_DIR = Deno.env.get("VMSIFT_FIXTURE_CACHE") ?? "/var/tmp/vmsift-fixtures";

/** The debug vmlinux of the real fixture's kernel (from the linux-image-6.1.0-56-amd64-dbg package). */
export const VMLINUX = "/usr/lib/debug/boot/vmlinux-6.1.0-56-amd64";

/** True when `path` names a regular file (false when it is absent or unreadable). */
export function isFile(path: string | undefined): path is string {
  try {
    return path !== undefined && Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/** True when the real fixture folder exists. */
export function haveReal(): boolean {
  return isFile(`${REAL_DIR}/vmcore.elf.zst`);
}

/** True when the debug vmlinux of the real fixture's kernel is installed (for crash, pahole, `-x`). */
export function haveVmlinux(): boolean {
  return isFile(VMLINUX);
}

/** expected.json of the real fixture. */
export function realExpected(): Record<string, unknown> & {
  dump_levels: Record<string, Record<string, number>>;
} {
  return JSON.parse(Deno.readTextFileSync(`${REAL_DIR}/expected.json`));
}

/**
 * Unpack `name`.zst from the real fixture into the cache (once; atomic rename so parallel tests agree) and
 * return the path. Uses the `zstd` command when present, else node:zlib's zstd.
 */
export async function unpackReal(name: string): Promise<string> {
  const out = `${CACHE_DIR}/${name}`;
  try {
    if (Deno.statSync(out).isFile) return out;
  } catch { /* not yet */ }
  Deno.mkdirSync(CACHE_DIR, { recursive: true });
  const tmp = `${out}.${Deno.pid}.${crypto.randomUUID()}.tmp`;
  const src = `${REAL_DIR}/${name}.zst`;
  const zlib = await import("node:zlib");
  const { pipeline } = await import("node:stream/promises");
  const fs = await import("node:fs");
  // deno-lint-ignore no-explicit-any
  const z = (zlib as any).createZstdDecompress({ params: { [zlib.constants.ZSTD_d_windowLogMax]: 31 } });
  await pipeline(fs.createReadStream(src), z, fs.createWriteStream(tmp));
  Deno.renameSync(tmp, out);
  return out;
}

/** The real vmcore (makedumpfile-compatible layout, program headers at 64). */
export function realVmcore(): Promise<string> {
  return unpackReal("vmcore.elf");
}

/** The real vmcore with QEMU 7.2's original header (program headers at offset 192). */
export async function realVmcoreQemuLayout(): Promise<string> {
  const out = `${CACHE_DIR}/vmcore-qemu.elf`;
  try {
    if (Deno.statSync(out).isFile) return out;
  } catch { /* not yet */ }
  const base = await realVmcore();
  const tmp = `${out}.${Deno.pid}.tmp`;
  Deno.copyFileSync(base, tmp);
  const hdr = Deno.readFileSync(`${REAL_DIR}/qemu-original-header.bin`);
  const f = Deno.openSync(tmp, { write: true });
  f.writeSync(hdr);
  f.close();
  Deno.renameSync(tmp, out);
  return out;
}
