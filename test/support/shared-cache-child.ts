// Run as a second user by test/shared-sif-cache.runtime.test.ts, on the TypeScript sources
// (node --import packages/singularity/src/test-support/ts-loader.mjs): loads two archives with a
// SIF cache it cannot write, runs the first, and prints one JSON line of what happened.
// argv: cacheDir present.tar missing.tar
import { runContainer } from "@contexec/core";
import { ApptainerExecutor } from "@contexec/singularity";

const [cacheDir, present, missing] = process.argv.slice(2) as [string, string, string];
const executor = new ApptainerExecutor({ cacheDir });
const result: Record<string, unknown> = { uid: process.getuid?.() };
try {
  const id = await executor.loadImage(present);
  const run = await runContainer(executor, { image: id, command: ["sh", "-c", "echo ran as $(id -u)"] });
  Object.assign(result, { id, exitCode: run.exitCode, stdout: run.stdout.toString() });
  await executor.loadImage(missing).then(
    (missingId) => Object.assign(result, { missingId }),
    (err: { code?: string; message: string }) =>
      Object.assign(result, { missingError: { code: err.code, message: err.message } }),
  );
} catch (err) {
  result.error = String((err as Error).stack ?? err);
} finally {
  await executor.close();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
