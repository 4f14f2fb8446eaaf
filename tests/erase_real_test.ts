/**
 * Erasing on the real 6.1 fixture against makedumpfile 1.7.2: `makedumpfile -x vmlinux-6.1.0-56-amd64
 * --config F -c -d 31` was run here on each config below (it needs the 5.4 GB debug package and minutes per
 * run); its files' sha256 and ERASEINFO are pinned. vmsift `--config F --no-image-guard --codec-engine libz
 * -c -d 31`, from the dump's own kallsyms + BTF and with `-x` (symtab + .BTF), must give the same files.
 * crash, when installed with the debug vmlinux, reads the erased values as Xs.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { KdumpFile } from "../formats/kdump/reader.ts";
import { ElfCore } from "../formats/elfCore.ts";
import { haveReal, haveVmlinux, realVmcore, unpackReal, VMLINUX } from "./support/fixture.ts";
import { haveProgram, MAIN, MDF_C31_ARGS, runVmsift, tempDirTests } from "./support/run.ts";

const { tmp, test } = tempDirTests("vmsift-erase-");
const newDir = (n: string) => {
  const d = tmp(n);
  Deno.mkdirSync(d);
  return d;
};
const t = (name: string, ignore: boolean, fn: () => Promise<void>) => test({ name, ignore, fn });

interface Case {
  config: string;
  /** sha256 of makedumpfile 1.7.2's -c -d 31 output with this config. */
  sha256: string;
  eraseinfo: string;
}

const CASES: Record<string, Case> = {
  plain: {
    config: "[vmlinux]\nerase init_uts_ns.name.nodename\nerase saved_command_line size 32\n",
    sha256: "57f5bd004965d859f276684d26ab8fa29e1073363e52090ed9370f0915bbeee9",
    eraseinfo: "erase init_uts_ns.name.nodename size 65\nerase saved_command_line size 32\n",
  },
  // nullify, a char[] in freed init memory (its page is not written: no ERASEINFO line), size SYMBOL.member,
  // size 1K, a char * string, a module section (skipped).
  forms: {
    config: [
      "# every erase form on plain symbols",
      "[vmlinux]",
      "erase saved_command_line nullify",
      "erase boot_command_line",
      "erase init_uts_ns.name.domainname size init_task.normal_prio",
      "erase init_uts_ns.name.machine size 1K",
      "erase static_command_line",
      "[qemu_fw_cfg]",
      "erase fw_cfg_rev",
      "",
    ].join("\n"),
    sha256: "f0359ce71bb9f7860e18e942f6d9b124476a06c5058b1d64e1482d58d1fe625d",
    eraseinfo: "erase saved_command_line nullify\nerase init_uts_ns.name.domainname size 120\n" +
      "erase init_uts_ns.name.machine size 1024\nerase static_command_line size 13\n",
  },
  // The three loop forms: a list_head list within StructName:member (the 63 tasks after init_task), a
  // struct list via a next member (init_task is its own real_parent: one element), an array of structs.
  loops: {
    config: [
      "[vmlinux]",
      "# list_head list within StructName:member",
      "for t in init_task.tasks within task_struct:tasks",
      "\terase t.comm",
      "endfor",
      "# struct list via a next member",
      "for p in init_task.real_parent via real_parent",
      "  erase p.comm size 8",
      "endfor",
      "# array of structs",
      "for l in init_task.pid_links",
      "  erase l.next nullify",
      "endfor",
      "",
    ].join("\n"),
    sha256: "d279f2f13bcb1d641ea2c3b61cc87442e0938e5808fd3c994efc9ddcb4696893",
    eraseinfo: "erase t.comm size 16\n".repeat(63) + "erase p.comm size 8\n" +
      "erase l.next nullify\n".repeat(4),
  },
};

async function sha256(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", Deno.readFileSync(path));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

function eraseinfoOf(path: string): string {
  const k = KdumpFile.open(path);
  try {
    const { offsetEraseinfo, sizeEraseinfo } = k.subHeader;
    const f = Deno.openSync(path);
    try {
      const b = new Uint8Array(sizeEraseinfo);
      f.seekSync(offsetEraseinfo, Deno.SeekMode.Start);
      let got = 0;
      while (got < b.length) got += f.readSync(b.subarray(got)) ?? 0;
      return new TextDecoder().decode(b);
    } finally {
      f.close();
    }
  } finally {
    k.close();
  }
}

async function vmsift(dir: string, name: string, extra: string[], input?: string): Promise<string> {
  const out = `${dir}/${name}.kdump`;
  const r = await runVmsift([
    ...MDF_C31_ARGS,
    "--message-level",
    "4",
    ...extra,
    input ?? await realVmcore(),
    out,
  ]);
  assert.equal(r.code, 0, r.stderr);
  return out;
}

for (const [name, c] of Object.entries(CASES)) {
  t(`erase real: ${name} config, from the dump's kallsyms + BTF = makedumpfile -x`, !haveReal(), async () => {
    const dir = newDir(name);
    const conf = `${dir}/${name}.conf`;
    Deno.writeTextFileSync(conf, c.config);
    const out = await vmsift(dir, name, ["--no-image-guard", "--config", conf]);
    assert.equal(eraseinfoOf(out), c.eraseinfo);
    assert.equal(await sha256(out), c.sha256);
  });
  t(
    `erase real: ${name} config with -x VMLINUX = makedumpfile -x`,
    !haveReal() || !haveVmlinux(),
    async () => {
      const dir = newDir(name);
      const conf = `${dir}/${name}.conf`;
      Deno.writeTextFileSync(conf, c.config);
      const out = await vmsift(dir, name, ["--no-image-guard", "-x", VMLINUX, "--config", conf]);
      assert.equal(await sha256(out), c.sha256);
    },
  );
}

t("erase real: --erase, guard on, gives the plain config's file", !haveReal(), async () => {
  const dir = newDir("opt");
  const out = await vmsift(dir, "opt", [
    "--erase",
    "init_uts_ns.name.nodename",
    "--erase",
    "saved_command_line:32",
  ]);
  assert.equal(await sha256(out), CASES.plain.sha256);
});

t(
  "erase real: --erase-secrets erases the command line, the CRNG key, the entropy pool",
  !haveReal(),
  async () => {
    const dir = newDir("secrets");
    const out = await vmsift(dir, "secrets", ["--erase-secrets"]);
    assert.equal(
      eraseinfoOf(out),
      "erase saved_command_line size 47\nerase base_crng size 32\nerase input_pool size 120\n",
    );
    // The command line "console=ttyS0 panic=-1 fill_mb=8 init_on_free=1" (47 bytes) is gone from the pages.
    const k = KdumpFile.open(out);
    try {
      const page = new Uint8Array(4096);
      let found = 0, xs = 0;
      const needle = new TextEncoder().encode("console=ttyS0 panic=-1 fill_mb=8");
      for (let pfn = 0; pfn < 0x8000; pfn++) {
        if (!k.readPhys(pfn * 4096, page)) continue;
        for (
          let i = page.indexOf(needle[0]);
          i >= 0 && i + needle.length <= 4096;
          i = page.indexOf(needle[0], i + 1)
        ) {
          if (needle.every((b, j) => page[i + j] === b)) found++;
        }
        // base_crng is at 0xffffffffa0495d00 = physical 0x4095d00 (image at 16 MiB, KASLR 0x1c400000).
        if (pfn === 0x4095) xs = page.subarray(0xd00, 0xd20).filter((b) => b === 0x58).length;
      }
      assert.equal(xs, 32);
      // What is left (docs/symbols.md): the boot loader's buffer (boot_params.hdr.cmd_line_ptr, 0x20000
      // here), the copy in the real-mode area (0x9e320) and the kernel log's "Command line:" and "Kernel
      // command line:" lines.
      assert.equal(found, 4);
    } finally {
      k.close();
    }
  },
);

t(
  "erase real: crash reads the erased values as Xs, from the kdump file and from the -F stream",
  !haveReal() || !haveVmlinux() || !haveProgram("crash"),
  async () => {
    const dir = newDir("crash");
    const args = ["--erase", "init_uts_ns.name.nodename", "--erase", "saved_command_line:32"];
    const out = await vmsift(dir, "crash", args);
    const flat = `${dir}/crash.flat`;
    const o = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", MAIN, "-F", ...MDF_C31_ARGS, ...args, await realVmcore()],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
    Deno.writeFileSync(flat, o.stdout);
    for (const dump of [out, flat]) {
      const child = new Deno.Command("crash", {
        args: ["-s", VMLINUX, dump],
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
      })
        .spawn();
      const w = child.stdin.getWriter();
      await w.write(
        new TextEncoder().encode("p init_uts_ns.name.nodename\nx/s *(char **)&saved_command_line\nquit\n"),
      );
      await w.close();
      const r = await child.output();
      const text = new TextDecoder().decode(r.stdout);
      assert.match(text, /= "X{65}"\n/, dump); // init_uts_ns.name.nodename
      assert.match(text, /"X{32} init_on_free=1"/, dump); // the first 32 bytes of the command line
    }
  },
);

t(
  "erase real: -E writes the ERASEINFO note as makedumpfile 1.7.2 does, and the erased bytes",
  !haveReal(),
  async () => {
    const dir = newDir("elf");
    const conf = `${dir}/plain.conf`;
    Deno.writeTextFileSync(conf, CASES.plain.config);
    const out = `${dir}/plain.elf`;
    const r = await runVmsift([
      "-E",
      "-d",
      "31",
      "--message-level",
      "4",
      "--config",
      conf,
      await realVmcore(),
      out,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const core = ElfCore.open(out);
    try {
      // makedumpfile's -E file (same config): PT_NOTE p_filesz 5036 (the input's 4936 + 12 + 12 + 76), p_memsz
      // unchanged, the note "ERASEINFO" of type 0 holding the same text as the kdump ERASEINFO.
      const notes = core.noteSegment.bytes;
      assert.equal(notes.length, 5036);
      const tail = notes.subarray(4936);
      const dv = new DataView(tail.buffer, tail.byteOffset, tail.length);
      assert.deepEqual([dv.getUint32(0, true), dv.getUint32(4, true), dv.getUint32(8, true)], [10, 73, 0]);
      assert.equal(new TextDecoder().decode(tail.subarray(12, 22)), "ERASEINFO\0");
      assert.equal(new TextDecoder().decode(tail.subarray(24, 24 + 73)), CASES.plain.eraseinfo);
      // init_uts_ns.name.nodename (physical 0x2bfb000 + 65) reads as 65 Xs.
      const b = new Uint8Array(65);
      assert.ok(core.readPhys(0x2bfb000 + 65, b));
      assert.equal(new TextDecoder().decode(b), "X".repeat(65));
    } finally {
      core.close();
    }
  },
);

t(
  "erase real: -F | -R gives makedumpfile's -F | makedumpfile -R file (plain config)",
  !haveReal(),
  async () => {
    // makedumpfile 1.7.2 -F -x vmlinux --config plain -c -d 31 | makedumpfile -R: sha256 = CASES.plain.sha256.
    const dir = newDir("flat");
    const conf = `${dir}/plain.conf`;
    Deno.writeTextFileSync(conf, CASES.plain.config);
    const o = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        "-F",
        ...MDF_C31_ARGS,
        "--no-image-guard",
        "--config",
        conf,
        await realVmcore(),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
    const out = `${dir}/rebuilt.kdump`;
    const r = await runVmsift(["-R", out], { stdin: o.stdout });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256(out), CASES.plain.sha256);
  },
);

// makedumpfile 1.7.2 re-filtering a kdump file (-x vmlinux -c -d 31 [--config F] IN OUT): the input's
// ERASEINFO is copied, then the new one appended (write_kdump_eraseinfo).
const REFILTER = {
  /** The plain config's file re-filtered with the forms config. */
  plainThenForms: "1ac32e194c5f00653a5282f9953fb8eb12dd89c2e51879f82e2cbf097652e754",
  /** The plain config's file re-filtered without a config: its ERASEINFO kept. */
  plainThenNone: "3b452fca71c7a581cd0224cd03dcea7e2e9afd5b3adc0fe7775f022d10bc701a",
};

t(
  "erase real: re-filtering a kdump file erases from its own kallsyms + BTF and keeps its ERASEINFO, as makedumpfile",
  !haveReal(),
  async () => {
    const dir = newDir("refilter");
    const plainConf = `${dir}/plain.conf`, formsConf = `${dir}/forms.conf`;
    Deno.writeTextFileSync(plainConf, CASES.plain.config);
    Deno.writeTextFileSync(formsConf, CASES.forms.config);
    const plain = await vmsift(dir, "plain", ["--no-image-guard", "--config", plainConf]);
    assert.equal(await sha256(plain), CASES.plain.sha256);
    const both = await vmsift(dir, "both", ["--no-image-guard", "--config", formsConf], plain);
    assert.equal(eraseinfoOf(both), CASES.plain.eraseinfo + CASES.forms.eraseinfo);
    assert.equal(await sha256(both), REFILTER.plainThenForms);
    const none = await vmsift(dir, "none", ["--no-image-guard"], plain);
    assert.equal(eraseinfoOf(none), CASES.plain.eraseinfo);
    assert.equal(await sha256(none), REFILTER.plainThenNone);
    // makedumpfile's own -c -d 31 file (no ERASEINFO) re-filtered with the plain config: the same file as
    // from the ELF vmcore (makedumpfile gives it too).
    const mdf = await vmsift(
      dir,
      "mdf",
      ["--no-image-guard", "--config", plainConf],
      await unpackReal("makedumpfile-c-d31.kdump"),
    );
    assert.equal(await sha256(mdf), CASES.plain.sha256);
  },
);

t(
  "erase real: --split, each file with the ERASEINFO of its own pfn range, as makedumpfile's split processes",
  !haveReal(),
  async () => {
    // makedumpfile 1.7.2 -x vmlinux --config loops -c -d 31 --split --splitblock-size 4096 VMCORE S1 S2 S3.
    // Every process writes the lines of the commands it applied; an iteration it did not apply repeats the
    // previous size text, and before any (S3: the 29 tasks of S2) makedumpfile prints an uninitialized
    // buffer (6 bytes of a stack address here; vmsift: nothing). Files 1 and 2 are byte-identical; file 3
    // is, but for those bytes and its size_eraseinfo.
    const dir = newDir("split");
    const conf = `${dir}/loops.conf`;
    Deno.writeTextFileSync(conf, CASES.loops.config);
    const parts = [1, 2, 3].map((i) => `${dir}/s${i}`);
    const r = await runVmsift([
      ...MDF_C31_ARGS,
      "--no-image-guard",
      "--config",
      conf,
      "--split",
      "--splitblock-size",
      "4096",
      await realVmcore(),
      ...parts,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(parts.map(eraseinfoOf), [
      "erase p.comm size 8\n" + "erase l.next nullify\n".repeat(4),
      "erase t.comm size 16\n".repeat(63),
      "erase t.comm ".repeat(29) + "erase t.comm size 16\n".repeat(34),
    ]);
    assert.deepEqual(await Promise.all(parts.map(sha256)), [
      "397eb055f126550541951370d35a8d9944d6b83cf521c526d5bede594df406c6", // makedumpfile's
      "923347c6e4a7741cda8d2cf607b94647d348bb46afda5aef739fcdc3f2e56fe2", // makedumpfile's
      "82167e05df3a6827f4834c7101c097a8b7b70974c8f304bfb34ab3d702c953b2",
    ]);
  },
);

/**
 * sha256 over (pfn as u32 LE, page) for every page of pfn < 0x8000 (max_mapnr) that the ELF file holds
 * (file-backed part of a PT_LOAD). makedumpfile 1.7.2 also writes pages past max_mapnr (its bitmap buffer
 * reuse, formats/elfWriter.ts "mirror"); vmsift leaves them out, so only these are compared.
 */
function elfPagesSha(path: string): string {
  const core = ElfCore.open(path);
  try {
    const h = createHash("sha256");
    const page = new Uint8Array(4096), id = new Uint8Array(4);
    for (let pfn = 0; pfn < 0x8000; pfn++) {
      const p = pfn * 4096;
      if (!core.segments.some((s) => p >= s.paddr && p + 4096 <= s.paddr + s.fileSize)) continue;
      assert.ok(core.readPhys(p, page));
      new DataView(id.buffer).setUint32(0, pfn, true);
      h.update(id);
      h.update(page);
    }
    return h.digest("hex");
  } finally {
    core.close();
  }
}

/** The ERASEINFO note's text of an ELF dump (its reckoned size, zero-padded), or undefined. */
function elfEraseinfo(path: string): string | undefined {
  const core = ElfCore.open(path);
  try {
    const n = core.notes.find((x) => x.name === "ERASEINFO");
    return n === undefined ? undefined : new TextDecoder().decode(n.desc);
  } finally {
    core.close();
  }
}

// makedumpfile 1.7.2 -x vmlinux --config F -d 31 -E and -c -d 31 on the fixture.
const ELF_CASES = {
  // join_entries: __initdata on a zero page in a short excluded run (written by -E, so erased); no BTF type
  // (size given). numa_off, selinux_state: .bss.
  shortRun: {
    config: "[vmlinux]\nerase join_entries size 16\nerase numa_off size 4\nerase selinux_state size 8\n",
    note: "erase join_entries size 16\nerase numa_off size 4\nerase selinux_state size 8\n",
    pagesSha: "e37af35c7da81ccd2e04466980dbd8e9b2936f550254826919f4633a28b8df1b",
    kdumpSha: "7806f24b74cce41e3ff73c853d12fc72c9a79e652c89bdf2769c1fe39edce2bc",
  },
  // 64 KiB from saved_context: -E stops after 4192 bytes where 855 zero pages begin (excluded as zero
  // before erasing, a long run: not written); the kdump file erases the zero pages too (they are in
  // bitmap 2 while the pages are written, and are no longer zero afterwards).
  longZeroRun: {
    config: "[vmlinux]\nerase saved_context size 64K\n",
    note: "erase saved_context size 4192\n\0",
    pagesSha: "b1f7c0eb4d0fa40d4ceafea6d209e10c5ed91a862bf0edec1b590b0dcd4a078d",
    kdumpSha: "e2923363d176226ec8bfd3d914ce123a1c38dbecff3cb602f27a32e282880587",
  },
};

for (const [name, c] of Object.entries(ELF_CASES)) {
  t(
    `erase real: -E erases the pages the ELF file holds, as makedumpfile (${name})`,
    !haveReal(),
    async () => {
      const dir = newDir(name);
      const conf = `${dir}/${name}.conf`;
      Deno.writeTextFileSync(conf, c.config);
      const out = `${dir}/${name}.elf`;
      const r = await runVmsift([
        "-E",
        "-d",
        "31",
        "--no-image-guard",
        "--config",
        conf,
        await realVmcore(),
        out,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(elfEraseinfo(out), c.note);
      assert.equal(elfPagesSha(out), c.pagesSha);
      const kdump = await vmsift(dir, name, ["--no-image-guard", "--config", conf]);
      assert.equal(await sha256(kdump), c.kdumpSha);
    },
  );
}

t(
  "erase real: --split, a range crossing into the next file stops at its file's end, as makedumpfile",
  !haveReal(),
  async () => {
    // makedumpfile 1.7.2 -x vmlinux --config F -c -d 31 --split --splitblock-size 4 VMCORE L1..L8, with
    // `erase init_uts_ns size 2732096`: file 3 (pfns 0x2400-0x2e96) applies 64 bytes less, up to its end;
    // file 4 does not continue it. All 8 files are byte-identical; files 3 and 4 are pinned.
    const dir = newDir("crossing");
    const conf = `${dir}/f.conf`;
    Deno.writeTextFileSync(conf, "[vmlinux]\nerase init_uts_ns size 2732096\n");
    const parts = Array.from({ length: 8 }, (_, i) => `${dir}/L${i + 1}`);
    const r = await runVmsift([
      ...MDF_C31_ARGS,
      "--no-image-guard",
      "--config",
      conf,
      "--split",
      "--splitblock-size",
      "4",
      await realVmcore(),
      ...parts,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      parts.map(eraseinfoOf),
      parts.map((_, i) => i === 2 ? "erase init_uts_ns size 2732032\n" : ""),
    );
    assert.equal(await sha256(parts[2]), "6802ccf09ce0120f9206df2486dd38b801d38d19c03304d4e4f1ece64e9d9dbe");
    assert.equal(await sha256(parts[3]), "3ad946419a0e574b6e840a6a9608ab8ac5e02887939b221bb6b35d40461733f5");
  },
);
