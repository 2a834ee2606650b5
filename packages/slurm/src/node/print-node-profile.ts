/**
 * The node probe: run on a compute node (under `srun`), it prints the inner runtime's
 * RuntimeProfile there as JSON. Arguments: the runtime's name ("apptainer", "docker") and its
 * executor config as JSON.
 */
import { createExecutor } from "@contexec/core";

const [runtime, config] = process.argv.slice(2);
if (!runtime) {
  process.stderr.write("usage: print-node-profile RUNTIME [CONFIG_JSON]\n");
  process.exit(2);
}
const executor = await createExecutor({ runtime, ...(config ? JSON.parse(config) : {}) });
try {
  const { details: _details, ...profile } = await executor.info();
  process.stdout.write(`${JSON.stringify(profile)}\n`);
} finally {
  await executor.close();
}
