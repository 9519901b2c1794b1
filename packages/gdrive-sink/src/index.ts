export { createGdriveSinkDriver, type GdriveSinkOptions, gdriveSink } from './gdrive-sink.js';
