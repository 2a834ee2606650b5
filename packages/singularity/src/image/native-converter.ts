import { InvalidConfigError } from "@contexec/core";
import type { SifConverter, SifConvertInput, SifConvertOptions } from "./sif-converter.js";

type ConvertArchiveToSif = (
  archivePath: string,
  outPath: string,
  options?: Record<string, unknown>,
) => Promise<unknown>;

/**
 * The native converter of @contexec/sif (layers flattened, squashfs built with sqfstar, SIF
 * written by Node; no Apptainer needed). Looked up at run time so this package works with a
 * @contexec/sif that does not have it yet.
 */
export class NativeSifConverter implements SifConverter {
  readonly name = "native";
  readonly #convert: ConvertArchiveToSif;

  private constructor(convert: ConvertArchiveToSif) {
    this.#convert = convert;
  }

  static async load(): Promise<NativeSifConverter> {
    const mod = (await import("@contexec/sif")) as Record<string, unknown>;
    const convert = mod.convertArchiveToSif;
    if (typeof convert !== "function") {
      throw new InvalidConfigError(
        'converter "native" needs convertArchiveToSif from @contexec/sif, which this version does not export; use converter "apptainer-build"',
      );
    }
    return new NativeSifConverter(convert as ConvertArchiveToSif);
  }

  async convert(input: SifConvertInput, outPath: string, options: SifConvertOptions): Promise<void> {
    await this.#convert(input.archivePath, outPath, {
      tmpDir: options.tmpDir,
      ...(options.signal && { signal: options.signal }),
      ...(options.onBytes && {
        onProgress: ({ bytesRead }: { bytesRead: number }) => options.onBytes?.(bytesRead),
      }),
    });
  }
}
