import { join } from "node:path";
import { inject } from "vitest";

/** The fixture archives (scripts/build-fixtures.sh, run by the runtime project's global setup). */
export function fixtures(): { busybox: string; layered: string } {
  const dir = process.env.CONTEXEC_FIXTURES ?? inject("fixturesDir");
  return { busybox: join(dir, "busybox.tar"), layered: join(dir, "layered.tar") };
}
