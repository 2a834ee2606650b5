import { RegistryError } from "@contexec/core";

/** An image platform as OCI indexes name it. */
export interface Platform {
  os: string;
  architecture: string;
  variant?: string | undefined;
}

// Node's process.arch -> OCI/Go architecture names.
const ARCHITECTURES: Record<string, string> = {
  x64: "amd64",
  arm64: "arm64",
  arm: "arm",
  ia32: "386",
  ppc64: "ppc64le",
  s390x: "s390x",
  riscv64: "riscv64",
  loong64: "loong64",
  mips: "mips",
  mipsel: "mipsle",
};

/** The platform of this machine: "linux/amd64", "linux/arm64/v8", "linux/arm/v7". */
export function hostPlatform(
  arch: string = process.arch,
  os: string = process.platform,
  armVersion: string | undefined = armVersionOfThisNode(),
): Platform {
  const architecture = ARCHITECTURES[arch] ?? arch;
  const variant =
    architecture === "arm64" ? "v8" : architecture === "arm" ? `v${armVersion ?? "7"}` : undefined;
  return { os: os === "win32" ? "windows" : os, architecture, ...(variant && { variant }) };
}

function armVersionOfThisNode(): string | undefined {
  const v = (process.config.variables as Record<string, unknown>).arm_version;
  return typeof v === "string" || typeof v === "number" ? String(v) : undefined;
}

/** Parses "os/arch[/variant]" ("linux/amd64", "linux/arm64/v8"); RegistryError for anything else. */
export function parsePlatform(text: string): Platform {
  const parts = text.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) {
    throw new RegistryError(
      "platform",
      "reference",
      `"${text}" is not a platform; write os/arch[/variant], e.g. linux/amd64 or linux/arm64/v8`,
    );
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return normalizePlatform({ os, architecture, variant });
}

/** Go's aliases folded: aarch64 -> arm64 (variant v8 implied), x86_64 -> amd64, armhf -> arm/v7. */
export function normalizePlatform(p: Platform): Platform {
  let { architecture, variant } = p;
  if (architecture === "aarch64") architecture = "arm64";
  if (architecture === "x86_64" || architecture === "x86-64") architecture = "amd64";
  if (architecture === "armhf") {
    architecture = "arm";
    variant ??= "v7";
  }
  if (architecture === "armel") {
    architecture = "arm";
    variant ??= "v6";
  }
  if (architecture === "arm64" && (variant === undefined || variant === "8")) variant = "v8";
  if (architecture === "arm" && variant !== undefined && /^\d$/.test(variant)) variant = `v${variant}`;
  return { os: p.os, architecture, ...(variant !== undefined && { variant }) };
}

export function formatPlatform(p: Platform): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ""}`;
}

/**
 * Which of an index's entries to pull for `wanted`: os and architecture must be equal; the
 * variant must be equal when both name one (an entry without a variant serves any). Among
 * several matches an exact variant wins, then the first in the index (its order is the
 * publisher's preference). Entries with no platform match nothing, except in an index of one.
 * Returns the index position, or -1.
 */
export function selectPlatform(entries: readonly (Platform | undefined)[], wanted: Platform): number {
  const want = normalizePlatform(wanted);
  let fallback = -1;
  for (let i = 0; i < entries.length; i++) {
    const raw = entries[i];
    if (!raw) continue;
    const p = normalizePlatform(raw);
    if (p.os !== want.os || p.architecture !== want.architecture) continue;
    if (p.variant === want.variant) return i;
    if ((p.variant === undefined || want.variant === undefined) && fallback === -1) fallback = i;
  }
  if (fallback === -1 && entries.length === 1 && entries[0] === undefined) return 0;
  return fallback;
}
