export {
  type CredentialSource,
  credentialSourceFor,
  type DockerConfigFile,
  dockerConfigCredentials,
  dockerConfigPath,
  parseHelperOutput,
  type ResolvedCredentials,
} from "./auth/docker-config.js";
export {
  type AuthChallenge,
  parseWwwAuthenticate,
} from "./auth/www-authenticate.js";
export {
  type Descriptor,
  type LayerCompression,
  layerCompression,
  MANIFEST_ACCEPT,
  type Manifest,
  MEDIA_TYPES,
  parseManifest,
} from "./manifest/parse-manifest.js";
export { type RemoteLayerOptions, type RemoteLayerStream, remoteLayerStreams } from "./pull/remote-layers.js";
export {
  type BlobSource,
  type ManifestFormat,
  type PushArchiveOptions,
  type PushedImage,
  type PushLayer,
  pushArchive,
  pushBlob,
  pushImage,
  pushIndex,
  pushManifest,
} from "./push/push-image.js";
export {
  DOCKER_HUB,
  familiarImageReference,
  formatImageReference,
  type ImageReference,
  isLoopbackRegistry,
  parseImageReference,
  registryApiHost,
} from "./reference/image-reference.js";
export {
  formatPlatform,
  hostPlatform,
  normalizePlatform,
  type Platform,
  parsePlatform,
  selectPlatform,
} from "./reference/platform.js";
export {
  type BlobOptions,
  type CallOptions,
  type FetchedManifest,
  RegistryClient,
  type RegistryClientOptions,
  type RegistryRequest,
  type RemoteImage,
  type ResolveOptions,
} from "./registry-client.js";
