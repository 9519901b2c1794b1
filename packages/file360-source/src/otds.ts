// OpenText Directory Services (OTDS) OAuth tokens, for both backends: asked for with client
// credentials (or the password grant with them, as OpenText's pyxecm does), renewed when the
// API refuses the one held.
import { SluiceError } from '@sluice/core';
import { debug, FILE360_CONNECTOR, File360HttpError } from './file360.js';

/** What OTDS needs to hand out tokens. */
export interface OtdsCredentials {
  /** OTDS's base URL (it serves /otdsws/oauth2/token). */
  url: string;
  clientId: string;
  clientSecret: string;
  /** With a user, the password grant (the token acts as that user); else client credentials. */
  username?: string;
  password?: string;
}

/** Holds one OTDS access token and gets a new one when asked; one request however many wait. */
export class OtdsTokens {
  private accessToken: string | undefined;
  private refreshToken: string | undefined;
  private pending: Promise<string> | undefined;

  constructor(
    private readonly credentials: OtdsCredentials,
    private readonly fetch: typeof globalThis.fetch,
  ) {}

  /** The token held, or a new one. */
  async token(): Promise<string> {
    return this.accessToken ?? this.renew();
  }

  /** A new token (the one held was refused): by its refresh token when OTDS gave one. */
  renew(): Promise<string> {
    this.pending ??= this.ask().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async ask(): Promise<string> {
    const { url, clientId, clientSecret, username, password } = this.credentials;
    const grants: Array<Record<string, string>> = [];
    if (this.refreshToken) {
      grants.push({ grant_type: 'refresh_token', refresh_token: this.refreshToken });
    }
    grants.push(
      username && password
        ? { grant_type: 'password', username, password }
        : { grant_type: 'client_credentials' },
    );
    let refused: File360HttpError | undefined;
    for (const grant of grants) {
      const response = await this.fetch(`${url.replace(/\/+$/, '')}/otdsws/oauth2/token`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
        },
        body: new URLSearchParams({ ...grant, client_id: clientId, client_secret: clientSecret }),
      });
      const text = await response.text();
      if (response.ok) {
        const data = JSON.parse(text) as { access_token?: string; refresh_token?: string };
        if (data.access_token) {
          this.accessToken = data.access_token;
          this.refreshToken = data.refresh_token;
          debug('OTDS token (%s grant)', grant.grant_type);
          return data.access_token;
        }
      }
      refused = new File360HttpError(response.status, oauthMessage(text));
      debug('OTDS refused the %s grant: %d', grant.grant_type, response.status);
    }
    throw new SluiceError(`OTDS refused the credentials (${refused?.message})`, {
      code: 'AUTH',
      connector: FILE360_CONNECTOR,
      cause: refused,
      hint: 'check FILE360_CLIENT_ID and FILE360_CLIENT_SECRET (an OAuth client of the tenant), FILE360_USERNAME and FILE360_PASSWORD, and FILE360_OTDS_URL',
    });
  }
}

/** An OAuth 2.0 error body's words (RFC 6749 §5.2). */
function oauthMessage(body: string): string {
  try {
    const data = JSON.parse(body) as { error?: string; error_description?: string };
    return [data.error, data.error_description].filter(Boolean).join(': ');
  } catch {
    return '';
  }
}
