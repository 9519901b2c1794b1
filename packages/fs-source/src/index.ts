export {
  createFsSourceDriver,
  FS_CONNECTOR,
  type FsSourceOptions,
  fsSource,
} from './fs-source.js';
