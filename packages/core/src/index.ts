export {
  type CliInfo,
  type DocumentCommands,
  EXIT,
  type Flags,
  filterFlags,
  filtersFromFlags,
  integerFlag,
  type PublishCommand,
  runDocumentCli,
  runPublishCli,
  runSinkCli,
  runSourceCli,
  sinkOptionsFromFlags,
  sourceOptionsFromFlags,
} from './cli.js';
export {
  type Converted,
  type ConvertOptions,
  contentTypeOf,
  convert,
  detectFormat,
  FORMATS,
  type Format,
  gunzip,
  type TextMode,
} from './convert.js';
export {
  descriptionsPath,
  type FetchedImage,
  type LabelEntry,
  labelsFromCsv,
  labelsFromTable,
  labelsFromText,
  selfContainedHtml,
  type TableLabelOptions,
  writeLabelFiles,
} from './documents.js';
export {
  apiError,
  hasUserinfo,
  isRetryableStatus,
  isSluiceError,
  type KnownAnswer,
  RATE_LIMIT_REASONS,
  redact,
  requestError,
  SluiceError,
  type SluiceErrorCode,
  type SluiceErrorOptions,
  toSluiceError,
  usageError,
} from './errors.js';
export {
  IGNORE_KEYS,
  INPUT_KEYS,
  inputHash,
  murmurhash3_32,
  setHashes,
  TASK_KEYS,
  taskHash,
} from './hash.js';
export {
  DEFAULT_MAX_LINE_BYTES,
  type JsonlLine,
  type JsonlRecord,
  parseJsonl,
  readLines,
  type ScannedRecord,
  scanJsonl,
  writeJsonl,
} from './jsonl.js';
export {
  checkedBody,
  createLeanGet,
  type LeanAnswer,
  type LeanGet,
  leanBody,
} from './lean-get.js';
export { fileUri, toLocalPath } from './local.js';
export {
  DEFAULT_MEDIA_PORT,
  loadMediaKey,
  MEDIA_MODES,
  type MediaMode,
  MediaServer,
  mediaPath,
  prodigyOrigins,
} from './media.js';
export { numberOf, PyFloat, PyInt, parsePythonJson, pythonJsonDumps } from './python-json.js';
export { debugLog, serviceUrl } from './redact.js';
export { type Agreement, type DatasetReport, datasetReport, ReportBuilder } from './report.js';
export {
  isTransient,
  type RetryOptions,
  type RetryPolicy,
  retryAfterMs,
  retrying,
  retryWait,
  sendWithRetry,
} from './retry.js';
export { createSelector, parseShard, parseSize, parseTime, type Selection } from './select.js';
export {
  type CommitGuarantee,
  createSink,
  folderPaths,
  hostIdentity,
  isExportFile,
  labelsOf,
  MANIFEST_KEY,
  MANIFEST_VERSION,
  type Manifest,
  type ManifestFile,
  type ManifestPart,
  type PartStream,
  parseManifest,
  processAlive,
  REVIEW_KEY,
  SINK_FORMATS,
  type Sink,
  type SinkDriver,
  type SinkFormat,
  type SinkOptions,
  type SinkResult,
  type SinkStats,
  type StagedPart,
  type StoredObject,
  type StreamedPart,
  scoreOf,
  sheetCell,
  type TaskFilters,
  taskFilter,
  uploadStream,
} from './sink/index.js';
export {
  type Bytes,
  byteRange,
  createSource,
  type ListOptions,
  mapReadErrors,
  modifiedCursor,
  type OpenOptions,
  rangedBody,
  responseBody,
  type Source,
  type SourceDriver,
  type SourceItem,
  type SourceOptions,
  type SourceStats,
  skipBytes,
} from './source.js';
export { fileStateStore, parseState, type StateData, type StateStore } from './state.js';
export type {
  Answer,
  SourceLineage,
  Span,
  Task,
  TaskMeta,
  TaskOption,
  Token,
} from './task.js';
export { validateTask } from './task.js';
export { assertSafeKey, renderTemplate, safeSegment, TEMPLATE_KEYS } from './template.js';
