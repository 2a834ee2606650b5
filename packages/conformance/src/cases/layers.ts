import { expect } from "vitest";
import type { SuiteContext } from "../suite-context.js";

export function registerLayerCases(ctx: SuiteContext): void {
  const { test } = ctx;
  const sh = (script: string) => ctx.run({ image: ctx.images().layered, entrypoint: ["sh", "-c", script] });

  // `ls -A`: hidden names (a leftover .wh. marker) count, "." and ".." do not; squashfuse
  // 0.1.105, which mounts SIFs in Apptainer's user namespace mode, lists no "." and "..".
  test("a file and a folder deleted in an upper layer (whiteouts) are absent", async () => {
    const r = await sh(
      "ls -A /data; test -e /data/gone.txt && echo BAD-file; test -e /data/gone-dir && echo BAD-dir; true",
    );
    expect(r.out.split("\n").filter(Boolean).sort()).toEqual(["keep", "replaced"]);
  });

  test("a folder replaced in an upper layer (opaque) holds only the new content", async () => {
    const r = await sh("ls -A /data/replaced; cat /data/replaced/new.txt");
    expect(r.out).toBe("new.txt\nnew\n");
  });

  test("a hard link to a lower layer's file shares its inode and content", async () => {
    const r = await sh("stat -c %i /data/keep/file.txt /data/keep/hardlink.txt; cat /data/keep/hardlink.txt");
    const [a, b, content] = r.out.split("\n");
    expect(a).toBe(b);
    expect(content).toBe("hello");
  });

  test("symlinks and setuid modes are kept", async () => {
    const r = await sh(
      "readlink /data/keep/link.txt; cat /data/keep/link.txt; stat -c %a /data/keep/suid.sh",
    );
    expect(r.out).toBe("../keep/file.txt\nhello\n4755\n");
  });
}
