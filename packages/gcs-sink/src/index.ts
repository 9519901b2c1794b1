export { createGcsSinkDriver, type GcsSinkOptions, gcsSink } from './gcs-sink.js';
