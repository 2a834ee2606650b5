import { parseShellWords } from "../shell-words.js";

/** What a singreqrun `.cmd` file asks for: an argv, and the folder of a leading `cd DIR && `. */
export type CommandScript = { ok: true; argv: string[]; cd?: string } | { ok: false; reason: string };

/**
 * Reads a `.cmd` file of singreqrun's protocol back into an argv: a `#!` line, then one command
 * line of shell-quoted words (Python's client: `shlex.quote` words joined by spaces; the C client:
 * every word single-quoted, a trailing space, and a `cd DIR && ` prefix). Anything a shell would
 * do more with than split and unquote is refused (see {@link parseShellWords}), and so are a
 * leading variable assignment and more than one command.
 */
export function parseCommandScript(text: string): CommandScript {
  const newline = text.indexOf("\n");
  if (!text.startsWith("#!") || newline < 0)
    return { ok: false, reason: "the file must start with a #! line, then the command" };
  const parsed = parseShellWords(text.slice(newline + 1), { operators: ["&&"] });
  if (!parsed.ok) return parsed;
  const tokens = parsed.tokens;
  let cd: string | undefined;
  let start = 0;
  const first = tokens[0];
  if (first?.kind === "word" && first.value === "cd") {
    const dir = tokens[1];
    if (dir?.kind !== "word" || tokens[2]?.kind !== "operator")
      return { ok: false, reason: "`cd` must be followed by one folder and `&&`, then the command" };
    cd = dir.value;
    start = 3;
  }
  const argv: string[] = [];
  for (const token of tokens.slice(start)) {
    if (token.kind !== "word")
      return { ok: false, reason: "`&&` may only follow `cd DIR`; only one command may run" };
    argv.push(token.value);
  }
  const program = argv[0];
  if (program === undefined) return { ok: false, reason: "there is no command to run" };
  // A shell would read `NAME=value` first as a variable for the command after it.
  if (/^[A-Za-z_][A-Za-z0-9_]*=/.test(program))
    return { ok: false, reason: "the command starts with a variable assignment (NAME=value)" };
  return cd === undefined ? { ok: true, argv } : { ok: true, argv, cd };
}
