import { spawn } from "node:child_process";
import { setTimeout as delay } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { dieWithParent } from "./parent-death.js";
import { readProcStat } from "./proc-stat.js";

describe("dieWithParent", () => {
  it.skipIf(dieWithParent(["true"])[0] === "true")(
    "a child started through it dies when its Node parent is SIGKILLed (skipped where setpriv lacks --pdeathsig)",
    async () => {
      const argv = dieWithParent(["sleep", "1000"]);
      // A Node parent that spawns the child and prints its pid.
      const script = `const c = require("node:child_process").spawn(${JSON.stringify(argv[0])}, ${JSON.stringify(argv.slice(1))}, { stdio: "ignore" }); c.on("spawn", () => console.log(c.pid)); setInterval(() => {}, 1000);`;
      const parent = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
      const childPid = await new Promise<number>((resolve) =>
        parent.stdout.once("data", (b: Buffer) => resolve(Number(String(b)))),
      );
      // setpriv has run once the child is sleep.
      for (let i = 0; i < 100 && !(await readFileComm(childPid)).startsWith("sleep"); i++) await delay(10);
      const child = await readProcStat(childPid);
      try {
        expect(child?.ppid).toBe(parent.pid);
        parent.kill("SIGKILL");
        let state = await readProcStat(childPid);
        for (let i = 0; i < 100 && state && state.state !== "Z"; i++) {
          await delay(20);
          state = await readProcStat(childPid);
        }
        expect(state === undefined || state.state === "Z").toBe(true);
      } finally {
        // Should it have survived, it goes now.
        if (child && (await readProcStat(childPid))?.startTime === child.startTime)
          process.kill(childPid, "SIGKILL");
      }
    },
  );
});

async function readFileComm(pid: number): Promise<string> {
  const { readFile } = await import("node:fs/promises");
  return readFile(`/proc/${pid}/comm`, "utf8").catch(() => "");
}
