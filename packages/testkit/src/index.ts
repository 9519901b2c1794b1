export {
  type ConfluenceAttachment,
  type ConfluencePage,
  ConfluenceServer,
  type ConfluenceServerOptions,
  type ConfluenceSpace,
  confluenceToken,
  type FormPart,
  parseCql,
  parseFormData,
  startConfluenceServer,
} from './confluence-server.js';
export {
  type CoreShareItem,
  type CoreShareRequest,
  CoreShareServer,
  coreShareClient,
  startCoreShareServer,
} from './core-share-server.js';
export { crc32c, crc32cBase64 } from './crc32c.js';
export {
  ENTERPRISE_WORKSPACE,
  type File360Node,
  type File360Request,
  File360Server,
  type File360ServerOptions,
  type File360Version,
  startFile360Server,
} from './file360-server.js';
export {
  useConfluence,
  useCoreShare,
  useDrive,
  useFile360,
  useGcs,
  useS3,
} from './fixtures.js';
export {
  GcsServer,
  type GcsServerOptions,
  serviceAccount,
  startGcsServer,
} from './gcs-server.js';
export {
  DEFAULT_CLIENT_ID,
  DRIVE_READONLY_SCOPE,
  DRIVE_SCOPE,
  type DriveFile,
  DriveServer,
  type DriveServerOptions,
  driveThrottle,
  startDriveServer,
  type TokenIdentity,
} from './gdrive-server.js';
export { type GeneratedBucket, parseGeneratedBucket } from './generated.js';
export { OtdsIssuer } from './otds.js';
export {
  hasMoto,
  runMoto,
  S3_SERVERS,
  type S3Server,
  type S3ServerName,
  startMoto,
  startS3,
  startS3rver,
} from './s3.js';
export { S3Stub, startS3Stub } from './s3-stub.js';
