/**
 * The reverse of quoting argv for a POSIX shell: reads a command line made of shell-quoted words
 * back into the words, and refuses everything a shell would do more with than split and unquote
 * (expansions, globs, redirections, pipes, lists). What it accepts, every POSIX shell reads as the
 * same words, so the words can be run with no shell at all.
 */

/** Characters a shell leaves alone outside quotes (Python's `shlex.quote` leaves these bare too). */
const BARE_CHAR = /[A-Za-z0-9_@%+=:,./-]/;
/** Characters that change the meaning of a double-quoted string: expansions and escapes. */
const DOUBLE_QUOTE_SPECIAL = /[$`\\]/;

/** One token of a command line: a word (quotes removed) or an operator such as `&&`. */
export type ShellToken = { kind: "word"; value: string } | { kind: "operator"; value: string };

export type ShellWordsResult = { ok: true; tokens: ShellToken[] } | { ok: false; reason: string };

export interface ParseShellWordsOptions {
  /** Operators allowed between words (only `&&` is understood); any other is refused. */
  operators?: readonly "&&"[];
}

/**
 * Splits one command line into words, removing quotes, as a POSIX shell would. Accepted:
 * bare characters `A-Z a-z 0-9 _ @ % + = : , . / -`, single-quoted text (anything but `'`,
 * newlines included), double-quoted text without `$`, backquotes or backslashes, words made of
 * several such parts (`'it'"'"'s'` is `it's`), spaces and tabs between words, whitespace at the
 * end, and the operators named in `options`. Everything else is refused with a one-line reason:
 * unquoted `$ \` ; | & < > ( ) { } * ? [ ] ~ # ! \\` and other characters, a newline outside
 * quotes before more text (a second command), an unterminated quote.
 */
export function parseShellWords(text: string, options: ParseShellWordsOptions = {}): ShellWordsResult {
  const operators = new Set<string>(options.operators ?? []);
  const tokens: ShellToken[] = [];
  const refuse = (reason: string): ShellWordsResult => ({ ok: false, reason });
  const nul = text.indexOf("\0");
  if (nul >= 0) return refuse(`a NUL byte at offset ${nul}: no argument can carry one`);
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === " " || c === "\t") {
      i++;
      continue;
    }
    if (c === "\n" || c === "\r") {
      if (/^\s*$/.test(text.slice(i))) break;
      return refuse(
        `a ${c === "\n" ? "newline" : "carriage return"} outside quotes at offset ${i} starts another command`,
      );
    }
    if (c === "&" && text[i + 1] === "&") {
      if (!operators.has("&&")) return refuse(`"&&" at offset ${i} joins commands; only one command may run`);
      const after = text[i + 2];
      if (after !== undefined && !/\s/.test(after))
        return refuse(`"&&" at offset ${i} must be followed by a space`);
      tokens.push({ kind: "operator", value: "&&" });
      i += 2;
      continue;
    }
    // A word: bare characters and quoted parts, up to a space, a tab, a newline or the end.
    let value = "";
    while (i < text.length) {
      const ch = text[i] as string;
      if (ch === " " || ch === "\t" || ch === "\n" || ch === "\r") break;
      if (ch === "'") {
        const end = text.indexOf("'", i + 1);
        if (end < 0) return refuse(`the single quote at offset ${i} is never closed`);
        value += text.slice(i + 1, end);
        i = end + 1;
      } else if (ch === '"') {
        const end = text.indexOf('"', i + 1);
        if (end < 0) return refuse(`the double quote at offset ${i} is never closed`);
        const inner = text.slice(i + 1, end);
        const special = DOUBLE_QUOTE_SPECIAL.exec(inner);
        if (special) {
          return refuse(
            `${describeChar(special[0])} inside double quotes at offset ${i + 1 + special.index} would be expanded by a shell; single-quote it`,
          );
        }
        value += inner;
        i = end + 1;
      } else if (BARE_CHAR.test(ch)) {
        value += ch;
        i++;
      } else {
        return refuse(`${describeChar(ch)} outside quotes at offset ${i} is not a plain word character`);
      }
    }
    tokens.push({ kind: "word", value });
  }
  return { ok: true, tokens };
}

/** Names a character and what a shell would do with it, for one-line refusals. */
function describeChar(c: string): string {
  const code = c.codePointAt(0) ?? 0;
  const printable = code >= 0x20 && code !== 0x7f && code < 0x80;
  const shown = printable ? `"${c}"` : `U+${code.toString(16).toUpperCase().padStart(4, "0")}`;
  const meaning: Record<string, string> = {
    $: "an expansion",
    "`": "a command substitution",
    "\\": "an escape",
    ";": "a command separator",
    "|": "a pipe",
    "&": "a background or list operator",
    "<": "a redirection",
    ">": "a redirection",
    "(": "a subshell",
    ")": "a subshell",
    "{": "a group or brace expansion",
    "}": "a group or brace expansion",
    "*": "a glob",
    "?": "a glob",
    "[": "a glob",
    "]": "a glob",
    "~": "a tilde expansion",
    "#": "a comment",
    "!": "a negation",
  };
  const what = meaning[c];
  return what ? `${shown} (${what})` : shown;
}
