export { ContentServer, connect } from './content-server.js';
export {
  DOCUMENT,
  FILE360_CONNECTOR,
  type File360Api,
  type File360ConnectionOptions,
  File360HttpError,
  type File360Node,
  type File360Target,
  FOLDER,
  file360ConnectionFlags,
  file360ConnectionFromFlags,
  file360Error,
  isNameTaken,
  isNotFound,
  parseFile360Url,
  type Upload,
} from './file360.js';
export {
  createFile360SourceDriver,
  type File360Item,
  type File360SourceOptions,
  file360Source,
} from './file360-source.js';
