import { InvalidSpecError } from "@contexec/core";

/** A user to run as, numeric: what `--security uid:U,gid:G` takes. */
export interface NumericUser {
  uid: number;
  gid: number;
}

/**
 * Resolves `user` ("uid", "uid:gid", "name", "name:group", as in `docker run --user`) against the
 * image's /etc/passwd and /etc/group, the way runc does: a numeric uid without a group takes the
 * primary group of its passwd entry, else 0; a name must be in the image. Throws
 * {@link InvalidSpecError} naming `field` when a name is unknown.
 */
export function resolveUser(
  user: string,
  passwd: string | undefined,
  group: string | undefined,
  field = "user",
): NumericUser {
  const [who = "", grp] = user.split(":", 2);
  const users = parseDatabase(passwd);
  let uid: number;
  let gid: number | undefined;
  if (/^\d+$/.test(who)) {
    uid = Number(who);
    const entry = users.find((u) => u[2] === who);
    gid = entry ? Number(entry[3]) : 0;
  } else {
    const entry = users.find((u) => u[0] === who);
    if (!entry || !/^\d+$/.test(entry[2] ?? "") || !/^\d+$/.test(entry[3] ?? "")) {
      throw new InvalidSpecError([
        { path: field, message: `no user "${who}" in the image's /etc/passwd; give a numeric uid instead` },
      ]);
    }
    uid = Number(entry[2]);
    gid = Number(entry[3]);
  }
  if (grp !== undefined) {
    if (/^\d+$/.test(grp)) gid = Number(grp);
    else {
      const entry = parseDatabase(group).find((g) => g[0] === grp);
      if (!entry || !/^\d+$/.test(entry[2] ?? "")) {
        throw new InvalidSpecError([
          { path: field, message: `no group "${grp}" in the image's /etc/group; give a numeric gid instead` },
        ]);
      }
      gid = Number(entry[2]);
    }
  }
  return { uid, gid };
}

function parseDatabase(text: string | undefined): string[][] {
  return (text ?? "")
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => l.split(":"));
}
