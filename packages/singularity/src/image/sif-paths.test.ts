import { describe, expect, it } from "vitest";
import { parseListing } from "./sif-paths.js";

// `unsquashfs -lls -d "" image.sif /work/dir` (squashfs-tools 4.5.1)
const LISTING = `drwxr-xr-x root/root               276 2026-11-21 19:24 
drwxr-xr-x root/root                26 2026-11-21 19:18 /work
drwxr-xr-x root/root                 3 2026-11-21 19:18 /work/dir
lrwxrwxrwx root/root                 7 2026-11-21 19:18 /link -> work
`;

describe("parseListing", () => {
  it("tells present, missing and unknown (a symlink on the way)", () => {
    expect(parseListing(LISTING, "/work/dir")).toBe("present");
    expect(parseListing(LISTING, "/work")).toBe("present");
    expect(parseListing(LISTING, "/work/other")).toBe("missing");
    expect(parseListing(LISTING, "/link")).toBe("present");
    expect(parseListing(LISTING, "/link/dir")).toBe("unknown");
    expect(parseListing("", "/x")).toBe("missing");
  });
});
