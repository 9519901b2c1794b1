export {
  type Attachment,
  type Child,
  CONFLUENCE_CONNECTOR,
  Confluence,
  type ConfluenceConnectionOptions,
  ConfluenceHttpError,
  type ConfluenceTarget,
  confluenceConnectionFlags,
  confluenceConnectionFromFlags,
  confluenceError,
  cqlDate,
  cqlString,
  DEPLOYMENTS,
  type Deployment,
  type OAuthCredentials,
  type Page,
  parseConfluenceUrl,
} from './confluence.js';
export {
  type ConfluenceItem,
  type ConfluenceSourceOptions,
  confluenceSource,
  createConfluenceSourceDriver,
  SPLITS,
} from './confluence-source.js';
export { readGuidelines, readLabels } from './documents.js';
export {
  type Split,
  type StorageOptions,
  type StorageSection,
  storageLabels,
  storageSections,
  storageTables,
  storageToHtml,
} from './storage.js';
