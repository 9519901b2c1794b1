export { readGuidelines, readLabels } from './documents.js';
export {
  createDrive,
  type Drive,
  type DriveConnectionOptions,
  type DriveTarget,
  driveCall,
  driveConnectionFlags,
  driveConnectionFromFlags,
  driveError,
  FOLDER_TYPE,
  GDRIVE_CONNECTOR,
  isNotFound,
  ONE_TRY,
  parseDriveUrl,
  READ_SCOPE,
  statusOf,
  WRITE_SCOPE,
} from './drive.js';
export {
  createGdriveSourceDriver,
  DOCS_MODES,
  type DocsMode,
  type DriveItem,
  type GdriveSourceOptions,
  gdriveSource,
} from './gdrive-source.js';
