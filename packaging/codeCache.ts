/**
 * The pre-built Deno cache shipped beside the bundle (`/usr/lib/vmsift/deno-dir`, docs/launcher.md): V8's
 * compiled bytecode of the bundle (and of the Deno-internal node: modules it loads), and Deno's dependency
 * analysis of the bundle, so that a run neither parses nor compiles the 0.5 MB bundle. The launcher points
 * DENO_DIR at it. Deno 2.9 reads it from a read-only directory (its SQLite files are in WAL mode, with empty
 * `-wal` and `-shm` files present); where the directory is writable, Deno may add entries.
 *
 * Deno keys each entry by the module's URL (`file:///usr/lib/vmsift/vmsift.js`) and a hash of its source, and
 * V8 checks its version and flags: the cache is built by loading the bundle with the launcher's V8 flags
 * (scripts/runtimeFlags.ts), then the bundle's URL is rewritten to the installed path. A stale or mismatched
 * cache is not an error: Deno then compiles as without one.
 *
 *     deno run -A packaging/codeCache.ts --bundle dist/vmsift.js --out DIR [--installed /usr/lib/vmsift/vmsift.js]
 */
import { DatabaseSync } from "node:sqlite";
import { V8_FLAGS_ARG } from "../scripts/runtimeFlags.ts";

/** The cache directory's name beside the installed bundle (`<libdir>/deno-dir`). */
export const CODE_CACHE_DIR = "deno-dir";

/** Deno's cache databases that a `deno run` of the bundle opens, and the table of each keyed by module URL. */
export const CACHE_DBS: Readonly<Record<string, string>> = {
  v8_code_cache_v2: "codecache",
  dep_analysis_cache_v2: "moduleinfocache",
  node_analysis_cache_v2: "cjsanalysiscache",
};

/** Options of buildCodeCache. */
export interface CodeCacheOptions {
  /** The bundle to run (dist/vmsift.js, or the package's staged copy). */
  bundle: string;
  /** The absolute path the bundle is installed at (default /usr/lib/vmsift/vmsift.js). */
  installedBundle?: string;
  /** The directory to write (created; its cache files are replaced). */
  outDir: string;
  /** The Deno runtime (default: the one running this). It must be the shipped runtime's version. */
  deno?: string;
}

/** What buildCodeCache wrote. */
export interface CodeCacheResult {
  /** Entries in V8's code cache (the bundle, node:timers and the Deno-internal modules behind it). */
  codeEntries: number;
  /** Bytes of the bundle's own compiled code. */
  bundleCodeBytes: number;
  /** Total bytes of the files written. */
  bytes: number;
}

/** Build the cache for `bundle` as installed at `installedBundle` into `outDir`. */
export function buildCodeCache(o: CodeCacheOptions): CodeCacheResult {
  const deno = o.deno ?? Deno.execPath();
  const bundle = Deno.realPathSync(o.bundle);
  const installed = o.installedBundle ?? "/usr/lib/vmsift/vmsift.js";
  if (!installed.startsWith("/")) throw new Error(`codeCache: --installed ${installed} is not absolute`);
  const tmp = Deno.makeTempDirSync({ prefix: "vmsift-code-cache-" });
  try {
    const denoDir = `${tmp}/deno-dir`;
    const from = new URL(`file://${bundle}`).href;
    const to = new URL(`file://${installed}`).href;
    const denoRun = (script: string, args: string[]) => {
      const r = new Deno.Command(deno, {
        args: [
          "run",
          "--no-prompt",
          "--no-config",
          "--no-remote",
          "--no-npm",
          V8_FLAGS_ARG,
          "--allow-read",
          "--allow-write",
          "--allow-ffi",
          script,
          ...args,
        ],
        clearEnv: true,
        env: { DENO_DIR: denoDir, DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1", PATH: "/usr/bin:/bin" },
        cwd: tmp,
        stdout: "piped",
        stderr: "piped",
      }).outputSync();
      if (r.code !== 0) {
        throw new Error(
          `codeCache: ${script} ${args.join(" ")} failed (${r.code}): ${new TextDecoder().decode(r.stderr)}`,
        );
      }
    };
    // Deno writes a module's code cache when its evaluation completes, which a run of vmsift never reaches
    // before its Deno.exit (the write then races the exit and is lost under load). So a wrapper imports the
    // bundle (import.meta.main false: main() does not run) and its evaluation completes; one timer loads
    // node:timers and the Deno-internal modules behind it, as every dump does (its progress and signal yields).
    const wrapper = `${tmp}/warm.js`;
    Deno.writeTextFileSync(
      wrapper,
      `await import(${JSON.stringify(from)});\nawait new Promise((r) => setTimeout(r, 1));\n`,
    );
    denoRun(wrapper, []);
    Deno.mkdirSync(o.outDir, { recursive: true, mode: 0o755 });
    let codeEntries = 0, bundleCodeBytes = 0, bytes = 0;
    for (const [name, table] of Object.entries(CACHE_DBS)) {
      const db = new DatabaseSync(`${denoDir}/${name}`);
      try {
        db.prepare(`UPDATE ${table} SET specifier = ? WHERE specifier = ?`).run(to, from);
        db.prepare(`DELETE FROM ${table} WHERE specifier = ?`).run(new URL(`file://${wrapper}`).href);
        if (name === "v8_code_cache_v2") {
          codeEntries = Number((db.prepare("SELECT count(*) AS n FROM codecache").get() as { n: number }).n);
          const row = db.prepare("SELECT length(data) AS n FROM codecache WHERE specifier = ?").get(to) as
            | { n: number }
            | undefined;
          if (!row) throw new Error(`codeCache: Deno wrote no code cache for ${from}`);
          bundleCodeBytes = Number(row.n);
        }
        // Deno opens each database with `PRAGMA optimize`, which re-analyzes a table whose row count moved
        // away from its statistics: a write, refused read-only, and Deno then drops the whole database for an
        // in-memory one. Statistics made now keep that pragma a no-op.
        db.exec("ANALYZE");
        // everything into the main file; the journal stays WAL (Deno sets it, and a read-only WAL database
        // opens when its -wal and -shm files exist)
        db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      } finally {
        db.close();
      }
      for (const suffix of ["", "-wal", "-shm"]) {
        const dst = `${o.outDir}/${name}${suffix}`;
        if (suffix === "") Deno.copyFileSync(`${denoDir}/${name}`, dst);
        else Deno.writeFileSync(dst, new Uint8Array(0));
        Deno.chmodSync(dst, 0o644);
        bytes += Deno.statSync(dst).size;
      }
    }
    return { codeEntries, bundleCodeBytes, bytes };
  } finally {
    Deno.removeSync(tmp, { recursive: true });
  }
}

if (import.meta.main) {
  const val = (name: string) => {
    const i = Deno.args.indexOf(name);
    return i >= 0 ? Deno.args[i + 1] : undefined;
  };
  const bundle = val("--bundle"), outDir = val("--out");
  if (!bundle || !outDir) {
    console.error("usage: codeCache.ts --bundle FILE --out DIR [--installed PATH] [--deno PATH]");
    Deno.exit(2);
  }
  const r = buildCodeCache({ bundle, outDir, installedBundle: val("--installed"), deno: val("--deno") });
  console.log(
    `${outDir}: ${r.codeEntries} compiled modules (the bundle's ${r.bundleCodeBytes} bytes), ${r.bytes} bytes`,
  );
}
