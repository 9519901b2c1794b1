export {
  createS3Client,
  isMissingObject,
  parseS3Url,
  quietSdkNotices,
  S3_CONNECTOR,
  type S3ConnectionOptions,
  s3ConnectionFlags,
  s3ConnectionFromFlags,
  s3Error,
} from './s3.js';
export { createS3SourceDriver, type S3SourceOptions, s3Source } from './s3-source.js';
