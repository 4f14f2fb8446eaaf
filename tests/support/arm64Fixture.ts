/**
 * The real arm64 fixture (../shared/fixtures/real-arm64-6.1: Debian 6.1 arm64 guest, 4 KiB pages, VA_BITS=48,
 * KASLR, negative PHYS_OFFSET) and facts derived from makedumpfile 1.7.2's arm64 build on it (run under
 * qemu-aarch64-static; see docs/arm64.md). Tests using these helpers skip when the fixture is absent.
 */
import { fileURLToPath } from "node:url";
import { CACHE_DIR, isFile } from "./fixture.ts";

const here = fileURLToPath(new URL(".", import.meta.url));
/** Directory of the real arm64 fixture. */
export const ARM64_DIR = `${here}../../../shared/fixtures/real-arm64-6.1`;

/**
 * sha256 of makedumpfile 1.7.2 (arm64) outputs on the fixture's vmcore that the fixture folder does not hold:
 * `makedumpfile -d 31` (uncompressed kdump) and `makedumpfile -E -d 31` (ELF).
 */
export const ARM64_MDF_SHA256 = {
  rawD31: "f55a2b231bd831685c1457a78a3c973536bcbe069130b06b6c2bfcd77a43ed0a",
  elfD31: "08a78c215c79727cb97df50cd63ae3c5be46c8e57e700919afca984e502f6c4a",
};

/** True when the arm64 fixture is there. */
export function haveArm64(): boolean {
  return isFile(`${ARM64_DIR}/vmcore.elf.zst`);
}

/** expected.json of the arm64 fixture. */
export function arm64Expected(): Record<string, unknown> & {
  dump_levels: Record<string, Record<string, number>>;
  outputs_d31: Record<string, { sha256: string; size: number }>;
} {
  return JSON.parse(Deno.readTextFileSync(`${ARM64_DIR}/expected.json`));
}

/** Unpack `name`.zst of the arm64 fixture into the shared cache once (atomic rename); returns the path. */
export async function unpackArm64(name: string): Promise<string> {
  const out = `${CACHE_DIR}/arm64-${name}`;
  try {
    if (Deno.statSync(out).isFile) return out;
  } catch { /* not yet */ }
  Deno.mkdirSync(CACHE_DIR, { recursive: true });
  const tmp = `${out}.${Deno.pid}.${crypto.randomUUID()}.tmp`;
  const zlib = await import("node:zlib");
  const { pipeline } = await import("node:stream/promises");
  const fs = await import("node:fs");
  // deno-lint-ignore no-explicit-any
  const z = (zlib as any).createZstdDecompress({ params: { [zlib.constants.ZSTD_d_windowLogMax]: 31 } });
  await pipeline(fs.createReadStream(`${ARM64_DIR}/${name}.zst`), z, fs.createWriteStream(tmp));
  Deno.renameSync(tmp, out);
  return out;
}

/** The arm64 vmcore (program headers at 64, as makedumpfile 1.7.2 needs). */
export function arm64Vmcore(): Promise<string> {
  return unpackArm64("vmcore.elf");
}
