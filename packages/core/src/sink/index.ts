export {
  type LiveExport,
  Publication,
  type RunMarker,
  readLive,
  sweepLeftovers,
} from './commit.js';
export {
  type CommitGuarantee,
  folderPaths,
  type PartStream,
  type SinkDriver,
  type StagedPart,
  type StoredObject,
  type StreamedPart,
  uploadStream,
} from './driver.js';
export { labelsOf, scoreOf, type TaskFilters, taskFilter } from './filters.js';
export {
  MANIFEST_VERSION,
  type Manifest,
  type ManifestFile,
  type ManifestPart,
  parseManifest,
} from './manifest.js';
export {
  isExportFile,
  MANIFEST_KEY,
  markerKey,
  ownedBy,
  REJECTS_KEY,
  REVIEW_KEY,
  splitTemplate,
} from './naming.js';
export { hostIdentity, processAlive } from './owner.js';
export { sheetCell } from './review.js';
export {
  createSink,
  type Sink,
  type SinkOptions,
  type SinkResult,
  type SinkStats,
} from './run.js';
export { SINK_FORMATS, type SinkFormat } from './staging.js';
