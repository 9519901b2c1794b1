export {
  createFsSourceDriver,
  FS_CONNECTOR,
  type FsSourceOptions,
  fileUri,
  fsSource,
  toPath,
} from './fs-source.js';
