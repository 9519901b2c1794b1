export { createFsSinkDriver, FS_CONNECTOR, type FsSinkOptions, fsSink } from './fs-sink.js';
