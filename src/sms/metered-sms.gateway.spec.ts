import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Logger, type LoggerService } from '@nestjs/common';
import { MetricsService } from '../metrics/metrics.service';
import { DevSmsOutbox } from './dev-sms.outbox';
import { HttpSmsGateway } from './http-sms.gateway';
import { MeteredSmsGateway, smsAdapterOf } from './metered-sms.gateway';
import { SmsError, type SmsGateway } from './sms-gateway';
import { smsText } from './texts';

// Failures of the SMS adapter counted on /metrics by purpose and reason, against a real local HTTP server playing the
// e-government gateway; the message (IIN, text, code, reference) reaches neither the metrics nor the logs.

const code = '731905';
const iin = '900101300027';
const text = smsText('identification', { code, clinicName: 'Городская поликлиника №5' });

/** A server whose path decides the answer: /ok 200, /reject 400, /down 503, /hang never answers. */
async function gatewayServer() {
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.url === '/hang') return;
      res.writeHead(req.url === '/ok' ? 200 : req.url === '/reject' ? 400 : 503).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    base,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The value of one sample of the exposition, e.g. `faceid_sms_failures_total{purpose="enrollment",reason="timeout"}`. */
async function sample(metrics: MetricsService, series: string): Promise<number> {
  const line = (await metrics.registry.metrics()).split('\n').find((l) => l.startsWith(`${series} `));
  if (!line) throw new Error(`no sample ${series}`);
  return Number(line.slice(series.length + 1));
}

const failures = (purpose: string, reason: string) =>
  `faceid_sms_failures_total{purpose="${purpose}",reason="${reason}"}`;

describe('MeteredSmsGateway', () => {
  const lines: string[] = [];
  const capture: LoggerService = {
    log: (m: unknown) => void lines.push(String(m)),
    error: (m: unknown) => void lines.push(String(m)),
    warn: (m: unknown) => void lines.push(String(m)),
    debug: (m: unknown) => void lines.push(String(m)),
    verbose: (m: unknown) => void lines.push(String(m)),
    fatal: (m: unknown) => void lines.push(String(m)),
  };
  let server: Awaited<ReturnType<typeof gatewayServer>>;
  beforeAll(async () => {
    Logger.overrideLogger(capture);
    server = await gatewayServer();
  });
  afterAll(async () => {
    Logger.overrideLogger(false);
    await server?.close();
  });

  const metered = (path: string, metrics: MetricsService, retries = 1) =>
    new MeteredSmsGateway(
      new HttpSmsGateway({ url: `${server.base}${path}`, timeoutMs: 300, retries, backoffBaseMs: 5, backoffMaxMs: 10 }),
      metrics,
    );

  it('counts each failed message once, by purpose and reason, and passes the failure on unchanged', async () => {
    const metrics = new MetricsService();
    // Zeros from the start, so dashboards see the series.
    expect(await sample(metrics, failures('identification', 'timeout'))).toBe(0);
    expect(await sample(metrics, failures('enrollment', 'other'))).toBe(0);

    await metered('/ok', metrics).send({ iin, text, reference: 'sess-ok' });
    const down = await metered('/down', metrics)
      .send({ iin, text, reference: 'sess-down' })
      .catch((e: unknown) => e);
    expect(down).toBeInstanceOf(SmsError);
    expect((down as SmsError).message).toMatch(/HTTP 503 \(2 attempts\)/); // retried inside, counted once
    await expect(
      metered('/reject', metrics).send({ iin, text, reference: 'p-1', purpose: 'enrollment' }),
    ).rejects.toThrow(/HTTP 400/);
    await expect(
      metered('/hang', metrics, 0).send({ iin, text, reference: 'p-2', purpose: 'enrollment' }),
    ).rejects.toThrow(/timed out/);
    const closed = await gatewayServer();
    await closed.close(); // nothing listens there any more
    const refused = new MeteredSmsGateway(
      new HttpSmsGateway({ url: `${closed.base}/ok`, timeoutMs: 300, retries: 0 }),
      metrics,
    );
    await expect(refused.send({ iin, text, reference: 'sess-refused' })).rejects.toThrow(/connection failed/);
    // A failure that is not the adapter's typed error counts as `other` and is passed on as it is.
    const broken: SmsGateway = { send: () => Promise.reject(new TypeError('bug')) };
    await expect(new MeteredSmsGateway(broken, metrics).send({ iin, text, reference: 'x' })).rejects.toBeInstanceOf(
      TypeError,
    );

    expect(await sample(metrics, failures('identification', 'server_error'))).toBe(1);
    expect(await sample(metrics, failures('identification', 'connection'))).toBe(1);
    expect(await sample(metrics, failures('identification', 'other'))).toBe(1);
    expect(await sample(metrics, failures('identification', 'timeout'))).toBe(0);
    expect(await sample(metrics, failures('enrollment', 'rejected'))).toBe(1);
    expect(await sample(metrics, failures('enrollment', 'timeout'))).toBe(1);
    expect(await sample(metrics, failures('enrollment', 'server_error'))).toBe(0);

    // Nothing of the messages on /metrics or in the logs (the retry warning names the reference only).
    const exposition = await metrics.registry.metrics();
    const logged = lines.join('\n');
    expect(logged).toContain('sess-down');
    for (const secret of [code, iin, 'поликлиника']) {
      expect(exposition).not.toContain(secret);
      expect(logged).not.toContain(secret);
    }
    for (const reference of ['sess-ok', 'sess-down', 'p-1', 'p-2']) expect(exposition).not.toContain(reference);
  });

  it('unwraps to the adapter (the development outbox stays readable)', () => {
    const outbox = new DevSmsOutbox();
    expect(smsAdapterOf(new MeteredSmsGateway(outbox, new MetricsService()))).toBe(outbox);
    expect(smsAdapterOf(outbox)).toBe(outbox);
  });
});
