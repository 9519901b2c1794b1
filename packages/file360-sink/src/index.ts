export { createFile360SinkDriver, type File360SinkOptions, file360Sink } from './file360-sink.js';
