import { describe, expect, it } from "vitest";
import { resolveUser } from "./image-user.js";

const PASSWD =
  "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\napp:x:1000:2000::/home/app:/bin/sh\n";
const GROUP = "root:x:0:\nnogroup:x:65534:\nstaff:x:50:app\n";

describe("resolveUser", () => {
  it("takes numbers as they are; a uid alone gets its passwd group, else 0", () => {
    expect(resolveUser("1234:5678", undefined, undefined)).toEqual({ uid: 1234, gid: 5678 });
    expect(resolveUser("1000", PASSWD, GROUP)).toEqual({ uid: 1000, gid: 2000 });
    expect(resolveUser("4321", PASSWD, GROUP)).toEqual({ uid: 4321, gid: 0 });
  });

  it("looks names up in the image's passwd and group files", () => {
    expect(resolveUser("nobody", PASSWD, GROUP)).toEqual({ uid: 65534, gid: 65534 });
    expect(resolveUser("app:staff", PASSWD, GROUP)).toEqual({ uid: 1000, gid: 50 });
    expect(resolveUser("app:7", PASSWD, GROUP)).toEqual({ uid: 1000, gid: 7 });
  });

  it("refuses names the image does not know, naming the field", () => {
    expect(() => resolveUser("ghost", PASSWD, GROUP)).toThrow(/no user "ghost"/);
    expect(() => resolveUser("app:ghosts", PASSWD, GROUP, "image USER")).toThrow(
      /image USER: no group "ghosts"/,
    );
    expect(() => resolveUser("app", undefined, undefined)).toThrow(/no user "app"/);
  });
});
