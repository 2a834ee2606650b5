// A separate Node process for the cache tests: loads one archive into a SIF cache, converting with
// `apptainer build` and appending one line per conversion to a counter file. With "hang" it
// starts writing the SIF and then waits forever (holding the cache lock) to be killed.
// argv: cacheDir archive counterFile [hang]; CONTEXEC_TEST_LOCK_STALE_MS sets lockStaleMs (default 2000).
import { appendFile, writeFile } from "node:fs/promises";
import { ApptainerExecutor } from "../apptainer-executor.js";
import { ApptainerBuildConverter, type SifConverter } from "../image/sif-converter.js";
import { findBinary } from "../probe/find-binary.js";

const [cacheDir, archive, counter, mode] = process.argv.slice(2) as [
  string,
  string,
  string,
  string | undefined,
];
const inner = new ApptainerBuildConverter({ binary: await findBinary(), flavor: "apptainer" });
const converter: SifConverter = {
  name: "counting-apptainer-build",
  async convert(input, out, options) {
    await appendFile(counter, `${process.pid}\n`);
    if (mode === "hang") {
      await writeFile(out, "partial SIF");
      // An interval keeps the process alive (a bare pending promise would let Node exit).
      setInterval(() => {}, 1000);
      await new Promise(() => {});
    }
    await inner.convert(input, out, options);
  },
};
// Scratch beside the cache, in the test's folder: a SIGKILLed child cannot clean up after itself.
const executor = new ApptainerExecutor({
  cacheDir,
  converter,
  lockStaleMs: Number(process.env.CONTEXEC_TEST_LOCK_STALE_MS ?? 2000),
  tmpDir: `${cacheDir}.tmp`,
});
const id = await executor.loadImage(archive);
const entry = await executor.image(id);
process.stdout.write(`${JSON.stringify({ id, sifPath: entry.sifPath })}\n`);
await executor.close();
