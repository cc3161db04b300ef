import { randomBytes } from 'node:crypto';
import { iinCheckDigit } from '../../src/patients';

/** The gateway's HTTP API as the benchmarks use it. */

export interface CreatedSession {
  sessionId: string;
  wsUrl: string;
  token: string;
  protocols: string[];
}

/**
 * A refusal's `retryAfterMs`: when the gateway said when to come back (503 or 429 with `retryAfterMs` in the body, else
 * its Retry-After header in seconds).
 */
export type SessionAnswer =
  | { ok: true; session: CreatedSession }
  | { ok: false; status: number; code: string; retryAfterMs?: number };

export async function createSession(base: string, apiKey: string, iin: string): Promise<SessionAnswer> {
  const res = await fetch(`${base}/sessions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ iin, appointmentId: `bench-${randomBytes(4).toString('hex')}`, channel: 'in_person' }),
  });
  const body = (await res.json().catch(() => null)) as
    | (CreatedSession & { error?: { code?: string; retryAfterMs?: unknown } })
    | null;
  if (res.status === 201 && body?.token) return { ok: true, session: body };
  const code = body?.error?.code ?? `http_${res.status}`;
  if (res.status !== 503 && res.status !== 429) return { ok: false, status: res.status, code };
  const ms = body?.error?.retryAfterMs;
  const retryAfter = res.headers.get('retry-after');
  const header = retryAfter === null || retryAfter.trim() === '' ? NaN : Number(retryAfter);
  const retryAfterMs =
    typeof ms === 'number' && Number.isFinite(ms) && ms >= 0
      ? ms
      : Number.isFinite(header) && header >= 0
        ? header * 1000
        : undefined;
  return { ok: false, status: res.status, code, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) };
}

export async function enroll(base: string, apiKey: string, iin: string, jpeg: Buffer): Promise<void> {
  const res = await fetch(`${base}/patients/${iin}/template`, {
    method: 'POST',
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'image/jpeg' },
    body: jpeg,
  });
  if (res.status !== 201) throw new Error(`Enrollment answered ${res.status}: ${await res.text()}`);
}

/** Valid IINs of made-up patients born on 1 March 1980: serial numbers from `first` on. */
export function benchIins(count: number, first = 1000): string[] {
  const out: string[] = [];
  for (let serial = first; out.length < count; serial++) {
    const head = `8003013${String(serial % 10000).padStart(4, '0')}`;
    const check = iinCheckDigit(head);
    if (check !== null) out.push(head + String(check));
  }
  return out;
}
