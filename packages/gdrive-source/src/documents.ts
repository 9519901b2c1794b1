// `guidelines` and `labels`: a Doc or Sheet becomes Prodigy's instructions or label file.
import {
  type LabelEntry,
  labelsFromCsv,
  labelsFromText,
  type TableLabelOptions,
  usageError,
} from '@sluice/core';
import {
  createDrive,
  type DriveConnectionOptions,
  driveCall,
  ONE_TRY,
  parseDriveUrl,
  READ_SCOPE,
} from './drive.js';

const DOC = 'application/vnd.google-apps.document';
const SHEET = 'application/vnd.google-apps.spreadsheet';

/** A file's name and text: Google files exported as `exportType`, others downloaded. */
async function readFile(
  url: string,
  options: DriveConnectionOptions,
  exportTypes: Record<string, string>,
  accepted: string,
): Promise<{ text: string; name: string; mimeType: string }> {
  const target = parseDriveUrl(url);
  if (target.kind !== 'file') {
    throw usageError(`${url} is a folder URL`, 'use gdrive://file/<id> of a Doc or Sheet');
  }
  const drive = createDrive(options, READ_SCOPE);
  const { data: meta } = await driveCall(url, () =>
    drive.files.get(
      { fileId: target.id, fields: 'id,name,mimeType', supportsAllDrives: true },
      ONE_TRY,
    ),
  );
  const mimeType = meta.mimeType ?? '';
  const name = `${url} (${meta.name})`;
  const exportType = exportTypes[mimeType];
  const plain = /^text\//.test(mimeType);
  if (!exportType && !plain) {
    throw usageError(`${name} is ${mimeType}`, `use ${accepted}`);
  }
  const { data } = await driveCall(name, () =>
    exportType
      ? drive.files.export(
          { fileId: target.id, mimeType: exportType },
          { ...ONE_TRY, responseType: 'arraybuffer' },
        )
      : drive.files.get(
          { fileId: target.id, alt: 'media', supportsAllDrives: true },
          { ...ONE_TRY, responseType: 'arraybuffer' },
        ),
  );
  const text = Buffer.from(data as ArrayBuffer)
    .toString('utf8')
    .replace(/^\uFEFF/, '');
  return { text, name, mimeType: exportType ?? mimeType };
}

/** A Google Doc (or an HTML file) as HTML, for `guidelines`. */
export async function readGuidelines(
  url: string,
  options: DriveConnectionOptions = {},
): Promise<{ html: string; name: string }> {
  const { text, name } = await readFile(
    url,
    options,
    { [DOC]: 'text/html' },
    'a Google Doc or an HTML file',
  );
  return { html: text, name };
}

/** The labels a Sheet column (or a CSV file) or a Doc's list (or a text file) holds, for `labels`. */
export async function readLabels(
  url: string,
  options: DriveConnectionOptions & Omit<TableLabelOptions, 'name'> = {},
): Promise<{ entries: LabelEntry[]; name: string }> {
  const { text, name, mimeType } = await readFile(
    url,
    options,
    { [DOC]: 'text/plain', [SHEET]: 'text/csv' },
    'a Google Sheet or Doc, or a CSV or text file',
  );
  const entries =
    mimeType === 'text/csv'
      ? labelsFromCsv(text, {
          name,
          column: options.column,
          descriptionColumn: options.descriptionColumn,
        })
      : labelsFromText(text);
  return { entries, name };
}
