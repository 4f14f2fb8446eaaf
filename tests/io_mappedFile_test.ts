import assert from "node:assert/strict";
import { MappedFile } from "../io/mappedFile.ts";
import { ElfCore } from "../formats/elfCore.ts";
import { buildElfCore } from "../fixtures/miniElf.ts";
import { tempDir } from "./support/run.ts";

Deno.test("mappedFile: reads across window boundaries equal the file bytes; ElfCore uses it", () => {
  const dir = tempDir();
  try {
    const path = `${dir}/f.bin`;
    const data = new Uint8Array(3 * 65536 + 123).map((_, i) => (i * 7 + (i >> 9)) & 0xff);
    Deno.writeFileSync(path, data);
    const m = MappedFile.open(path, data.length, 65536);
    assert.ok(m, "mmap works on this filesystem");
    for (
      const [off, len] of [[0, 10], [65530, 20], [65536 * 2 - 1, 65538], [data.length - 5, 5], [
        0,
        data.length,
      ]]
    ) {
      const out = new Uint8Array(len);
      m.readExact(off, out);
      assert.deepEqual(out, data.subarray(off, off + len), `${off}+${len}`);
    }
    assert.ok(m.maps >= 3, "the window moved");
    m.close();

    const core = buildElfCore([{ paddr: 0x1000, data: data.subarray(0, 8192) }], [
      { name: "CORE", type: 1, desc: new Uint8Array(336) },
    ]);
    Deno.writeFileSync(`${dir}/core`, core);
    const a = ElfCore.open(`${dir}/core`);
    const b = ElfCore.open(`${dir}/core`, { mmap: false });
    assert.ok(a.mapped !== undefined && b.mapped === undefined);
    const x = new Uint8Array(8192), y = new Uint8Array(8192);
    assert.ok(a.readPhys(0x1000, x) && b.readPhys(0x1000, y));
    assert.deepEqual(x, y);
    assert.deepEqual(x, data.subarray(0, 8192));
    a.close();
    b.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("mappedFile: --non-mmap (read()) and the mmap window give the same dump", async () => {
  const { writeSample } = await import("../fixtures/sample.ts");
  const { runVmsift } = await import("./support/run.ts");
  const dir = tempDir();
  try {
    const s = writeSample(`${dir}/s`);
    const a = await runVmsift(["-l", "-d", "31", "-D", s.path, `${dir}/a.kdump`]);
    const b = await runVmsift(["-l", "-d", "31", "-D", "--non-mmap", s.path, `${dir}/b.kdump`]);
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    assert.match(a.stderr, /read through an mmap window/);
    assert.match(b.stderr, /read with read\(\)/);
    assert.deepEqual(Deno.readFileSync(`${dir}/a.kdump`), Deno.readFileSync(`${dir}/b.kdump`));
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("mappedFile: viewPhys gives readPhys's bytes without a copy, or null where it cannot", () => {
  const dir = tempDir();
  try {
    const a = new Uint8Array(5 * 4096).map((_, i) => (i * 13 + (i >> 12)) & 0xff);
    const b = new Uint8Array(3 * 4096).map((_, i) => (i * 29 + 1) & 0xff);
    // segment 2 has a zero tail past its file bytes (p_memsz > p_filesz)
    const core = buildElfCore([
      { paddr: 0x10000, data: a },
      { paddr: 0x20000, data: b, memSize: 5 * 4096 },
    ], [{ name: "CORE", type: 1, desc: new Uint8Array(336) }]);
    Deno.writeFileSync(`${dir}/core`, core);
    const m = ElfCore.open(`${dir}/core`);
    const r = ElfCore.open(`${dir}/core`, { mmap: false });
    try {
      for (const [p, len] of [[0x10000, 4096], [0x10000, 5 * 4096], [0x11000, 8192], [0x20000, 3 * 4096]]) {
        const v = m.viewPhys(p, len);
        assert.ok(v !== null, `view ${p.toString(16)}+${len}`);
        const want = new Uint8Array(len);
        assert.ok(r.readPhys(p, want));
        assert.deepEqual(v, want);
        assert.equal(v.buffer.byteLength > 0, true);
      }
      assert.equal(m.viewPhys(0x20000, 4 * 4096), null, "into the zero tail: no file bytes to view");
      assert.equal(m.viewPhys(0x14000, 2 * 4096), null, "past the segment's end");
      assert.equal(m.viewPhys(0x8000, 4096), null, "outside every segment");
      assert.equal(m.viewPhys(0x10000, 8 << 20), null, "larger than the window");
      assert.equal(r.viewPhys(0x10000, 4096), null, "read() mode has no window to view");
    } finally {
      m.close();
      r.close();
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

/** The filesystem type of `dir` (`stat -f`), or "" when it cannot be told. */
function fsType(dir: string): string {
  try {
    const r = new Deno.Command("stat", { args: ["-f", "-c", "%T", dir], stdout: "piped", stderr: "null" })
      .outputSync();
    return r.success ? new TextDecoder().decode(r.stdout).trim() : "";
  } catch {
    return "";
  }
}

function hasFincore(): boolean {
  try {
    return new Deno.Command("fincore", { args: ["--version"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

const scratchFs = fsType(Deno.env.get("VMSIFT_TEST_TMP") ?? "/var/tmp");

Deno.test({
  name: "mappedFile: reads only the pages asked for, no read-around (holes of a sparse file; fincore)",
  // tmpfs has no readahead: there the test could not tell the difference
  ignore: !hasFincore() || scratchFs === "" || scratchFs === "tmpfs" || scratchFs === "ramfs",
  fn() {
    const dir = tempDir();
    try {
      const path = `${dir}/sparse.bin`;
      const size = 16 << 20;
      Deno.writeFileSync(path, new Uint8Array(0));
      Deno.truncateSync(path, size); // all one hole: every page read becomes a page-cache page
      const m = MappedFile.open(path, size, 1 << 20);
      assert.ok(m, "mmap works on this filesystem");
      const v = m.view(8 << 20, 4096);
      assert.ok(v !== null && v.length === 4096 && v[0] === 0 && v[4095] === 0);
      const out = new Uint8Array(4096);
      m.readExact((12 << 20) + 4096, out);
      assert.equal(out.reduce((a, b) => a | b, 0), 0);
      m.close();
      const r = new Deno.Command("fincore", { args: ["--bytes", "--noheadings", "--output", "RES", path] })
        .outputSync();
      assert.ok(r.success, new TextDecoder().decode(r.stderr));
      const resident = Number(new TextDecoder().decode(r.stdout).trim());
      // 2 pages read; a fault reading around (32 pages each) would leave ~256 KiB
      assert.ok(resident <= 4 * 4096, `${resident} bytes of the file in the page cache`);
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
