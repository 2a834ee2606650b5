import { InvalidSpecError } from "./errors.js";

/** Words that read the same in any POSIX shell position when left bare (no `=`: `A=b` first is an assignment). */
const BARE = /^[A-Za-z0-9_@%+:,./-]+$/;
// A lone UTF-16 surrogate cannot be written as UTF-8: the shell would receive other bytes.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * One word for a POSIX shell (bash, dash, busybox sh, Apptainer's built-in shell) that reads
 * back as exactly `value`: bare when it holds only characters no shell treats specially, else
 * single-quoted. A quote inside is written `'"'"'` rather than `'\''`: Apptainer 1.4's built-in
 * shell, which evaluates its environment scripts, reads `'\''` as a backslash and a quote.
 *
 * Throws {@link InvalidSpecError} for what no shell word can carry: a NUL byte (argv and
 * environment strings end at NUL) and text that is not valid Unicode (a lone surrogate has no
 * UTF-8 form, so the shell would be given other bytes than the caller meant).
 *
 * @param where names the value in the error (`command[2]`, `env.FOO`).
 */
export function shellQuote(value: string, where = "value"): string {
  if (value.includes("\0")) {
    throw new InvalidSpecError([
      { path: where, message: "holds a NUL byte, which no argument or variable can carry" },
    ]);
  }
  if (LONE_SURROGATE.test(value)) {
    throw new InvalidSpecError([
      {
        path: where,
        message: "is not valid Unicode (a lone surrogate), so it has no UTF-8 bytes to pass on",
      },
    ]);
  }
  if (BARE.test(value)) return value;
  return `'${value.replace(/'/g, `'"'"'`)}'`;
}

/** Words joined by spaces, each through {@link shellQuote}: a command line a shell splits back into `words`. */
export function shellJoin(words: readonly string[], where = "argv"): string {
  return words.map((w, i) => shellQuote(w, `${where}[${i}]`)).join(" ");
}
