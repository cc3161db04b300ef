import * as http from 'node:http';
import * as https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import type { DestinationPolicy, DestinationRefusal } from './destination';
import type { HostResolver, ResolvedAddress } from './host-resolver';

/** What one POST came to: the receiver's status, a refused destination, or a network failure. */
export type SendResult =
  | { kind: 'response'; status: number }
  | { kind: 'refused'; refusal: DestinationRefusal }
  /** `detail` is for the operator's log only (an error code such as ECONNREFUSED): never shown to the MIS. */
  | { kind: 'failed'; detail: string };

/** The error code of a network failure (for logs), from the error or its causes. */
export function networkDetail(err: unknown): string {
  let e = err as { code?: unknown; cause?: unknown } | undefined;
  for (let depth = 0; e && depth < 4; depth++) {
    if (typeof e.code === 'string' && /^[A-Z0-9_]{2,64}$/.test(e.code)) return e.code;
    e = e.cause as typeof e;
  }
  return 'network_error';
}

/** Resolves to the promise's value, or rejects as soon as `signal` aborts (the lookup itself cannot be cancelled). */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

/** A lookup that answers only the address already checked, so the connection cannot go anywhere else. */
function pinnedLookup(pinned: ResolvedAddress): LookupFunction {
  return (_hostname, options, callback) => {
    if ((options as { all?: boolean }).all) (callback as (e: null, a: ResolvedAddress[]) => void)(null, [pinned]);
    else callback(null, pinned.address, pinned.family);
  };
}

/**
 * POSTs `body` to `url`, never reading the response body and never following redirects. The host is checked
 * against the destination policy first: an address in the URL directly; a name is resolved once, every address is
 * checked, and the connection goes to the first of them (a pinned lookup), so DNS cannot swap the address between
 * the check and the connection. TLS still verifies the certificate against the name. Rejects only when `signal`
 * aborts (with its reason).
 */
export async function sendWebhook(
  url: URL,
  request: { headers: Record<string, string>; body: string },
  deps: { policy: DestinationPolicy; resolver: Pick<HostResolver, 'lookup'> },
  signal: AbortSignal,
): Promise<SendResult> {
  const hostRefusal = deps.policy.checkHost(url.hostname);
  if (hostRefusal) return { kind: 'refused', refusal: hostRefusal };
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  let pinned: ResolvedAddress;
  const family = isIP(host);
  if (family !== 0) {
    pinned = { address: host, family: family as 4 | 6 };
  } else {
    let addresses: ResolvedAddress[];
    try {
      addresses = await abortable(deps.resolver.lookup(host), signal);
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      return { kind: 'failed', detail: `dns:${networkDetail(err)}` };
    }
    const refusal = deps.policy.checkResolved(
      host,
      addresses.map((a) => a.address),
    );
    if (refusal) return { kind: 'refused', refusal };
    pinned = addresses[0];
  }
  const body = Buffer.from(request.body, 'utf8');
  return new Promise<SendResult>((resolve, reject) => {
    const options: https.RequestOptions = {
      protocol: url.protocol,
      hostname: host,
      port: url.port || undefined,
      path: `${url.pathname}${url.search}`,
      method: 'POST',
      // A connection of its own per attempt, closed after it: never a pooled socket opened for another lookup.
      headers: { ...request.headers, 'content-length': String(body.length), connection: 'close' },
      lookup: pinnedLookup(pinned),
      signal,
    };
    const req = (url.protocol === 'https:' ? https : http).request(options, (res) => {
      resolve({ kind: 'response', status: res.statusCode ?? 0 });
      res.destroy(); // the body is the receiver's business: never read
    });
    req.on('error', (err) => {
      if (signal.aborted) reject(signal.reason);
      else resolve({ kind: 'failed', detail: networkDetail(err) });
    });
    req.end(body);
  });
}
