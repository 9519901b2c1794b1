export { connect } from './connect.js';
export { ContentServer } from './content-server.js';
export { CoreShare } from './core-share.js';
export {
  dateOf,
  FILE360_APIS,
  FILE360_CONNECTOR,
  type File360Api,
  type File360ApiName,
  type File360ConnectionOptions,
  File360HttpError,
  type File360Node,
  type File360Target,
  file360ConnectionFlags,
  file360ConnectionFromFlags,
  file360Error,
  isNameTaken,
  isNotFound,
  parseFile360Url,
  resolveConnection,
  type Upload,
} from './file360.js';
export {
  createFile360SourceDriver,
  type File360Item,
  type File360SourceOptions,
  file360Source,
} from './file360-source.js';
export { type OtdsCredentials, OtdsTokens } from './otds.js';
