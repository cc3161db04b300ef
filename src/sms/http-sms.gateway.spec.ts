import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Logger } from '@nestjs/common';
import { loadConfig } from '../config';
import { HttpSmsGateway } from './http-sms.gateway';
import { SmsError } from './sms-gateway';
import { smsGatewayFromConfig } from './sms.module';

// The HTTP adapter against a real local server that plays the e-government gateway.

interface Received {
  authorization: string | undefined;
  contentType: string | undefined;
  body: unknown;
}

/** A server that answers the n-th request (from 0) with `answer(n)`: a status, or 'hang' (never answers). */
async function gateway(answer: (n: number) => number | 'hang') {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const n = received.length;
      received.push({
        authorization: req.headers.authorization,
        contentType: req.headers['content-type'],
        body: JSON.parse(Buffer.concat(chunks).toString('utf8')),
      });
      const a = answer(n);
      if (a === 'hang') return;
      res.writeHead(a, { 'content-type': 'application/json' }).end(JSON.stringify({ detail: 'from the gateway' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/sms`;
  const close = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
  return { url, received, close };
}

const message = {
  iin: '900101300027',
  text: 'Your faceid code: 482913. It expires in 5 minutes.',
  reference: 'sess-1',
};
const options = { token: 'egov-token', timeoutMs: 500, retries: 2, backoffBaseMs: 20 };

async function failure(p: Promise<unknown>): Promise<SmsError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(SmsError);
  const e = err as SmsError;
  expect(e.code).toBe('sms_unavailable');
  // Never the text (it holds the code) nor the IIN.
  expect(e.message).not.toContain('482913');
  expect(e.message).not.toContain(message.iin);
  return e;
}

describe('HttpSmsGateway (real local HTTP server)', () => {
  beforeAll(() => Logger.overrideLogger(false));

  it('posts JSON with the bearer token, and retries a 500 until the 200', async () => {
    const g = await gateway((n) => (n === 0 ? 500 : 200));
    try {
      await new HttpSmsGateway({ url: g.url, ...options }).send(message);
      expect(g.received).toHaveLength(2);
      for (const r of g.received) {
        expect(r).toEqual({ authorization: 'Bearer egov-token', contentType: 'application/json', body: message });
      }
    } finally {
      await g.close();
    }
  });

  it('gives up after the retries with the last status in the message', async () => {
    const g = await gateway(() => 503);
    try {
      const e = await failure(new HttpSmsGateway({ url: g.url, ...options }).send(message));
      expect(e.message).toMatch(/HTTP 503 \(3 attempts\)/);
      expect(e.reason).toBe('server_error');
      expect(g.received).toHaveLength(3);
    } finally {
      await g.close();
    }
  });

  it('times out a gateway that never answers, and retries it', async () => {
    const g = await gateway(() => 'hang');
    try {
      const started = Date.now();
      const e = await failure(new HttpSmsGateway({ url: g.url, ...options, timeoutMs: 300, retries: 1 }).send(message));
      expect(e.message).toMatch(/timed out after 300 ms \(2 attempts\)/);
      expect(e.reason).toBe('timeout');
      expect(g.received).toHaveLength(2);
      expect(Date.now() - started).toBeGreaterThanOrEqual(600);
    } finally {
      await g.close();
    }
  });

  it('does not retry a 4xx', async () => {
    const g = await gateway(() => 400);
    try {
      const e = await failure(new HttpSmsGateway({ url: g.url, ...options }).send(message));
      expect(e.message).toMatch(/HTTP 400\.$/);
      expect(e.reason).toBe('rejected');
      expect(g.received).toHaveLength(1);
    } finally {
      await g.close();
    }
  });

  it('retries a refused connection and says so', async () => {
    const g = await gateway(() => 200);
    await g.close(); // nothing listens on that port any more
    const e = await failure(new HttpSmsGateway({ url: g.url, ...options, retries: 1 }).send(message));
    expect(e.message).toMatch(/connection failed.*\(2 attempts\)/);
    expect(e.reason).toBe('connection');
  });

  it('refuses to start with SMS_ADAPTER=http and no SMS_HTTP_URL', () => {
    expect(() => smsGatewayFromConfig(loadConfig({ SMS_ADAPTER: 'http' }))).toThrow(
      /SMS_HTTP_URL.*required when SMS_ADAPTER=http/,
    );
    expect(
      smsGatewayFromConfig(loadConfig({ SMS_ADAPTER: 'http', SMS_HTTP_URL: 'http://127.0.0.1:1/sms' })),
    ).toBeInstanceOf(HttpSmsGateway);
  });
});
