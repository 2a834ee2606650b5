import { createExecutor, RegistryError } from "@contexec/core";
import { familiarImageReference, parseImageReference } from "@contexec/registry";
import { type Command, type CommandContext, parseCommandArgs } from "../command.js";
import { UsageError } from "../exit-codes.js";
import { chooseRuntime } from "../runtime/choose-runtime.js";
import { PullProgressBoard } from "../terminal/pull-progress.js";

const HELP = `Usage: contexec pull REF [--runtime NAME] [options]

Pulls an image from a registry into a runtime: Docker's daemon pulls it (docker pull), Apptainer
streams its layers from the registry into the SIF cache (no tarball on disk; apptainer pull is not
used). REF is as docker pull takes it (busybox, ghcr.io/org/tool:1.2, host:5000/x@sha256:...;
a docker:// prefix is allowed). Afterwards REF names the image in job files (image: REF, or
image: docker://REF, which pulls when needed). Prints the image's id on stdout: the digest of its
config, the same on every runtime and the same as the image loaded from an archive.

Credentials come from your Docker config (~/.docker/config.json: docker login, credential
helpers). A registry on 127.0.0.1 is reached over plain HTTP.

Options:
  --runtime NAME    docker, apptainer or singularity (default: $CONTEXEC_RUNTIME, else docker)
  --platform P      os/arch[/variant] to pick from a multi-platform image (default: this machine's)
  --quiet, -q       no progress
  --json            print { id, reference, runtime, seconds } on stdout (progress as plain lines on stderr)
  --help, -h        this help

Progress goes to stderr, per layer: a line each redrawn in place on a terminal, else a line when a
layer changes phase (waiting, downloading, extracting, done, already here).

Exit codes: 0 pulled; 64 bad command line or reference; 65 the image is not there (no such
repository, tag or platform), the credentials were refused, or its content is refused (a digest
mismatch, a hostile layer); 125 the registry or the runtime cannot be reached; 130 interrupted.`;

export const pullCommand: Command = {
  name: "pull",
  help: HELP,
  async run(ctx: CommandContext): Promise<number> {
    const { values, positionals } = parseCommandArgs(ctx.args, {
      runtime: { type: "string" },
      platform: { type: "string" },
      quiet: { type: "boolean", short: "q" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    });
    if (values.help) {
      ctx.stdout.write(`${HELP}\n`);
      return 0;
    }
    const [given, ...extra] = positionals;
    if (given === undefined) throw new UsageError("name an image: contexec pull REF");
    if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(" ")}`);
    const reference = given.replace(/^docker:\/\//, "");
    try {
      parseImageReference(reference);
    } catch (err) {
      if (err instanceof RegistryError) throw new UsageError(err.message.replace(/^reference: /, ""));
      throw err;
    }
    const runtime = chooseRuntime(values.runtime, undefined, ctx.env);
    const executor = await createExecutor(runtime.config);
    const abort = new AbortController();
    const onSignal = (signal: NodeJS.Signals) => abort.abort(new Error(`${signal} received`));
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    const board = values.quiet
      ? undefined
      : new PullProgressBoard(ctx.stderr, { tty: !values.json && ctx.stderr.isTTY === true });
    const started = Date.now();
    try {
      if (!values.quiet) ctx.stderr.write(`contexec: pulling ${reference} into ${runtime.name}\n`);
      const id = await executor.pullImage(reference, {
        signal: abort.signal,
        ...(values.platform !== undefined && { platform: values.platform }),
        ...(board && { onProgress: (p) => board.update(p) }),
      });
      board?.finish();
      const seconds = (Date.now() - started) / 1000;
      if (values.json) {
        ctx.stdout.write(`${JSON.stringify({ id, reference, runtime: runtime.name, seconds })}\n`);
      } else {
        ctx.stdout.write(`${id}\n`);
        if (!values.quiet)
          ctx.stderr.write(
            `contexec: pulled ${familiarImageReference(parseImageReference(reference))} (image ${id}) in ${seconds.toFixed(1)}s\n`,
          );
      }
      return 0;
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      await executor.close();
    }
  },
};
