import { rename, rm, stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { convertArchiveToSif, SQUASHFS_COMPRESSIONS, type SquashfsCompression } from "@contexec/sif";
import { type Command, type CommandContext, parseCommandArgs } from "../command.js";
import { UsageError } from "../exit-codes.js";
import { ProgressReporter } from "../terminal/progress-line.js";

export const convertCommand: Command = {
  name: "convert",
  help: `Usage: contexec convert IMAGE.tar -o OUT.sif [options]

Converts a docker-archive (docker save) or OCI layout tarball into a SIF image that Apptainer
and SingularityCE run, with contexec's native converter (needs sqfstar, not Apptainer). OUT.sif
appears only when it is whole: it is written under a temporary name and renamed.

Options:
  --output, -o FILE      the SIF to write (required)
  --compression NAME     squashfs compression: ${SQUASHFS_COMPRESSIONS.join(", ")} (default gzip, as apptainer build)
  --quiet, -q            no progress
  --json                 print the result as JSON on stdout (progress as plain lines on stderr)
  --help, -h             this help

Progress goes to stderr: a bar (bytes, rate, ETA) on a terminal, else a line every 10%.`,
  async run(ctx: CommandContext): Promise<number> {
    const { values, positionals } = parseCommandArgs(ctx.args, {
      output: { type: "string", short: "o" },
      compression: { type: "string" },
      quiet: { type: "boolean", short: "q" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    });
    if (values.help) {
      ctx.stdout.write(`${this.help}\n`);
      return 0;
    }
    const [input, ...extra] = positionals;
    if (input === undefined)
      throw new UsageError("name an image archive: contexec convert IMAGE.tar -o OUT.sif");
    if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(" ")}`);
    if (values.output === undefined) throw new UsageError("name the SIF to write: -o OUT.sif");
    const compression = values.compression;
    if (compression !== undefined && !(SQUASHFS_COMPRESSIONS as readonly string[]).includes(compression)) {
      throw new UsageError(
        `--compression must be one of ${SQUASHFS_COMPRESSIONS.join(", ")}, not "${compression}"`,
      );
    }
    const archive = resolve(ctx.cwd, input);
    const out = resolve(ctx.cwd, values.output);
    const tmp = join(dirname(out), `.${basename(out)}.tmp-${process.pid}`);
    const abort = new AbortController();
    const onSignal = () => abort.abort(new Error("interrupted"));
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    const progress = values.quiet
      ? undefined
      : new ProgressReporter(ctx.stderr, `converting ${basename(archive)}`, {
          tty: !values.json && ctx.stderr.isTTY === true,
        });
    const started = Date.now();
    try {
      const result = await convertArchiveToSif(archive, tmp, {
        ...(compression !== undefined && { compression: compression as SquashfsCompression }),
        signal: abort.signal,
        onProgress: ({ bytesRead, totalBytes }) => progress?.update(bytesRead, totalBytes),
      });
      progress?.finish();
      await rename(tmp, out);
      const seconds = (Date.now() - started) / 1000;
      if (values.json) {
        ctx.stdout.write(
          `${JSON.stringify({ id: result.id, sif: out, sifBytes: result.sifBytes, seconds, droppedDevices: result.droppedDevices })}\n`,
        );
      } else if (!values.quiet) {
        ctx.stderr.write(
          `contexec: wrote ${out} (${(await stat(out)).size} bytes, image ${result.id}) in ${seconds.toFixed(1)}s\n`,
        );
      }
      if (result.droppedDevices.length > 0 && !values.quiet)
        ctx.stderr.write(
          `contexec: device nodes left out (SIF cannot hold them): ${result.droppedDevices.join(", ")}\n`,
        );
      return 0;
    } finally {
      progress?.finish();
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      await rm(tmp, { force: true });
    }
  },
};
