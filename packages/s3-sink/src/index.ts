export { createS3SinkDriver, type S3SinkOptions, s3Sink } from './s3-sink.js';
