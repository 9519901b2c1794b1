/**
 * OpenText Directory Services' OAuth token endpoint, as the test kit's Content Server and Core
 * Share servers mount it (POST /otdsws/oauth2/token). Written from these sources:
 *   PX  opentext/pyxecm, otds.py (client_credentials form grant at /otdsws/oauth2/token, the
 *       answer {access_token, token_type: Bearer, expires_in: 3600, issued_token_type}) and
 *       coreshare.py (the password grant with client id and secret; a 401 answered by asking
 *       for a new token once)
 *   RFC 6749 §4.4, §4.3, §6 (refresh) and §5.2 (error bodies {"error", "error_description"})
 * Tokens live `lifetimeMs` (default an hour); the password grant also gives a refresh token
 * (an inference: OTDS issues one where the client allows refresh tokens).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readBody, sendJson } from './loopback.js';

export class OtdsIssuer {
  private readonly clients = new Map<string, string>();
  private readonly users = new Map<string, string>();
  private readonly access = new Map<string, { subject: string; expires: number }>();
  private readonly refresh = new Map<string, string>();
  /** Tokens issued so far, by grant. */
  readonly issued: string[] = [];

  constructor(private readonly lifetimeMs = 3600_000) {}

  /** An OAuth client (a tenant's confidential client). */
  addClient(id: string, secret: string): void {
    this.clients.set(id, secret);
  }

  /** A user the password grant accepts. */
  addUser(name: string, password: string): void {
    this.users.set(name, password);
  }

  /** A token issued outside the endpoint (a token the user pasted), living `lifetimeMs`. */
  addToken(token: string, lifetimeMs = this.lifetimeMs): void {
    this.access.set(token, { subject: 'pasted', expires: Date.now() + lifetimeMs });
  }

  /** Who a live token acts for, or undefined. */
  subject(token: string): string | undefined {
    const held = this.access.get(token);
    return held && held.expires > Date.now() ? held.subject : undefined;
  }

  /** Every access token issued so far expires now. */
  expireAll(): void {
    for (const token of this.access.values()) token.expires = 0;
  }

  /** POST /otdsws/oauth2/token. */
  async token(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const form = new URLSearchParams((await readBody(req)).toString('utf8'));
    const fail = (status: number, error: string, description: string) =>
      sendJson(res, status, { error, error_description: description });
    const clientId = form.get('client_id') ?? '';
    if (!this.clients.has(clientId) || this.clients.get(clientId) !== form.get('client_secret')) {
      return fail(401, 'invalid_client', 'Client authentication failed');
    }
    const grant = form.get('grant_type');
    let subject: string;
    let withRefresh = false;
    if (grant === 'client_credentials') subject = `client:${clientId}`;
    else if (grant === 'password') {
      const name = form.get('username') ?? '';
      if (!this.users.has(name) || this.users.get(name) !== form.get('password')) {
        return fail(400, 'invalid_grant', 'Invalid username or password');
      }
      subject = name;
      withRefresh = true;
    } else if (grant === 'refresh_token') {
      const held = this.refresh.get(form.get('refresh_token') ?? '');
      if (!held) return fail(400, 'invalid_grant', 'Invalid refresh token');
      this.refresh.delete(form.get('refresh_token') ?? '');
      subject = held;
      withRefresh = true;
    } else return fail(400, 'unsupported_grant_type', `Unsupported grant type: ${grant}`);
    const accessToken = `otds-${randomBytes(24).toString('base64url')}`;
    this.access.set(accessToken, { subject, expires: Date.now() + this.lifetimeMs });
    this.issued.push(grant);
    const refreshToken = withRefresh
      ? `otds-r-${randomBytes(24).toString('base64url')}`
      : undefined;
    if (refreshToken) this.refresh.set(refreshToken, subject);
    sendJson(res, 200, {
      access_token: accessToken,
      issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
      token_type: 'Bearer',
      expires_in: Math.round(this.lifetimeMs / 1000),
      ...(refreshToken ? { refresh_token: refreshToken } : {}),
    });
  }
}
