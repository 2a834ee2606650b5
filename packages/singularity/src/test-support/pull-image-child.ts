// A separate Node process for the pull tests: pulls one reference into a SIF cache and prints
// {"id","sifPath"}. argv: cacheDir reference
import { ApptainerExecutor } from "../apptainer-executor.js";

const [cacheDir, reference] = process.argv.slice(2) as [string, string];
// Scratch beside the cache, in the test's folder.
const executor = new ApptainerExecutor({
  cacheDir,
  tmpDir: `${cacheDir}.tmp`,
  registry: { dockerConfig: false },
});
try {
  const id = await executor.pullImage(reference);
  const entry = await executor.image(id);
  process.stdout.write(`${JSON.stringify({ id, sifPath: entry.sifPath })}\n`);
} finally {
  await executor.close();
}
