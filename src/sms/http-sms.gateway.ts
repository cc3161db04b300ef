import { Logger } from '@nestjs/common';
import { SmsError, type SmsFailureReason, type SmsGateway, type SmsMessage } from './sms-gateway';

export interface HttpSmsOptions {
  url: string;
  /** Sent as `Authorization: Bearer <token>` when set. */
  token?: string;
  /** Of one call, response headers included. */
  timeoutMs: number;
  /** Further calls after a failure that may pass on a retry (network error, timeout, 5xx). */
  retries: number;
  /** First backoff delay; it doubles per retry, with jitter (default 250 ms). */
  backoffBaseMs?: number;
  /** Longest backoff delay (default 4000 ms). */
  backoffMaxMs?: number;
}

type Attempt = { ok: true } | { ok: false; retry: boolean; reason: string; kind: SmsFailureReason };

/**
 * Posts `{iin, text, reference}` as JSON to the e-government SMS gateway. Network errors, timeouts and 5xx are
 * retried with exponential backoff and jitter; a 4xx is final (the request itself is wrong, a retry cannot help).
 * The response body is never read: nothing the gateway says reaches our logs or errors.
 */
export class HttpSmsGateway implements SmsGateway {
  private readonly log = new Logger('Sms');
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;

  constructor(private readonly options: HttpSmsOptions) {
    this.backoffBaseMs = options.backoffBaseMs ?? 250;
    this.backoffMaxMs = options.backoffMaxMs ?? 4000;
  }

  async send(message: SmsMessage): Promise<void> {
    const body = JSON.stringify({ iin: message.iin, text: message.text, reference: message.reference });
    for (let attempt = 0; ; attempt++) {
      const outcome = await this.call(body);
      if (outcome.ok) return;
      const calls = attempt + 1;
      if (!outcome.retry || attempt >= this.options.retries) {
        throw new SmsError(
          `The SMS gateway did not take the message: ${outcome.reason}` + (calls > 1 ? ` (${calls} attempts).` : '.'),
          outcome.kind,
        );
      }
      const delay = this.backoff(attempt);
      this.log.warn(
        `SMS gateway call ${calls} for ${message.reference} failed (${outcome.reason}); retry in ${delay} ms`,
      );
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }

  private async call(body: string): Promise<Attempt> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.options.token) headers.authorization = `Bearer ${this.options.token}`;
    let res: Response;
    try {
      res = await fetch(this.options.url, {
        method: 'POST',
        headers,
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(this.options.timeoutMs),
      });
    } catch (err) {
      const e = err as Error & { cause?: { code?: unknown } };
      if (e.name === 'TimeoutError' || e.name === 'AbortError') {
        return { ok: false, retry: true, reason: `timed out after ${this.options.timeoutMs} ms`, kind: 'timeout' };
      }
      // The cause's code (ECONNREFUSED, ENOTFOUND...) says enough; error messages may quote the URL.
      const code = typeof e.cause?.code === 'string' ? ` (${e.cause.code})` : '';
      return { ok: false, retry: true, reason: `the connection failed${code}`, kind: 'connection' };
    }
    await res.body?.cancel().catch(() => undefined);
    if (res.status >= 200 && res.status < 300) return { ok: true };
    const kind = res.status >= 500 ? 'server_error' : res.status >= 400 ? 'rejected' : 'other'; // 3xx: not followed
    return { ok: false, retry: res.status >= 500, reason: `HTTP ${res.status}`, kind };
  }

  /** Exponential, with "equal jitter": half the delay fixed, half random, so retries of many calls spread out. */
  private backoff(attempt: number): number {
    const cap = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** attempt);
    return Math.round(cap / 2 + Math.random() * (cap / 2));
  }
}
