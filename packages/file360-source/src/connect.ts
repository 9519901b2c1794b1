import { ContentServer } from './content-server.js';
import { CoreShare } from './core-share.js';
import { type File360Api, type File360ConnectionOptions, resolveConnection } from './file360.js';

/** The client the options ask for: one given, else Content Server or Core Share REST. */
export function connect(options: File360ConnectionOptions): File360Api {
  if (options.client) return options.client;
  return resolveConnection(options).api === 'core-share'
    ? new CoreShare(options)
    : new ContentServer(options);
}
