import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import {
  IMAGE_FIELD,
  MAX_IMAGE_BYTES,
  multipartOptions,
  readImageBody,
  WipingGather,
  WipingMemoryStorage,
} from './upload';

// multer has no types here; this is the middleware the enrollment route runs (FilesInterceptor wraps it).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const multer = require('multer') as (options: object) => {
  array(field: string, max: number): (req: unknown, res: unknown, next: (err?: unknown) => void) => void;
};

/** Photo-like bytes with no zero among them, so "wiped" can be read off every byte. */
function photo(n: number): Buffer {
  const b = randomBytes(n);
  for (let i = 0; i < b.length; i++) if (b[i] === 0) b[i] = 1;
  return b;
}

/** The body in chunks of `size` bytes, each a Buffer of its own (as the HTTP parser hands them out). */
function chunks(body: Buffer, size: number): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < body.length; at += size) out.push(Buffer.from(body.subarray(at, at + size)));
  return out;
}

/** A request: its headers, then the chunks written one by one (each after the previous was read). */
function request(headers: Record<string, string>, parts: Buffer[], options: { abort?: boolean } = {}): IncomingMessage {
  const req = new PassThrough() as PassThrough & { headers: Record<string, string> };
  req.headers = headers;
  void (async () => {
    for (const c of parts) {
      if (!req.write(c)) await new Promise((r) => req.once('drain', r));
      await new Promise((r) => setImmediate(r));
    }
    if (options.abort) req.destroy();
    else req.end();
  })();
  return req as unknown as IncomingMessage;
}

const allZero = (b: Buffer) => b.every((v) => v === 0);

/** Every Buffer.alloc the code under test makes, to check that the ones it let go were wiped. */
function trackAllocs(): { buffers: Buffer[]; restore: () => void } {
  const buffers: Buffer[] = [];
  const original = Buffer.alloc;
  const spy = jest.spyOn(Buffer, 'alloc').mockImplementation(((size: number, ...rest: unknown[]) => {
    const b = (original as (...a: unknown[]) => Buffer).call(Buffer, size, ...rest);
    buffers.push(b);
    return b;
  }) as typeof Buffer.alloc);
  return { buffers, restore: () => spy.mockRestore() };
}

describe('readImageBody', () => {
  it('with a Content-Length: one buffer of that size, each chunk wiped once copied', async () => {
    const jpeg = photo(200_000);
    const parts = chunks(jpeg, 65_536);
    const allocs = trackAllocs();
    try {
      const body = await readImageBody(request({ 'content-length': String(jpeg.length) }, parts));
      expect(body!.equals(jpeg)).toBe(true);
      expect(allocs.buffers.map((b) => b.length)).toEqual([jpeg.length]); // allocated once
      expect(allocs.buffers[0]).toBe(body);
    } finally {
      allocs.restore();
    }
    expect(parts.every(allZero)).toBe(true);
  });

  it('chunked: grows by copying, and every outgrown buffer is wiped', async () => {
    const jpeg = photo(300_000);
    const parts = chunks(jpeg, 16_384);
    const allocs = trackAllocs();
    let body: Buffer | null;
    try {
      body = await readImageBody(request({ 'transfer-encoding': 'chunked' }, parts));
    } finally {
      allocs.restore();
    }
    expect(body!.equals(jpeg)).toBe(true);
    expect(parts.every(allZero)).toBe(true);
    expect(allocs.buffers.length).toBeGreaterThan(2); // it did grow
    for (const b of allocs.buffers) if (b !== body) expect(allZero(b)).toBe(true);
  });

  it('over the limit by its Content-Length: 413 payload_too_large, the body read off and wiped, nothing kept', async () => {
    const parts = chunks(photo(MAX_IMAGE_BYTES + 1), 262_144);
    const allocs = trackAllocs();
    try {
      await expect(
        readImageBody(request({ 'content-length': String(MAX_IMAGE_BYTES + 1) }, parts)),
      ).rejects.toMatchObject({
        code: 'payload_too_large',
      });
      expect(allocs.buffers).toEqual([]);
    } finally {
      allocs.restore();
    }
    expect(parts.every(allZero)).toBe(true);
  });

  it('chunked over the limit: 413 once the rest is read off; what was gathered, and the rest, are wiped', async () => {
    const limit = 100_000;
    const parts = chunks(photo(150_000), 8192);
    const allocs = trackAllocs();
    try {
      await expect(readImageBody(request({ 'transfer-encoding': 'chunked' }, parts), limit)).rejects.toMatchObject({
        code: 'payload_too_large',
      });
      expect(allocs.buffers.every(allZero)).toBe(true);
    } finally {
      allocs.restore();
    }
    expect(parts.every(allZero)).toBe(true);
  });

  it('exactly at the limit is fine', async () => {
    const jpeg = photo(50_000);
    const body = await readImageBody(request({ 'transfer-encoding': 'chunked' }, chunks(jpeg, 7000)), 50_000);
    expect(body!.equals(jpeg)).toBe(true);
  });

  it('refuses a compressed body (415) and a short one (400), wiping what came', async () => {
    const parts = chunks(photo(20_000), 4096);
    await expect(
      readImageBody(request({ 'content-length': '20000', 'content-encoding': 'gzip' }, parts)),
    ).rejects.toMatchObject({ code: 'unsupported_media_type' });
    expect(parts.every(allZero)).toBe(true);

    const short = chunks(photo(20_000), 4096);
    const allocs = trackAllocs();
    try {
      await expect(readImageBody(request({ 'content-length': '30000' }, short))).rejects.toMatchObject({
        code: 'invalid_request',
      });
      expect(allocs.buffers.every(allZero)).toBe(true);
    } finally {
      allocs.restore();
    }
    expect(short.every(allZero)).toBe(true);
  });

  it('an aborted request: 400, and what was gathered is wiped', async () => {
    const parts = chunks(photo(40_000), 4096);
    const allocs = trackAllocs();
    try {
      await expect(readImageBody(request({ 'content-length': '80000' }, parts, { abort: true }))).rejects.toMatchObject(
        { code: 'invalid_request' },
      );
      expect(allocs.buffers.every(allZero)).toBe(true);
    } finally {
      allocs.restore();
    }
    expect(parts.every(allZero)).toBe(true);
  });

  it('no body: null; an empty one: an empty Buffer (the service refuses it as empty)', async () => {
    await expect(readImageBody(request({}, []))).resolves.toBeNull();
    const empty = await readImageBody(request({ 'content-length': '0' }, []));
    expect(Buffer.isBuffer(empty) && empty.length).toBe(0);
  });
});

describe('WipingGather', () => {
  it('hands over a buffer of exactly the bytes, wiping the bigger one it worked in', () => {
    const g = new WipingGather(10);
    g.append(Buffer.from('abcdefgh'));
    g.append(Buffer.from('ijkl')); // grows to 16
    const allocs = trackAllocs();
    let out: Buffer;
    try {
      out = g.take();
    } finally {
      allocs.restore();
    }
    expect(out.toString()).toBe('abcdefghijkl');
    expect(allocs.buffers).toEqual([out]);
  });
});

/** A multipart body of the given files (field name, bytes), and where each file's bytes sit in it. */
function multipart(files: Array<[string, Buffer]>): { body: Buffer; boundary: string; at: Array<[number, number]> } {
  const boundary = `----faceid${randomBytes(8).toString('hex')}`;
  const parts: Buffer[] = [];
  const at: Array<[number, number]> = [];
  let length = 0;
  const add = (b: Buffer) => {
    parts.push(b);
    length += b.length;
  };
  for (const [field, bytes] of files) {
    add(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="p.jpg"\r\nContent-Type: image/jpeg\r\n\r\n`,
      ),
    );
    at.push([length, length + bytes.length]);
    add(bytes);
    add(Buffer.from('\r\n'));
  }
  add(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(parts), boundary, at };
}

/** Runs the enrollment route's multer over a request; resolves with its error (or null) and the files it kept. */
async function runMulter(files: Array<[string, Buffer]>, chunkSize: number) {
  const { body, boundary, at } = multipart(files);
  const parts = chunks(body, chunkSize);
  const req = request(
    { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': String(body.length) },
    parts,
  ) as IncomingMessage & { files?: Array<{ buffer: Buffer }> };
  const err = await new Promise<unknown>((resolve) =>
    multer(multipartOptions(5)).array(IMAGE_FIELD, 5)(req, {}, (e) => resolve(e ?? null)),
  );
  // The request's bytes as they are now, chunk by chunk joined: what is left where each file's bytes were.
  // Except one kind of byte: when a chunk ends in bytes that could begin the delimiter ("\r\n--" + boundary), busboy's
  // boundary search copies them aside until the next chunk tells, then passes that copy on (wiped by the storage).
  // The originals are left, but they are the delimiter's own first bytes, fixed by the boundary: no photo content.
  const now = Buffer.concat(parts);
  const delimiter = Buffer.from(`\r\n--${boundary}`);
  const heldBack = new Set<number>();
  let end = 0;
  for (const c of parts) {
    end += c.length;
    for (let k = Math.min(delimiter.length - 1, c.length); k > 0; k--) {
      if (now.subarray(end - k, end).equals(delimiter.subarray(0, k))) {
        for (let i = end - k; i < end; i++) heldBack.add(i);
        break;
      }
    }
  }
  const leftovers = at.map(([from, to]) => {
    let n = 0;
    for (let i = from; i < to; i++) if (now[i] !== 0 && !heldBack.has(i)) n++;
    return n;
  });
  return { err, files: req.files ?? [], leftovers, heldBack: heldBack.size };
}

describe("multipart: the enrollment route's multer with WipingMemoryStorage and pipeWipingLeftovers", () => {
  it("keeps each photo in a buffer of its own and wipes every byte of it from the request's chunks", async () => {
    const a = photo(150_000);
    const b = photo(90_000);
    const r = await runMulter(
      [
        [IMAGE_FIELD, a],
        [IMAGE_FIELD, b],
      ],
      65_536,
    );
    expect(r.err).toBeNull();
    expect(r.files.map((f) => f.buffer.equals(a) || f.buffer.equals(b))).toEqual([true, true]);
    expect(r.files[0].buffer.equals(a)).toBe(true);
    expect(r.leftovers).toEqual([0, 0]);
  });

  it("a photo over MAX_IMAGE_BYTES: LIMIT_FILE_SIZE, and none of it is left in the request's chunks", async () => {
    const big = photo(MAX_IMAGE_BYTES + 300_000);
    const r = await runMulter([[IMAGE_FIELD, big]], 65_536);
    expect(r.err).toMatchObject({ code: 'LIMIT_FILE_SIZE' });
    expect(r.files).toEqual([]);
    expect(r.leftovers).toEqual([0]);
  });

  it('a refused field name, and the photo after it: none of either is left', async () => {
    const r = await runMulter(
      [
        ['photo', photo(120_000)],
        [IMAGE_FIELD, photo(80_000)],
      ],
      16_384,
    );
    expect(r.err).toMatchObject({ code: 'LIMIT_UNEXPECTED_FILE' });
    expect(r.leftovers).toEqual([0, 0]);
  });

  it.each([16_384, 65_536])(
    'a lone photo under a refused field name (chunks of %i bytes): none of it is left',
    async (size) => {
      const r = await runMulter([['photo', photo(130_000)]], size);
      expect(r.err).toMatchObject({ code: 'LIMIT_UNEXPECTED_FILE' });
      expect(r.leftovers).toEqual([0]);
    },
  );

  it('too many photos: LIMIT_FILE_COUNT (or the parts limit), and none is left', async () => {
    const six = Array.from({ length: 6 }, () => [IMAGE_FIELD, photo(30_000)] as [string, Buffer]);
    const r = await runMulter(six, 32_768);
    expect(['LIMIT_FILE_COUNT', 'LIMIT_PART_COUNT']).toContain((r.err as { code?: string }).code);
    expect(r.leftovers).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('the storage on its own: wipes each chunk after copying; a file over the limit is wiped and failed', async () => {
    const storage = new WipingMemoryStorage();
    const stream = new PassThrough();
    const parts = chunks(photo(10_000), 1000);
    const done = new Promise<{ err: Error | null; info?: { buffer?: Buffer } }>((resolve) =>
      storage._handleFile(null, { stream }, (err, info) => resolve({ err, info })),
    );
    const joined = Buffer.concat(parts);
    for (const c of parts) stream.write(c);
    stream.end();
    const { err, info } = await done;
    expect(err).toBeNull();
    expect(info!.buffer!.equals(joined)).toBe(true);
    expect(parts.every(allZero)).toBe(true);
    const kept = info!.buffer!;
    await new Promise<void>((resolve) => storage._removeFile(null, info!, () => resolve()));
    expect(allZero(kept)).toBe(true); // a file multer drops is zeroed, not just forgotten

    const over = new PassThrough();
    const failed = new Promise<Error | null>((resolve) =>
      storage._handleFile(null, { stream: over }, (e) => resolve(e)),
    );
    over.write(Buffer.from(photo(500)));
    over.emit('limit');
    expect(await failed).toBeInstanceOf(Error);
  });
});
