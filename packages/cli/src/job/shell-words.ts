/** Where a command string cannot be split, with the 0-based offset of the fault. */
export class ShellWordsError extends Error {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message);
    this.offset = offset;
  }
}

// Unquoted, these are shell syntax (redirection, pipes, lists, background): with no shell
// between the file and the process they cannot mean what they look like, so they are refused
// rather than passed on as words.
const OPERATORS = new Set([";", "&", "|", "<", ">"]);

/**
 * Splits a command line into words as compose does for a string `command`/`entrypoint` (and as
 * a POSIX shell would split it, minus every expansion): blanks separate words; single quotes keep
 * everything literally; double quotes keep everything but `\"`, `\\`, `\$` and `` \` ``, which
 * lose their backslash; outside quotes a backslash keeps the next character (and a backslash
 * before a newline joins the lines). `$VAR`, `*`, `~` and backticks stay as written: nothing is
 * expanded, no shell runs.
 *
 * Throws {@link ShellWordsError} for an unterminated quote, a trailing backslash and unquoted
 * shell operators (`>`, `|`, `;`, `&`, `<`).
 */
export function splitShellWords(text: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let i = 0;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === " " || c === "\t" || c === "\n" || c === "\r") {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      i++;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) throw new ShellWordsError("unterminated single quote", i);
      word += text.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      const start = i;
      i++;
      for (;;) {
        if (i >= text.length) throw new ShellWordsError("unterminated double quote", start);
        const d = text[i] as string;
        if (d === '"') break;
        if (d === "\\" && i + 1 < text.length) {
          const next = text[i + 1] as string;
          if (next === '"' || next === "\\" || next === "$" || next === "`") {
            word += next;
            i += 2;
            continue;
          }
          if (next === "\n") {
            i += 2;
            continue;
          }
        }
        word += d;
        i++;
      }
      inWord = true;
      i++;
    } else if (c === "\\") {
      if (i + 1 >= text.length) throw new ShellWordsError("a backslash ends the command", i);
      const next = text[i + 1] as string;
      if (next !== "\n") {
        word += next;
        inWord = true;
      }
      i += 2;
    } else if (OPERATORS.has(c)) {
      throw new ShellWordsError(
        `unquoted "${c}" is shell syntax, and no shell runs this command; quote it to pass it as an argument, or run a shell: sh -c '...'`,
        i,
      );
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}
