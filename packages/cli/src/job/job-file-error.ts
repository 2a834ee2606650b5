import { ContainerError } from "@contexec/core";
import type { SourcePos } from "./yaml-tree.js";

/** One problem in a job file: where it was written, which key, what is wrong. */
export interface JobIssue {
  pos: SourcePos;
  /** The key path in the file: `services.app.volumes[1]`, `container.commands`. */
  path: string;
  message: string;
}

/**
 * A job file that cannot run as written: every problem found, each with its file, line, column
 * and key path, and the line itself under the message. Raised before anything starts.
 */
export class JobFileError extends ContainerError {
  readonly issues: readonly JobIssue[];
  constructor(issues: readonly JobIssue[], sources: ReadonlyMap<string, string> = new Map()) {
    super("E_INVALID_SPEC", issues.map((i) => formatJobIssue(i, sources.get(i.pos.source))).join("\n"));
    this.issues = issues;
  }
}

/**
 * `file:line:col: path: message`, then the line and a caret under the column when the source
 * text is known (as compilers print errors).
 */
export function formatJobIssue(issue: JobIssue, text?: string): string {
  const { pos } = issue;
  const where = pos.line > 0 ? `${pos.source}:${pos.line}:${pos.col}` : pos.source;
  const head = `${where}: ${issue.path ? `${issue.path}: ` : ""}${issue.message}`;
  if (text === undefined || pos.line <= 0) return head;
  const line = text.split(/\r?\n/)[pos.line - 1];
  if (line === undefined) return head;
  const gutter = String(pos.line);
  const pad = " ".repeat(gutter.length);
  const caret = `${line.slice(0, pos.col - 1).replace(/[^\t]/g, " ")}^`;
  return `${head}\n  ${gutter} | ${line}\n  ${pad} | ${caret}`;
}
