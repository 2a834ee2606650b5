/**
 * A SLURM time limit in seconds, from a number of minutes or the forms `--time` takes: "M",
 * "M:S", "H:M:S", "D-H", "D-H:M", "D-H:M:S"; 0, "UNLIMITED" and "INFINITE" (no limit) give Infinity.
 * Throws an Error saying what is wrong.
 */
export function parseTimeLimit(value: string | number): number {
  if (typeof value === "number") {
    if (!Number.isFinite(value) || value < 0)
      throw new Error("a number of minutes must be 0 (no limit) or more");
    return value === 0 ? Number.POSITIVE_INFINITY : Math.ceil(value * 60);
  }
  const v = value.trim();
  if (/^(unlimited|infinite)$/i.test(v)) return Number.POSITIVE_INFINITY;
  const m = /^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$/.exec(v);
  if (!m) {
    throw new Error(`"${value}" is not a SLURM time (minutes, M:S, H:M:S, D-H, D-H:M, D-H:M:S or UNLIMITED)`);
  }
  const [, d, a, b, c] = m;
  const n = (s: string | undefined) => (s === undefined ? 0 : Number(s));
  let seconds: number;
  if (d !== undefined) {
    // With days, the fields are hours[:minutes[:seconds]].
    seconds = n(d) * 86_400 + n(a) * 3600 + n(b) * 60 + n(c);
  } else if (c !== undefined) {
    seconds = n(a) * 3600 + n(b) * 60 + n(c);
  } else if (b !== undefined) {
    seconds = n(a) * 60 + n(b);
  } else {
    seconds = n(a) * 60;
  }
  // "A time limit of zero requests that no time limit be imposed" (sbatch(1)).
  return seconds === 0 ? Number.POSITIVE_INFINITY : seconds;
}

/** The `--time` value: SLURM's own form as given, or whole minutes (SLURM rounds seconds up anyway). */
export function timeLimitOption(value: string | number): string {
  return typeof value === "number" ? String(value === 0 ? 0 : Math.max(1, Math.ceil(value))) : value.trim();
}

/**
 * How long before the time limit the container gets its stop signal: the wanted lead, but at
 * most half of the limit (a one-minute job is not signalled at its start), in whole seconds from
 * 1 to 65535 (what `--signal` accepts).
 */
export function signalLeadSeconds(limitSeconds: number, wantedSeconds: number): number {
  const lead = Number.isFinite(limitSeconds) ? Math.min(wantedSeconds, limitSeconds / 2) : wantedSeconds;
  return Math.min(65_535, Math.max(1, Math.floor(lead)));
}
