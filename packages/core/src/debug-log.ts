import { debuglog } from "node:util";

/*
 * The one debug log of contexec: `NODE_DEBUG=contexec node app.js` prints every runtime call (a
 * Docker API request, an apptainer argv) with how long it took, on stderr, as Node prints its own
 * debug sections ("CONTEXEC 1234: docker GET /containers/abc/json 200 3 ms").
 */

let log: ReturnType<typeof debuglog> | undefined;

// debuglog reads NODE_DEBUG when first asked; created on first use, so a test can set it first.
function sink(): ReturnType<typeof debuglog> {
  log ??= debuglog("contexec");
  return log;
}

/** Whether NODE_DEBUG names contexec (to skip building messages nobody sees). */
export function debugEnabled(): boolean {
  return sink().enabled;
}

/** Writes one line to the debug log. */
export function debugLog(message: string): void {
  const write = sink();
  if (write.enabled) write("%s", message);
}

/**
 * Logs one finished runtime call: `runtime` ("docker", "apptainer"), the call (an argv, shown
 * quoted, or a request line such as "GET /containers/json"), its duration, and how it ended
 * (an exit code, an HTTP status, an error's message).
 */
export function logRuntimeCall(
  runtime: string,
  call: string | readonly string[],
  durationMs: number,
  outcome?: string,
): void {
  if (!debugEnabled()) return;
  const shown = typeof call === "string" ? call : call.map(showArg).join(" ");
  debugLog(`${runtime} ${shown}${outcome ? ` -> ${outcome}` : ""} ${Math.round(durationMs)} ms`);
}

/** Runs `fn` and logs it as one runtime call with its duration and outcome (see {@link logRuntimeCall}). */
export async function traceRuntimeCall<T>(
  runtime: string,
  call: string | readonly string[],
  fn: () => Promise<T>,
  outcomeOf?: (result: T) => string | undefined,
): Promise<T> {
  if (!debugEnabled()) return fn();
  const started = performance.now();
  try {
    const result = await fn();
    logRuntimeCall(runtime, call, performance.now() - started, outcomeOf?.(result) ?? "ok");
    return result;
  } catch (err) {
    logRuntimeCall(
      runtime,
      call,
      performance.now() - started,
      `failed: ${(err as Error)?.message ?? String(err)}`,
    );
    throw err;
  }
}

// An argument as a reader can copy it: bare when plain, else in single quotes.
function showArg(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`;
}
