import { describe, expect, it } from "vitest";
import { parseCommandScript } from "./command-script.js";

describe("parseCommandScript", () => {
  it("reads the Python client's file: #!/bin/bash, then shlex-quoted words, no trailing newline", () => {
    expect(parseCommandScript("#!/bin/bash\nsqueue --me -o '%i %j' ''")).toEqual({
      ok: true,
      argv: ["squeue", "--me", "-o", "%i %j", ""],
    });
  });

  it("reads the C client's file: cd DIR && and every word quoted with a trailing space", () => {
    expect(parseCommandScript("#!/bin/bash\ncd /home/u/run && 'sbatch' 'job.sh' ")).toEqual({
      ok: true,
      argv: ["sbatch", "job.sh"],
      cd: "/home/u/run",
    });
  });

  it.each([
    ["squeue", /must start with a #! line/],
    ["#!/bin/bash", /must start with a #! line/],
    ["#!/bin/bash\n", /no command to run/],
    ["#!/bin/bash\ncd /x &&", /no command to run/],
    ["#!/bin/bash\ncd /x", /`cd` must be followed by one folder and `&&`/],
    ["#!/bin/bash\ncd /x y && id", /`cd` must be followed by one folder and `&&`/],
    ["#!/bin/bash\nid && id", /`&&` at offset 3 joins commands|`&&` may only follow `cd DIR`/],
    ["#!/bin/bash\ncd /x && id && id", /`&&` may only follow `cd DIR`/],
    ["#!/bin/bash\nFOO=bar squeue", /variable assignment/],
    ["#!/bin/bash\nsqueue; rm -rf /", /";" \(a command separator\)/],
    ["#!/bin/bash\nsqueue\nrm -rf /", /starts another command/],
  ])("refuses %j", (text, reason) => {
    const r = parseCommandScript(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(reason);
  });
});
