/** Upgrade-time checks shared by both adapters: subprotocol, token and Origin. Pure functions, unit-tested. */
import { SUBPROTOCOL, TOKEN_SUBPROTOCOL_PREFIX } from './protocol';

/** Splits a Sec-WebSocket-Protocol header (`a, b, c`) into its entries. */
export function parseSubprotocols(header: string | null | undefined): string[] {
  if (!header) return [];
  return header
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
}

/** The subprotocol to answer with: `faceid.v1` when offered, else none (clients that offered none expect none). */
export function selectSubprotocol(offered: readonly string[]): string | null {
  return offered.includes(SUBPROTOCOL) ? SUBPROTOCOL : null;
}

/**
 * The session token: from a `token.<token>` subprotocol (browsers: keeps it out of URLs and access logs), else from
 * the `token` query parameter (non-browser tools). Null when neither is present or the value is empty.
 */
export function extractToken(offered: readonly string[], query: string | null | undefined): string | null {
  const fromProtocol = offered.find((p) => p.startsWith(TOKEN_SUBPROTOCOL_PREFIX));
  if (fromProtocol !== undefined) return fromProtocol.slice(TOKEN_SUBPROTOCOL_PREFIX.length) || null;
  if (!query) return null;
  return new URLSearchParams(query).get('token') || null;
}

/** The path and raw query of a request target (`/ws/identify?token=x`). */
export function splitUrl(url: string): { path: string; query: string } {
  const q = url.indexOf('?');
  return q < 0 ? { path: url, query: '' } : { path: url.slice(0, q), query: url.slice(q + 1) };
}

export interface OriginPolicy {
  /** WS_ALLOWED_ORIGINS: normalised origins, `self`, `*`. */
  allowed: readonly string[];
  /** The HTTP server's port (read per request: with PORT=0 it is known only once listening). With uWS on its own
   * port, the page comes from this one. */
  httpPort: () => number | null;
}

/**
 * Whether a browser page at `origin` may open a session. Browsers always send Origin on WebSocket upgrades and a
 * page cannot forge it, so this stops other sites' pages from driving a session (cross-site WebSocket hijacking).
 * No Origin = not a browser: allowed (those clients can send any header anyway; the token is the real gate).
 */
export function isOriginAllowed(
  origin: string | null | undefined,
  host: string | null | undefined,
  policy: OriginPolicy,
): boolean {
  if (!origin) return true;
  if (policy.allowed.includes('*')) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false; // includes the literal "null" origin of sandboxed frames and file:// pages
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return false;
  const normalised = `${url.protocol}//${url.host}`; // URL lower-cases the host and drops default ports
  if (policy.allowed.includes(normalised)) return true;
  if (policy.allowed.includes('self') && host) return isSameHost(url, host.toLowerCase(), policy.httpPort());
  return false;
}

/** Origin's host equals the Host the request was sent to, or the same host name on the HTTP server's port. */
function isSameHost(origin: URL, host: string, httpPort: number | null): boolean {
  if (origin.host === host) return true;
  // Host carries the port only when it is not the default; compare as host name + effective port.
  let target: URL;
  try {
    target = new URL(`${origin.protocol}//${host}`);
  } catch {
    return false;
  }
  if (origin.hostname !== target.hostname || httpPort === null) return false;
  const port = origin.port || (origin.protocol === 'https:' ? '443' : '80');
  return port === String(httpPort);
}
