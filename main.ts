/**
 * vmsift command line: makedumpfile's options and exit codes (0 ok, 1 failure, 2 release mismatch).
 * All work is in cli/ and the library; this file maps outcomes to messages and exit codes.
 */
import { VmsiftError } from "./core/errors.ts";
import { isCodecWorker, startCodecWorker } from "./formats/codecs/codecWorker.ts";

// The CLI's modules are imported when a command needs them (dynamic imports stay lazy in the bundle): a
// --num-threads codec worker, which runs this same program, then initializes only the codec modules, and a
// dump does not initialize the other commands' modules (issue 17: a worker's memory, start-up).

/** Version of vmsift. */
export const VERSION = "0.1.0";

/** Run the CLI with `args`; returns the exit status (never calls Deno.exit itself). */
export async function main(args: string[]): Promise<number> {
  const { parseCommandLine, USAGE, UsageError } = await import("./cli/options.ts");
  const { Messages } = await import("./cli/messages.ts");
  let opts;
  try {
    opts = parseCommandLine(args);
  } catch (e) {
    if (e instanceof UsageError) {
      // One line, with makedumpfile's words: "Commandline parameter is invalid. Try ... --help".
      console.error(`vmsift: ${e.message}: Commandline parameter is invalid (try \`vmsift --help')`);
      return 1;
    }
    throw e;
  }
  const cmd = opts.command;
  if (cmd.kind === "help") {
    console.log(USAGE);
    return 0;
  }
  if (cmd.kind === "version") {
    console.log(`vmsift: version ${VERSION} (makedumpfile 1.7.2 work-alike; Deno ${Deno.version.deno})`);
    return 0;
  }
  if (opts.checkParams) return 0;
  // With -F the dump is the standard output: every message goes to stderr.
  const msg = new Messages(opts.messageLevel, opts.flat);
  for (const w of opts.ignoredOptions ?? []) msg.common(`vmsift: warning: ${w}`);
  // Like gzip: binary data is not written to a terminal (-f forces it).
  if (cmd.kind === "dump" && opts.flat && !opts.dryRun && !opts.force && Deno.stdout.isTerminal()) {
    console.error(
      "vmsift: stdout: flattened dump not written to a terminal (redirect it, or use -f to force)",
    );
    return 1;
  }
  try {
    // Dumps read as input may hold zlib/zstd pages: without FFI, node:zlib must be imported to decode them.
    if (cmd.kind !== "dmesg" && cmd.kind !== "vtop" && cmd.kind !== "symbols") {
      await (await import("./formats/codecs/registry.ts")).prepareDecoders();
    }
    switch (cmd.kind) {
      case "dump": {
        const { runDumpCommand } = await import("./cli/dumpCommand.ts");
        await runDumpCommand(cmd.vmcore, cmd.dumpfile, opts, msg, cmd.splitFiles);
        return 0;
      }
      case "rebuild":
        return (await import("./cli/streamCommands.ts")).runRebuildCommand(cmd.dumpfile, opts, msg);
      case "reassemble":
        return (await import("./cli/streamCommands.ts")).runReassembleCommand(
          cmd.inputs,
          cmd.dumpfile,
          opts,
          msg,
        );
      case "dmesg":
        return (await import("./cli/otherCommands.ts")).runDmesgCommand(cmd.vmcore, cmd.logfile, opts, msg);
      case "vtop":
        return (await import("./cli/otherCommands.ts")).runVtopCommand(cmd.vmcore, cmd.vaddr, opts, msg);
      case "info":
        return (await import("./cli/otherCommands.ts")).runInfoCommand(cmd.dumpfile, opts);
      case "verify":
        return (await import("./cli/otherCommands.ts")).runVerifyCommand(cmd.dumpfile, cmd.vmcore, opts, msg);
      case "symbols":
        return (await import("./cli/symbolsCommand.ts")).runSymbolsCommand(cmd.vmcore, cmd.name, opts);
      case "memUsage":
        // loaded only for this command (a dump never initializes it)
        return (await import("./cli/memUsage.ts")).runMemUsageCommand(cmd.kcore, opts);
    }
  } catch (e) {
    if (e instanceof VmsiftError) {
      // The whole error is this one line (makedumpfile adds "makedumpfile Failed." on two more lines).
      console.error(`vmsift: ${e.oneLine()}`);
      return e.exitCode;
    }
    // An unexpected exception is a bug: still one clear line, and the detail only at debug level.
    console.error(`vmsift: internal error: ${(e as Error)?.message ?? e}`);
    if (msg.enabled(8)) console.error((e as Error)?.stack ?? "");
    return 1;
  }
  return 0;
}

// Codec workers (formats/kdump/parallelWriter.ts; the CLI's --num-threads uses FFI lanes instead, no worker)
// are started from this same program (one bundled file, or a compiled binary): inside one, run the
// compression loop instead of the CLI (formats/codecs/codecWorker.ts).
if (isCodecWorker()) startCodecWorker();
else if (import.meta.main) Deno.exit(await main(Deno.args));
