export {
  createStorage,
  GCS_CONNECTOR,
  type GcsConnectionOptions,
  gcsConnectionFlags,
  gcsConnectionFromFlags,
  gcsError,
  isMissingObject,
  parseGcsUrl,
} from './gcs.js';
export { createGcsSourceDriver, type GcsSourceOptions, gcsSource } from './gcs-source.js';
export { createObjectReader, type ObjectReader } from './object-reader.js';
