import { constants } from "node:fs";
import { access, stat } from "node:fs/promises";
import { delimiter, isAbsolute, join, resolve } from "node:path";

/**
 * The one `which` of contexec: the path of an executable regular file called `name`, from the
 * folders of `path` (a PATH value), or `name` itself resolved when it holds a `/`. Relative PATH
 * entries are skipped: what runs must not depend on the caller's current folder. Every path
 * tried is appended to `tried`, for error messages.
 */
export async function findExecutable(
  name: string,
  path: string = process.env.PATH ?? "",
  tried: string[] = [],
): Promise<string | undefined> {
  const candidates = name.includes("/")
    ? [resolve(name)]
    : path
        .split(delimiter)
        .filter((d) => isAbsolute(d))
        .map((d) => join(d, name));
  for (const c of candidates) {
    tried.push(c);
    if (await isExecutableFile(c)) return c;
  }
  return undefined;
}

async function isExecutableFile(p: string): Promise<boolean> {
  try {
    await access(p, constants.X_OK);
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}
