import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** Folder holding the fixture archives busybox.tar and layered.tar. */
    fixturesDir: string;
  }
}

/**
 * Builds (or finds) the fixture images once per run. The script also makes sure Docker is
 * running, since the fixtures are built with it; it is idempotent and quick when all is there.
 */
export default function setup(project: TestProject): void {
  const script = fileURLToPath(new URL("../scripts/build-fixtures.sh", import.meta.url));
  const dir = execFileSync(script, { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
  project.provide("fixturesDir", dir);
}
