// Every Confluence wire call of Sluice, source and sink alike: Cloud (REST v2, plus v1 for CQL
// search and attachment upload, which v2 does not have), on the site or through Atlassian's API
// gateway, and Data Center (REST v1), over fetch.
import {
  apiError,
  byteRange,
  debugLog,
  type KnownAnswer,
  type RetryPolicy,
  responseBody,
  SluiceError,
  sendWithRetry,
  serviceUrl,
  usageError,
} from '@sluice/core';

export const CONFLUENCE_CONNECTOR = 'confluence';
export const debug = debugLog('sluice:confluence');

/**
 * Where the API is: a Cloud site (API tokens), Cloud through Atlassian's API gateway (OAuth 2.0
 * apps and scoped API tokens), or a self-hosted Data Center.
 */
export type Deployment = 'cloud' | 'gateway' | 'datacenter';
export const DEPLOYMENTS: readonly Deployment[] = ['cloud', 'gateway', 'datacenter'];

/** OAuth 2.0 (3LO) credentials that the client refreshes itself (library use). */
export interface OAuthCredentials {
  /** The access token held now (omit to start with a refresh). */
  accessToken?: string;
  /** A refresh token (the app asked for `offline_access`); Atlassian rotates it on each use. */
  refreshToken?: string;
  clientId?: string;
  clientSecret?: string;
  /** When the access token expires (ms since the epoch); it is refreshed a minute before. */
  expiresAt?: number;
  /** Told every new pair: the refresh token given is spent, keep the new one. */
  onRefresh?: (tokens: {
    accessToken: string;
    refreshToken?: string;
    expiresAt: number;
  }) => void | Promise<void>;
  /** The token endpoint (default https://auth.atlassian.com/oauth/token). */
  tokenUrl?: string;
}

/** How to reach Confluence. Shared by source and sink; unset fields come from the environment. */
export interface ConfluenceConnectionOptions {
  /** The wiki: https://acme.atlassian.net/wiki (Cloud), https://api.atlassian.com/ex/confluence/<cloudId> (the gateway) or https://confluence.acme.com (Data Center). Default: CONFLUENCE_URL. */
  site?: string;
  /** The Atlassian account's e-mail, with `apiToken` (default: CONFLUENCE_EMAIL). */
  email?: string;
  /** An API token of that account, classic or scoped (default: CONFLUENCE_API_TOKEN). */
  apiToken?: string;
  /** A bearer token: an OAuth 2.0 access token (Cloud, through the gateway) or a personal access token (Data Center). Default: CONFLUENCE_TOKEN. */
  token?: string;
  /** OAuth 2.0 (3LO) credentials refreshed as they expire (through the gateway). */
  oauth?: OAuthCredentials;
  /** cloud, gateway or datacenter (default: CONFLUENCE_DEPLOYMENT, else from the URL and the credentials). */
  deployment?: Deployment;
  /** The site's cloud id, for the gateway (default: CONFLUENCE_CLOUD_ID, else asked from the site). */
  cloudId?: string;
  /** The API gateway (default: CONFLUENCE_GATEWAY_URL, else https://api.atlassian.com). */
  gatewayUrl?: string;
  /** How throttled and failed requests are retried (default: 6 retries, from 1 s doubling, at most 60 s each). */
  retry?: RetryPolicy;
  /** A fetch of your own (a proxy agent, a test double). */
  fetch?: typeof fetch;
}

/** A page as both APIs describe it, with its storage-format body when asked for. */
export interface Page {
  id: string;
  title: string;
  spaceId?: string;
  spaceKey?: string;
  parentId?: string;
  version: number;
  modified?: Date;
  body?: string;
  /** The pages (and Cloud folders) above it, the top first (when the API gave them). */
  ancestors?: Array<{ id: string; title: string }>;
}

export interface Attachment {
  id: string;
  pageId: string;
  title: string;
  mediaType: string;
  size?: number;
  version: number;
  modified?: Date;
  /** Download link relative to the wiki base (the old file path; Data Center's route). */
  download: string;
}

export interface Space {
  id?: string;
  key: string;
}

/** A node below a page in the tree: a page, or a Cloud folder holding pages. */
export interface Child {
  id: string;
  title: string;
  type: 'page' | 'folder';
}

/** Results asked for in the first page of a list, so the first task comes quickly. */
const FIRST_PAGE = 25;
const PAGE_SIZE = 100;
const GATEWAY = 'https://api.atlassian.com';
const TOKEN_URL = 'https://auth.atlassian.com/oauth/token';
/** An OAuth access token is renewed this long before it expires. */
const EXPIRY_SKEW_MS = 60_000;

const siteHint =
  'set CONFLUENCE_URL (or --site) to the wiki, e.g. https://acme.atlassian.net/wiki or https://confluence.acme.com';

/** Reads the connection from options and the environment, checking what is required. */
function resolveConnection(options: ConfluenceConnectionOptions) {
  const env = process.env;
  const given = (options.site ?? env.CONFLUENCE_URL ?? '').trim();
  if (!given) throw usageError('no Confluence site given', siteHint);
  const url = new URL(
    serviceUrl(given, options.site ? '--site' : 'CONFLUENCE_URL', {
      example: 'https://acme.atlassian.net/wiki',
    }),
  );
  const chosen =
    options.deployment ?? ((env.CONFLUENCE_DEPLOYMENT || undefined) as Deployment | undefined);
  if (chosen !== undefined && !DEPLOYMENTS.includes(chosen)) {
    throw usageError(
      `--deployment must be cloud, gateway or datacenter, got "${chosen}"`,
      'cloud for an API token on *.atlassian.net, gateway for an OAuth token or a scoped API token, datacenter for a self-hosted Confluence',
    );
  }
  const email = options.email ?? env.CONFLUENCE_EMAIL;
  const apiToken = options.apiToken ?? env.CONFLUENCE_API_TOKEN;
  const token = options.token ?? (env.CONFLUENCE_TOKEN || undefined);
  const oauth = options.oauth;
  const basic = email && apiToken ? { email, apiToken } : undefined;
  if (!basic && !token && !oauth) {
    throw new SluiceError('no Confluence credentials', {
      code: 'AUTH',
      connector: CONFLUENCE_CONNECTOR,
      hint:
        email || apiToken
          ? 'set both CONFLUENCE_EMAIL and CONFLUENCE_API_TOKEN, or CONFLUENCE_TOKEN'
          : 'Cloud: set CONFLUENCE_EMAIL and CONFLUENCE_API_TOKEN (an API token), or CONFLUENCE_TOKEN (an OAuth access token, used through the API gateway); Data Center: set CONFLUENCE_TOKEN to a personal access token',
    });
  }
  const path = url.pathname.replace(/\/+$/, '');
  // https://api.atlassian.com/ex/confluence/<cloudId>[/wiki]: the gateway, named directly.
  const named = /^(.*\/ex\/confluence\/([^/]+))(?:\/wiki)?$/.exec(path);
  const atlassian = /\.atlassian\.net$/i.test(url.hostname);
  // 3LO tokens work only through the gateway; Cloud has no personal access tokens.
  const bearer = !basic && (token !== undefined || oauth !== undefined);
  const deployment: Deployment =
    chosen ?? (named ? 'gateway' : atlassian ? (bearer ? 'gateway' : 'cloud') : 'datacenter');
  if (deployment === 'cloud' && bearer) {
    throw usageError(
      'an OAuth access token works only through the API gateway',
      'use --deployment gateway (CONFLUENCE_DEPLOYMENT=gateway), or an API token with CONFLUENCE_EMAIL and CONFLUENCE_API_TOKEN',
    );
  }
  if (deployment === 'datacenter' && oauth) {
    throw usageError('OAuth 2.0 apps are a Cloud thing', 'use --deployment gateway');
  }
  let site: string | undefined = named ? undefined : `${url.origin}${path}`;
  // A Cloud site's wiki lives under /wiki.
  if (site && atlassian && path === '') site += '/wiki';
  const gateway = named
    ? { base: `${url.origin}${named[1]}/wiki`, cloudId: decodeURIComponent(named[2] as string) }
    : {
        base: undefined,
        cloudId: options.cloudId ?? env.CONFLUENCE_CLOUD_ID,
        origin: (options.gatewayUrl ?? env.CONFLUENCE_GATEWAY_URL ?? GATEWAY).replace(/\/+$/, ''),
      };
  return { site, deployment, basic, token, oauth, gateway };
}

/** An API error body's message: v2 `errors[].title`, v1 `message`, OAuth `error_description`. */
function apiMessage(body: string): string {
  try {
    const data = JSON.parse(body) as {
      errors?: Array<{ title?: string; detail?: string | null }>;
      message?: string;
      error_description?: string;
    };
    const first = data.errors?.[0];
    if (first) return [first.title, first.detail].filter(Boolean).join(': ');
    if (typeof data.message === 'string') return data.message;
    if (typeof data.error_description === 'string') return data.error_description;
  } catch {
    // not JSON: an HTML error page of a proxy
  }
  return '';
}

/** An HTTP error from Confluence. */
export class ConfluenceHttpError extends Error {
  constructor(
    readonly status: number,
    readonly apiMessage: string,
  ) {
    super(`HTTP ${status}${apiMessage ? ` ${apiMessage}` : ''}`);
  }
}

/** The answers Confluence gives that Sluice names, by HTTP status. */
const KNOWN: Record<number, KnownAnswer> = {
  400: {
    code: 'BAD_INPUT',
    text: 'request refused (400)',
    hint: 'check the CQL, space key and page ids',
  },
  401: {
    code: 'AUTH',
    text: 'credentials refused (401)',
    hint: 'check CONFLUENCE_EMAIL and CONFLUENCE_API_TOKEN, or CONFLUENCE_TOKEN; OAuth tokens and scoped API tokens work only through the API gateway (--deployment gateway), classic API tokens only on the site; tokens expire',
  },
  403: {
    code: 'AUTH',
    text: 'not permitted (403)',
    hint: 'the account needs view permission on the space to read, and add-page and attachment permissions to publish; an OAuth app or scoped token also needs the scopes the package README lists',
  },
  404: {
    code: 'NOT_FOUND',
    text: 'not found',
    hint: 'check the space key or page id, and that the account may view it (Confluence answers 404 for pages it hides)',
  },
  409: {
    code: 'CONFLICT',
    text: 'changed by someone else meanwhile',
    hint: 'run the command again',
  },
  429: {
    code: 'IO',
    text: 'rate limited (429), still after waiting as Confluence asked',
    hint: 'Confluence is throttling this account: wait a few minutes and run again, or lower --concurrency',
  },
};

/** Turns a failure into a SluiceError naming `what` (a page, a space); never includes credentials. */
export function confluenceError(error: unknown, what: string): SluiceError {
  const http = error instanceof ConfluenceHttpError ? error : undefined;
  return apiError(error, {
    connector: CONFLUENCE_CONNECTOR,
    what,
    status: http?.status,
    message: http?.apiMessage,
    known: http ? KNOWN[http.status] : undefined,
    unreachable: 'cannot reach Confluence: check CONFLUENCE_URL (or --site) and the network',
  });
}

/** A v2 page (or a v1 content object) as a Page. */
function pageOf(data: Record<string, unknown>): Page {
  const version = (data.version ?? {}) as { number?: number; createdAt?: string; when?: string };
  const body = data.body as
    | { storage?: { value?: string }; value?: string; representation?: string }
    | undefined;
  const space = data.space as { key?: string; id?: unknown } | undefined;
  const ancestors = data.ancestors as Array<{ id: string; title?: string }> | undefined;
  const when = version.createdAt ?? version.when;
  return {
    id: String(data.id),
    title: String(data.title ?? ''),
    spaceId: data.spaceId !== undefined ? String(data.spaceId) : undefined,
    spaceKey: space?.key,
    parentId:
      typeof data.parentId === 'string'
        ? data.parentId
        : ancestors?.length
          ? String(ancestors.at(-1)?.id)
          : undefined,
    version: Number(version.number ?? 1),
    modified: when ? new Date(when) : undefined,
    body: body?.storage?.value,
    ancestors: ancestors?.map((a) => ({ id: String(a.id), title: String(a.title ?? a.id) })),
  };
}

type RequestInit = {
  method?: string;
  json?: unknown;
  /** A multipart body already encoded, with its content type. */
  multipart?: { body: Buffer; type: string };
  signal?: AbortSignal;
  headers?: Record<string, string>;
};

/** The Confluence REST client: the calls Sluice makes, for Cloud, the gateway and Data Center. */
export class Confluence {
  readonly deployment: Deployment;
  private readonly fetch: typeof fetch;
  private readonly retry: RetryPolicy | undefined;
  private readonly staticAuth: string | undefined;
  private readonly oauth: OAuthCredentials | undefined;
  private refreshing: Promise<void> | undefined;
  private readonly gateway: ReturnType<typeof resolveConnection>['gateway'];
  private apiBase: string | undefined;
  private resolving: Promise<string> | undefined;
  private site: string | undefined;
  private readonly spaces = new Map<string, Space>();
  private zone: Promise<string | undefined> | undefined;

  constructor(options: ConfluenceConnectionOptions = {}) {
    const connection = resolveConnection(options);
    this.deployment = connection.deployment;
    this.site = connection.site;
    this.gateway = connection.gateway;
    this.oauth = connection.oauth && { ...connection.oauth };
    const { basic, token } = connection;
    if (basic) {
      this.staticAuth = `Basic ${Buffer.from(`${basic.email}:${basic.apiToken}`).toString('base64')}`;
    } else if (token) this.staticAuth = `Bearer ${token}`;
    if (this.deployment !== 'gateway') this.apiBase = this.site;
    else if (this.gateway.base) this.apiBase = this.gateway.base;
    this.fetch = options.fetch ?? fetch;
    this.retry = options.retry;
    const auth = basic ? `api token of ${basic.email}` : this.oauth ? 'OAuth app' : 'bearer token';
    debug('client: %s (%s), %s', this.site ?? this.apiBase, this.deployment, auth);
  }

  /** Cloud, on the site or through the gateway: REST v2 and Cloud's own routes. */
  get cloud(): boolean {
    return this.deployment !== 'datacenter';
  }

  /** The wiki as people open it (for the gateway, the site its answers name). */
  get base(): string {
    return this.site ?? this.apiBase ?? '';
  }

  /** The page as people open it; stable across renames and moves. */
  pageUrl(id: string): string {
    return `${this.base}/pages/viewpage.action?pageId=${id}`;
  }

  /** A link relative to the wiki, as people open it. */
  downloadUrl(link: string): string {
    return new URL(link.replace(/^\/+/, ''), `${this.base}/`).href;
  }

  /** Where the API is: for the gateway, found once from the site's cloud id. */
  private async api(): Promise<string> {
    if (this.apiBase) return this.apiBase;
    this.resolving ??= (async () => {
      const origin = this.gateway.origin as string;
      let cloudId = this.gateway.cloudId;
      if (!cloudId) {
        // The site tells its cloud id to anyone; no credential goes there.
        const info = `${new URL(this.site as string).origin}/_edge/tenant_info`;
        const response = await this.fetch(info, { headers: { accept: 'application/json' } });
        const data = response.ok ? ((await response.json()) as { cloudId?: string }) : {};
        if (!data.cloudId) {
          throw new SluiceError(`${info}: no cloud id (HTTP ${response.status})`, {
            code: 'NOT_FOUND',
            connector: CONFLUENCE_CONNECTOR,
            hint: 'check CONFLUENCE_URL names the Cloud site, or set CONFLUENCE_CLOUD_ID',
          });
        }
        cloudId = data.cloudId;
      }
      this.apiBase = `${origin}/ex/confluence/${encodeURIComponent(cloudId)}/wiki`;
      debug('gateway: %s', this.apiBase);
      return this.apiBase;
    })();
    try {
      return await this.resolving;
    } finally {
      this.resolving = undefined;
    }
  }

  /** The Authorization header; an OAuth token about to expire is refreshed first. */
  private async authorization(): Promise<string> {
    const oauth = this.oauth;
    if (!oauth) return this.staticAuth as string;
    const stale = oauth.expiresAt !== undefined && Date.now() >= oauth.expiresAt - EXPIRY_SKEW_MS;
    if ((!oauth.accessToken || stale) && oauth.refreshToken) await this.refresh();
    if (!oauth.accessToken) {
      throw new SluiceError('no OAuth access token, and no refresh token to get one', {
        code: 'AUTH',
        connector: CONFLUENCE_CONNECTOR,
        hint: 'pass oauth.accessToken, or oauth.refreshToken with clientId and clientSecret',
      });
    }
    return `Bearer ${oauth.accessToken}`;
  }

  /** Trades the refresh token for a new pair, once however many requests wait for it. */
  private refresh(): Promise<void> {
    const oauth = this.oauth as OAuthCredentials;
    this.refreshing ??= (async () => {
      const response = await this.fetch(oauth.tokenUrl ?? TOKEN_URL, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body: JSON.stringify({
          grant_type: 'refresh_token',
          client_id: oauth.clientId,
          client_secret: oauth.clientSecret,
          refresh_token: oauth.refreshToken,
        }),
      });
      const text = await response.text();
      if (!response.ok) {
        throw new SluiceError(`OAuth token refresh refused (HTTP ${response.status})`, {
          code: 'AUTH',
          connector: CONFLUENCE_CONNECTOR,
          cause: new ConfluenceHttpError(response.status, apiMessage(text)),
          hint: 'the refresh token is spent or revoked (they rotate: keep the one onRefresh gives), or the client id and secret are wrong; the user must consent again',
        });
      }
      const data = JSON.parse(text) as {
        access_token: string;
        refresh_token?: string;
        expires_in?: number;
      };
      oauth.accessToken = data.access_token;
      if (data.refresh_token) oauth.refreshToken = data.refresh_token;
      oauth.expiresAt = Date.now() + (data.expires_in ?? 3600) * 1000;
      debug('OAuth token refreshed, expires in %ds', data.expires_in);
      await oauth.onRefresh?.({
        accessToken: oauth.accessToken,
        refreshToken: oauth.refreshToken,
        expiresAt: oauth.expiresAt,
      });
    })();
    return this.refreshing.finally(() => {
      this.refreshing = undefined;
    });
  }

  /**
   * One request: JSON in and out, retried as the core policy says (429 for every method,
   * honouring Retry-After; 502-504 where safe). An expired OAuth token is refreshed and the
   * request sent once more. Errors are ConfluenceHttpErrors.
   */
  async request(
    path: string,
    init: RequestInit & { redirect?: 'follow' | 'manual' } = {},
  ): Promise<Response> {
    const url = /^https?:/.test(path) ? path : `${await this.api()}${path}`;
    const method = init.method ?? 'GET';
    let body: string | Buffer | undefined;
    const headers: Record<string, string> = { accept: 'application/json', ...init.headers };
    if (init.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(init.json);
    } else if (init.multipart) {
      headers['content-type'] = init.multipart.type;
      headers['x-atlassian-token'] = 'no-check';
      body = init.multipart.body;
    }
    for (let refreshed = false; ; refreshed = true) {
      const authorization = await this.authorization();
      const response = await sendWithRetry(
        () =>
          this.fetch(url, {
            method,
            headers: { ...headers, authorization },
            body,
            signal: init.signal,
            redirect: init.redirect ?? 'follow',
          }),
        {
          method,
          policy: this.retry,
          signal: init.signal,
          onRetry: (reason, wait) => debug('%s %s: %s, again in %dms', method, path, reason, wait),
        },
      );
      debug('%s %s -> %d', method, path, response.status);
      if (response.ok || (response.status >= 300 && response.status < 400)) return response;
      const text = await response.text().catch(() => '');
      if (response.status === 401 && this.oauth?.refreshToken && !refreshed) {
        await this.refresh();
        continue;
      }
      throw new ConfluenceHttpError(response.status, apiMessage(text));
    }
  }

  async json<T>(path: string, init?: RequestInit): Promise<T> {
    const data = (await (await this.request(path, init)).json()) as T;
    // Through the gateway named directly, the answers tell the site people open.
    const base = (data as { _links?: { base?: unknown } })?._links?.base;
    if (!this.site && typeof base === 'string' && /^https?:/.test(base)) {
      this.site = base.replace(/\/+$/, '');
    }
    return data;
  }

  /**
   * A list followed lazily through `_links.next`. Only the link's query is taken: the path is
   * the one asked for, since the gateway's links leave out its /ex/confluence/{cloudId} prefix.
   */
  async *list<T>(path: string, signal?: AbortSignal): AsyncGenerator<T> {
    const endpoint = path.split('?')[0] as string;
    let next: string | undefined = path;
    while (next && !signal?.aborted) {
      const data: { results?: T[]; _links?: { next?: string } } = await this.json(next, {
        signal,
      });
      yield* data.results ?? [];
      const link = data._links?.next;
      const query = link?.includes('?') ? link.slice(link.indexOf('?')) : undefined;
      // After a short first page, so the first task comes quickly, full pages.
      next = query ? `${endpoint}${query}`.replace(/([?&]limit=)\d+/, `$1${PAGE_SIZE}`) : undefined;
    }
  }

  /** A space by key, for its id (v2 calls name spaces by id); Cloud only. */
  async space(key: string): Promise<Space> {
    const known = this.spaces.get(key);
    if (known) return known;
    const data = await this.json<{ results: Array<{ id: string; key: string }> }>(
      `/api/v2/spaces?keys=${encodeURIComponent(key)}`,
    );
    const found = data.results.find((s) => s.key === key);
    if (!found) throw new ConfluenceHttpError(404, `no space with key ${key}`);
    const space = { id: String(found.id), key: found.key };
    this.spaces.set(key, space);
    return space;
  }

  /**
   * The caller's time zone (an IANA name), in which CQL reads dates; undefined when the
   * account hides it or the deployment does not tell it (Data Center).
   */
  timeZone(): Promise<string | undefined> {
    this.zone ??= this.json<{ timeZone?: string | null }>('/rest/api/user/current').then((user) => {
      const zone = user.timeZone ?? undefined;
      try {
        if (zone) new Intl.DateTimeFormat('en', { timeZone: zone });
        return zone;
      } catch {
        return undefined;
      }
    });
    return this.zone;
  }

  /** Pages matching a CQL query, with their bodies, lazily. */
  async *search(cql: string, signal?: AbortSignal): AsyncGenerator<Page> {
    const path = `/rest/api/content/search?cql=${encodeURIComponent(cql)}&limit=${FIRST_PAGE}&expand=body.storage,version,space,ancestors`;
    for await (const content of this.list<Record<string, unknown>>(path, signal)) {
      if (content.type === undefined || content.type === 'page') yield pageOf(content);
    }
  }

  /** One page with its body; undefined when it does not exist. */
  async page(id: string, signal?: AbortSignal): Promise<Page | undefined> {
    try {
      if (this.cloud) {
        return pageOf(
          await this.json(`/api/v2/pages/${encodeURIComponent(id)}?body-format=storage`, {
            signal,
          }),
        );
      }
      return pageOf(
        await this.json(
          `/rest/api/content/${encodeURIComponent(id)}?expand=body.storage,version,space,ancestors`,
          { signal },
        ),
      );
    } catch (error) {
      if (error instanceof ConfluenceHttpError && error.status === 404) return undefined;
      throw error;
    }
  }

  /**
   * The current pages and Cloud folders right below a page or folder, lazily, in their order.
   * Cloud's `direct-children` is asked: `children` leaves folders (and their pages) out.
   */
  async *children(parent: { id: string; type?: Child['type'] }, signal?: AbortSignal) {
    const id = encodeURIComponent(parent.id);
    const path = this.cloud
      ? `/api/v2/${parent.type === 'folder' ? 'folders' : 'pages'}/${id}/direct-children?limit=${FIRST_PAGE}`
      : `/rest/api/content/${id}/child/page?limit=${FIRST_PAGE}`;
    type Listed = { id: string; title: string; type?: string; status?: string };
    for await (const child of this.list<Listed>(path, signal)) {
      const type = child.type ?? 'page';
      if ((type !== 'page' && type !== 'folder') || (child.status ?? 'current') !== 'current') {
        continue; // whiteboards, databases, embeds; archived pages
      }
      yield { id: String(child.id), title: child.title, type } as Child;
    }
  }

  /** A page's attachments, lazily; with `filename`, only that one. */
  async *attachments(
    pageId: string,
    signal?: AbortSignal,
    filename?: string,
  ): AsyncGenerator<Attachment> {
    const only = filename ? `&filename=${encodeURIComponent(filename)}` : '';
    const path = this.cloud
      ? `/api/v2/pages/${pageId}/attachments?limit=${FIRST_PAGE}${only}`
      : `/rest/api/content/${pageId}/child/attachment?limit=${FIRST_PAGE}&expand=version${only}`;
    for await (const data of this.list<Record<string, unknown>>(path, signal)) {
      const version = (data.version ?? {}) as {
        number?: number;
        createdAt?: string;
        when?: string;
      };
      const extensions = (data.extensions ?? {}) as { mediaType?: string; fileSize?: number };
      const links = (data._links ?? {}) as { download?: string };
      const when = version.createdAt ?? version.when;
      yield {
        id: String(data.id),
        pageId,
        title: String(data.title),
        mediaType: String(data.mediaType ?? extensions.mediaType ?? 'application/octet-stream'),
        size: Number(data.fileSize ?? extensions.fileSize ?? Number.NaN) || undefined,
        version: Number(version.number ?? 1),
        modified: when ? new Date(when) : undefined,
        download: String(data.downloadLink ?? links.download),
      };
    }
  }

  /**
   * An attachment's bytes (or a range of them). Cloud refuses its old file path to API
   * callers: the REST download route is asked, and the media host it redirects to gets the
   * URL's own token, never the Confluence credentials. Data Center keeps the old path.
   */
  async download(
    attachment: Attachment,
    options: { start?: number; end?: number; signal?: AbortSignal } = {},
  ): Promise<AsyncIterable<Uint8Array>> {
    const { start, end, signal } = options;
    const range = byteRange(start, end);
    const headers = { accept: '*/*', ...(range ? { range } : {}) };
    let response: Response;
    if (this.cloud) {
      // The version listed, which the tasks are stamped with, even when one was added since.
      const route = `/rest/api/content/${encodeURIComponent(attachment.pageId)}/child/attachment/${encodeURIComponent(attachment.id)}/download?version=${attachment.version}`;
      response = await this.request(route, { signal, headers, redirect: 'manual' });
      const location = response.headers.get('location');
      if (response.status >= 300 && response.status < 400 && location) {
        const target = new URL(location, response.url || (await this.api()));
        response = await sendWithRetry(
          () => this.fetch(target, { headers, signal, redirect: 'follow' }),
          { method: 'GET', policy: this.retry, signal },
        );
        if (!response.ok) {
          const text = await response.text().catch(() => '');
          throw new ConfluenceHttpError(response.status, apiMessage(text));
        }
      }
    } else {
      response = await this.request(
        new URL(attachment.download.replace(/^\/+/, ''), `${await this.api()}/`).href,
        { signal, headers },
      );
    }
    return responseBody(response, { start, end });
  }

  /** The current page titled `title` in the space of `near` (a page); undefined when there is none. */
  async findPage(near: Page, title: string): Promise<Page | undefined> {
    if (this.cloud) {
      // v2 lists archived pages too unless asked for current ones.
      const path = `/api/v2/pages?space-id=${near.spaceId}&title=${encodeURIComponent(title)}&status=current&body-format=storage`;
      for await (const page of this.list<Record<string, unknown>>(path)) {
        const found = pageOf(page);
        if (found.title === title) return found;
      }
      return undefined;
    }
    const path = `/rest/api/content?spaceKey=${encodeURIComponent(near.spaceKey ?? '')}&title=${encodeURIComponent(title)}&type=page&expand=body.storage,version,space,ancestors`;
    for await (const content of this.list<Record<string, unknown>>(path)) {
      const found = pageOf(content);
      if (found.title === title) return found;
    }
    return undefined;
  }

  /** Creates a page under `parent`, in its space. */
  async createPage(parent: Page, page: { title: string; body: string }): Promise<Page> {
    if (this.cloud) {
      return pageOf(
        await this.json('/api/v2/pages', {
          method: 'POST',
          json: {
            spaceId: parent.spaceId,
            status: 'current',
            title: page.title,
            parentId: parent.id,
            body: { representation: 'storage', value: page.body },
          },
        }),
      );
    }
    return pageOf(
      await this.json('/rest/api/content?expand=version,space,ancestors', {
        method: 'POST',
        json: {
          type: 'page',
          title: page.title,
          space: { key: parent.spaceKey },
          ancestors: [{ id: parent.id }],
          body: { storage: { value: page.body, representation: 'storage' } },
        },
      }),
    );
  }

  /** Saves a new version of a page; `version` is the new version number (current + 1). */
  async updatePage(page: {
    id: string;
    title: string;
    body: string;
    version: number;
    message?: string;
  }): Promise<Page> {
    if (this.cloud) {
      return pageOf(
        await this.json(`/api/v2/pages/${page.id}`, {
          method: 'PUT',
          json: {
            id: page.id,
            status: 'current',
            title: page.title,
            body: { representation: 'storage', value: page.body },
            version: { number: page.version, message: page.message ?? '' },
          },
        }),
      );
    }
    return pageOf(
      await this.json(`/rest/api/content/${page.id}?expand=version,space,ancestors`, {
        method: 'PUT',
        json: {
          id: page.id,
          type: 'page',
          title: page.title,
          version: { number: page.version, message: page.message ?? '' },
          body: { storage: { value: page.body, representation: 'storage' } },
        },
      }),
    );
  }

  /** Attaches a file to a page, or adds a new version of the attachment of that name. */
  async putAttachment(
    pageId: string,
    file: { name: string; bytes: Buffer; contentType: string; comment?: string },
  ): Promise<void> {
    // v1 on both: Cloud's v2 has no upload. PUT creates the attachment or adds a version.
    await this.request(`/rest/api/content/${pageId}/child/attachment`, {
      method: 'PUT',
      multipart: multipart([
        { name: 'file', filename: file.name, type: file.contentType, data: file.bytes },
        // Without the charset, Confluence reads the comment as ISO-8859-1.
        ...(file.comment
          ? [{ name: 'comment', type: 'text/plain; charset=utf-8', data: file.comment }]
          : []),
        { name: 'minorEdit', data: 'true' },
      ]),
    });
  }
}

/** A multipart/form-data body (RFC 7578) whose text parts can name their charset, as FormData's cannot. */
function multipart(
  parts: Array<{ name: string; filename?: string; type?: string; data: Buffer | string }>,
): { body: Buffer; type: string } {
  const boundary = `----sluice${Date.now().toString(36)}${Math.random().toString(36).slice(2)}`;
  const quote = (value: string) =>
    value.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const disposition = `form-data; name="${quote(part.name)}"${part.filename === undefined ? '' : `; filename="${quote(part.filename)}"`}`;
    const head = `--${boundary}\r\nContent-Disposition: ${disposition}\r\n${part.type ? `Content-Type: ${part.type}\r\n` : ''}\r\n`;
    chunks.push(Buffer.from(head, 'utf8'), Buffer.from(part.data), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), type: `multipart/form-data; boundary=${boundary}` };
}

/** A value inside a double-quoted CQL string. */
export function cqlString(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"');
}

/** A CQL date, `yyyy-MM-dd HH:mm`, on the clocks of `zone` (CQL reads dates in the user's zone). */
export function cqlDate(date: Date, zone = 'UTC'): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-CA', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
    })
      .formatToParts(date)
      .map((p) => [p.type, p.value]),
  );
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}`;
}

/** A Confluence URL: a space, some pages, or a search (with --cql). */
export type ConfluenceTarget =
  | { kind: 'space'; key: string }
  | { kind: 'pages'; ids: string[] }
  | { kind: 'search' };

export function parseConfluenceUrl(url: string): ConfluenceTarget {
  const hint =
    'use confluence://SPACEKEY, confluence://page/<id> (the number in the page link, pageId=... or /pages/<id>/) or confluence://search with --cql';
  const match = /^confluence:\/\/([^/?#]+)(?:\/([^/?#]*))?\/?$/.exec(url);
  if (!match) throw usageError(`not a Confluence URL: ${url}`, hint);
  const [, first, second] = match as unknown as [string, string, string | undefined];
  if (first === 'page') {
    const ids = (second ?? '').split(',').filter(Boolean);
    if (ids.length === 0 || ids.some((id) => !/^\d{1,20}$/.test(id))) {
      throw usageError(`${url}: page ids are numbers`, hint);
    }
    return { kind: 'pages', ids };
  }
  if (first === 'search' && second === undefined) return { kind: 'search' };
  if (second !== undefined || !/^~?[A-Za-z0-9_-]{1,255}$/.test(first)) {
    throw usageError(`not a Confluence URL: ${url}`, hint);
  }
  return { kind: 'space', key: first };
}

/** The connection flags every Confluence command takes. */
export function confluenceConnectionFlags(program: {
  option(flags: string, description: string): unknown;
}): void {
  program.option(
    '--site <url>',
    'the wiki: https://acme.atlassian.net/wiki, https://api.atlassian.com/ex/confluence/<cloudId> or https://confluence.acme.com (default: CONFLUENCE_URL)',
  );
  program.option(
    '--deployment <kind>',
    'cloud, gateway or datacenter (default: CONFLUENCE_DEPLOYMENT, else gateway for an api.atlassian.com URL or an OAuth token on *.atlassian.net, cloud for *.atlassian.net, datacenter otherwise)',
  );
}

/** Reads the connection flags back; credentials come from the environment only. */
export function confluenceConnectionFromFlags(
  flags: Record<string, unknown>,
): ConfluenceConnectionOptions {
  return {
    site: flags.site as string | undefined,
    deployment: flags.deployment as Deployment | undefined,
  };
}
