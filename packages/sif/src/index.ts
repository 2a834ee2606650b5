export { type ConvertOptions, type ConvertResult, convertArchiveToSif } from "./convert-archive.js";
export {
  type EntryKind,
  type FlatEntry,
  type FlattenOptions,
  type FlattenPlan,
  planFlatten,
} from "./flatten-layers.js";
export { checkableByOffset, checkLayerDigests, type DigestCheck } from "./layer-digests.js";
export {
  archiveLayerSource,
  bufferLayerSource,
  type LayerSource,
  type RandomAccess,
} from "./layer-source.js";
export { type ImageFiles, type ReadImageFilesOptions, readImageFiles } from "./read-image-files.js";
export {
  alignUp,
  archOfSifCode,
  dataTypeName,
  decodeSifDescriptor,
  decodeSifHeader,
  encodeSifDescriptor,
  encodeSifHeader,
  inspectSif,
  SIF_ARCH_CODES,
  SIF_ARCH_UNKNOWN,
  SIF_DATA_ALIGNMENT,
  SIF_DATA_TYPES,
  SIF_DEFAULT_DESCRIPTOR_CAPACITY,
  SIF_DEFAULT_DESCRIPTORS_OFFSET,
  SIF_DEFAULT_GROUP,
  SIF_DESCRIPTOR_SIZE,
  SIF_FS_TYPES,
  SIF_GROUP_MASK,
  SIF_HEADER_SIZE,
  SIF_LAUNCH_SCRIPT,
  SIF_MAGIC,
  SIF_PARTITION_TYPES,
  SIF_VERSION,
  type SifArch,
  type SifDescriptor,
  type SifDescriptorFields,
  type SifHeader,
  type SifHeaderFields,
  type SifInfo,
  sifArchCode,
} from "./sif-format.js";
export {
  encodeSifPrefix,
  finishSif,
  planSifLayout,
  type SifLayout,
  type SifPartition,
  type SifSmallObject,
  writeSifFile,
} from "./sif-writer.js";
export {
  type MetadataOptions,
  type SingularityMetadata,
  singularityMetadata,
} from "./singularity-metadata.js";
export {
  defaultProcessors,
  resolveSqfstar,
  SQUASHFS_COMPRESSIONS,
  type SqfstarOptions,
  type SquashfsCompression,
  sqfstarArgs,
} from "./sqfstar.js";
export { encodeTar, OutputClosedError, TarWriter, type TarWriterOptions } from "./tar-writer.js";
export { type WriteFlattenedOptions, writeFlattened } from "./write-flattened.js";
