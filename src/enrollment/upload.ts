import {
  Inject,
  Injectable,
  mixin,
  Optional,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
  type Type,
} from '@nestjs/common';
import { FilesInterceptor } from '@nestjs/platform-express';
import type { IncomingMessage } from 'node:http';
import type { Readable, Writable } from 'node:stream';
import type { Request, Response } from 'express';
import type { Observable } from 'rxjs';
import { CONFIG, type Config } from '../config';
import { EngineError } from '../engine/errors';
import { inspectJpeg, PHOTO_JPEG_LIMITS, type JpegLimits } from '../engine/jpeg-structure';
import { EnrollmentError } from './errors';

export const MAX_IMAGE_BYTES = 5 * 1024 * 1024;
export const IMAGE_FIELD = 'image';

interface UploadedFile {
  buffer?: Buffer;
  size?: number;
}

interface FileStream {
  on(event: 'data', cb: (chunk: Buffer) => void): void;
  on(event: 'end', cb: () => void): void;
  on(event: 'error', cb: (err: Error) => void): void;
  on(event: 'limit', cb: () => void): void;
}

/** First size of a buffer gathering a body of unknown length; it doubles as needed. */
const INITIAL_GATHER_BYTES = 64 * 1024;

/**
 * Bytes gathered into one buffer of our own (zero-filled, never from the shared pool). Growing copies into a new
 * buffer and wipes the old one, so no outgrown copy is left behind.
 */
export class WipingGather {
  private buf: Buffer;
  private used = 0;

  constructor(expected?: number) {
    this.buf = Buffer.alloc(expected ?? INITIAL_GATHER_BYTES);
  }

  get length(): number {
    return this.used;
  }

  /** Copies the chunk in (the caller wipes its own chunk). */
  append(chunk: Buffer): void {
    const need = this.used + chunk.length;
    if (need > this.buf.length) {
      const next = Buffer.alloc(Math.max(need, this.buf.length * 2));
      this.buf.copy(next, 0, 0, this.used);
      this.buf.fill(0);
      this.buf = next;
    }
    chunk.copy(this.buf, this.used);
    this.used = need;
  }

  /** The bytes in a buffer of exactly their size: the working buffer itself when it fits, else a copy (then wiped). */
  take(): Buffer {
    if (this.used === this.buf.length) return this.buf;
    const out = Buffer.alloc(this.used);
    this.buf.copy(out, 0, 0, this.used);
    this.wipe();
    return out;
  }

  wipe(): void {
    this.buf.fill(0);
    this.used = 0;
  }
}

/**
 * multer storage in memory (never disk), like multer's own memoryStorage, except: each chunk busboy hands over is
 * copied into a buffer of our own and then zeroed (the chunks are views of the request's chunks, and busboy is done
 * with a chunk once it emits it), and a file multer drops (a later part failed a limit) is zeroed, not just
 * forgotten. A file over the size limit is wiped at once and reported failed, so multer goes on to refuse the request.
 */
export class WipingMemoryStorage {
  _handleFile(_req: unknown, file: { stream: FileStream }, cb: (err: Error | null, info?: UploadedFile) => void): void {
    const gathered = new WipingGather();
    let settled = false;
    const settle = (err: Error | null, info?: UploadedFile) => {
      if (settled) return;
      settled = true;
      cb(err, info);
    };
    file.stream.on('data', (chunk) => {
      try {
        if (!settled) gathered.append(chunk);
      } finally {
        chunk.fill(0);
      }
    });
    file.stream.on('limit', () => {
      // multer refuses the request (LIMIT_FILE_SIZE): nothing of this file is kept.
      gathered.wipe();
      settle(new Error('The file is over the size limit.'));
    });
    file.stream.on('error', (err) => {
      gathered.wipe();
      settle(err);
    });
    file.stream.on('end', () => {
      if (settled) return;
      const buffer = gathered.take();
      settle(null, { buffer, size: buffer.length });
    });
  }

  _removeFile(_req: unknown, file: UploadedFile, cb: (err: Error | null) => void): void {
    file.buffer?.fill(0);
    delete file.buffer;
    cb(null);
  }
}

/** The images of a request: the raw JPEG body, or the multipart files in order. */
export function uploadedImages(req: Request): Buffer[] {
  if (Buffer.isBuffer(req.body)) return [req.body];
  const files = (req as Request & { files?: UploadedFile[] }).files;
  return Array.isArray(files) ? files.flatMap((f) => (f.buffer ? [f.buffer] : [])) : [];
}

/** Zeroes every image buffer the request holds. */
export function wipeUploads(req: Request): void {
  for (const b of uploadedImages(req)) b.fill(0);
}

/** Reads the rest of a request off, wiping each chunk: the client gets its answer rather than a reset. */
function drainWiping(req: IncomingMessage): Promise<void> {
  return new Promise<void>((resolve) => {
    if (req.readableEnded || req.destroyed) return resolve();
    req.on('data', (chunk: Buffer) => chunk.fill(0));
    req.once('end', () => resolve());
    req.once('close', () => resolve());
    req.once('error', () => resolve());
    req.resume();
  });
}

/**
 * Reads an `image/jpeg` request body into one Buffer of our own, never a string. With a Content-Length it is
 * allocated once at that size; without one (chunked) it grows by copying, each outgrown buffer wiped (WipingGather).
 * Each chunk of the request is zeroed as soon as it is copied: Node's HTTP parser copies every chunk out of its read
 * buffer into a Buffer of its own, which would otherwise go back to the allocator with the photo in it. (The parser's
 * read buffer itself is out of reach: README, "Privacy of enrollment uploads".) Refusals read the rest off (wiping it)
 * first, as express's body parsers do: over `limit` (413 `payload_too_large`, from the Content-Length before anything
 * is read), a Content-Encoding (415 `unsupported_media_type`: photos are sent as they are), a body shorter than its
 * Content-Length or an aborted request (400 `invalid_request`). Resolves null for a request without a body.
 */
export async function readImageBody(req: IncomingMessage, limit: number = MAX_IMAGE_BYTES): Promise<Buffer | null> {
  const lengthHeader = req.headers['content-length'];
  if (req.headers['transfer-encoding'] === undefined && lengthHeader === undefined) return null;
  const tooLarge = () =>
    new EnrollmentError('payload_too_large', `The image is larger than ${limit / 1024 / 1024} MB.`);
  const encoding = (req.headers['content-encoding'] ?? 'identity').trim().toLowerCase();
  if (encoding !== 'identity') {
    await drainWiping(req);
    throw new EnrollmentError('unsupported_media_type', 'Send the JPEG as it is, without a Content-Encoding.');
  }
  // Node's parser has checked the header (digits only; a request with two different ones is refused).
  const declared = lengthHeader === undefined ? undefined : Number(lengthHeader);
  if (declared !== undefined && declared > limit) {
    await drainWiping(req);
    throw tooLarge();
  }
  const gathered = new WipingGather(declared === undefined ? Math.min(limit, INITIAL_GATHER_BYTES) : declared);
  return new Promise<Buffer>((resolve, reject) => {
    let refusal: EnrollmentError | null = null;
    let settled = false;
    const finish = (err: Error | null) => {
      if (settled) return;
      settled = true;
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onGone);
      if (err) {
        gathered.wipe();
        // Whatever still arrives is wiped too.
        if (!req.readableEnded && !req.destroyed) void drainWiping(req);
        reject(err);
        return;
      }
      resolve(gathered.take());
    };
    const onData = (chunk: Buffer) => {
      try {
        if (refusal) return; // reading off the rest: wiped below, not kept
        if (gathered.length + chunk.length > (declared ?? limit)) {
          // More than the Content-Length cannot arrive through Node's parser; over the limit without one can.
          refusal =
            declared === undefined
              ? tooLarge()
              : new EnrollmentError('invalid_request', 'The body is longer than its Content-Length.');
          gathered.wipe();
          return;
        }
        gathered.append(chunk);
      } finally {
        chunk.fill(0);
      }
    };
    const onEnd = () => {
      if (refusal) return finish(refusal);
      if (declared !== undefined && gathered.length !== declared) {
        return finish(new EnrollmentError('invalid_request', 'The body is shorter than its Content-Length.'));
      }
      finish(null);
    };
    const onGone = () => {
      if (!req.readableEnded) finish(new EnrollmentError('invalid_request', 'The request was aborted.'));
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onGone);
    req.once('close', onGone);
    req.resume();
  });
}

/**
 * Reads an image body after the guard (so an unauthenticated client cannot make us buffer 5 MB):
 * `Content-Type: image/jpeg` is read raw into one Buffer (readImageBody: never a string, every chunk wiped once
 * copied); `multipart/form-data` is left to the multer interceptor that follows; anything else is 415
 * `unsupported_media_type`. Whatever the outcome, every image buffer is zeroed once the response is done.
 */
@Injectable()
export class ImageBodyInterceptor implements NestInterceptor {
  async intercept(context: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    const http = context.switchToHttp();
    const req = http.getRequest<Request>();
    const res = http.getResponse<Response>();
    res.once('close', () => wipeUploads(req));
    const type = (req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type === 'image/jpeg') {
      const body = await readImageBody(req);
      if (body) req.body = body;
    } else if (type !== 'multipart/form-data') {
      throw new EnrollmentError(
        'unsupported_media_type',
        `Send one JPEG as Content-Type: image/jpeg, or 1-5 JPEGs as multipart/form-data fields named "${IMAGE_FIELD}".`,
      );
    }
    return next.handle();
  }
}

/**
 * Bounds the work each photo may cause before the engine decodes it, from its JPEG markers alone: progressive photos
 * are fine, but with at most `limits.maxScans` scans (each one is a pass of the decoder over the whole image: a few
 * hundred KB can hold thousands), not arithmetic-coded, and no more than `limits.maxPixels`. Throws the EngineError
 * (`frame_too_complex`, `frame_too_large`, ...: HTTP 422) naming the image, after wiping every image of the request.
 * Non-JPEG bytes are left to the engine, which refuses them from their first bytes.
 */
export function checkUploadedImages(images: readonly Buffer[], limits: JpegLimits = PHOTO_JPEG_LIMITS): void {
  for (const [i, image] of images.entries()) {
    try {
      inspectJpeg(image, limits);
    } catch (err) {
      for (const b of images) b.fill(0);
      if (!(err instanceof EngineError)) throw err;
      throw new EngineError(
        err.code,
        images.length > 1 ? `Image ${i + 1} of ${images.length}: ${err.message}` : err.message,
      );
    }
  }
}

/** Multer's module options token (not exported by @nestjs/platform-express); unset unless MulterModule is used. */
const MULTER_MODULE_OPTIONS = 'MULTER_MODULE_OPTIONS';

/**
 * multipart/form-data: up to 5 files named `image`, 5 MB each, in memory only, no other fields. Then, whatever the
 * body type (it runs after ImageBodyInterceptor), every image's structure is checked (checkUploadedImages, with
 * ENROLL_MAX_PIXELS) before the route handler runs.
 */
export function imageFilesInterceptor(maxFiles: number): Type<NestInterceptor> {
  const Multer = multipartImages(maxFiles);
  @Injectable()
  class CheckedImages implements NestInterceptor {
    private readonly multer: NestInterceptor;
    private readonly limits: JpegLimits;

    constructor(
      @Optional() @Inject(MULTER_MODULE_OPTIONS) multerOptions?: object,
      @Optional() @Inject(CONFIG) config?: Config,
    ) {
      this.multer = new Multer(multerOptions);
      this.limits = { ...PHOTO_JPEG_LIMITS, maxPixels: config?.ENROLL_MAX_PIXELS ?? PHOTO_JPEG_LIMITS.maxPixels };
    }

    intercept(context: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
      const req = context.switchToHttp().getRequest<Request>();
      return this.multer.intercept(context, {
        handle: () => {
          checkUploadedImages(uploadedImages(req), this.limits);
          return next.handle();
        },
      }) as Promise<Observable<unknown>>;
    }
  }
  return mixin(CheckedImages);
}

/**
 * multer's `streamHandler`: feeds the request to busboy as multer itself does (req.pipe), and wipes what the storage
 * never sees. Every file's chunks are zeroed once whoever reads the file is done with each (the storage, or multer
 * discarding a file it refused). Once the upload has failed (a file over the size limit, too many files or parts,
 * or multer unpiped the request to read the rest off) every request chunk is zeroed after busboy parsed it: the
 * parts busboy skips and whatever is read off would otherwise stay in the request's chunks. Never before a failure:
 * until then busboy's file chunks are views of those bytes, still to be read.
 */
export function pipeWipingLeftovers(req: Readable, busboy: Writable): void {
  const files = new Set<Readable>();
  let failed = false;
  const wipeChunk = (chunk: Buffer) => chunk.fill(0);
  // Registered after multer's own 'file' listener, which has (synchronously) handed the file to the storage, started
  // discarding it, or refused it; busboy pushes the file's first bytes only after these listeners return.
  busboy.on('file', (_field: string, stream: Readable) => {
    stream.once('limit', () => (failed = true));
    if (stream.readableFlowing) {
      stream.on('data', wipeChunk); // after the reader's own listener, if it has one
      return;
    }
    files.add(stream);
    stream.once('end', () => files.delete(stream));
  });
  // busboy skips the rest of the request's parts once a count limit is reached (multer then refuses it).
  for (const limit of ['filesLimit', 'partsLimit', 'fieldsLimit', 'error']) busboy.once(limit, () => (failed = true));
  busboy.once('unpipe', () => {
    failed = true;
    // Files multer left unread (a refused field name, the request refused meanwhile) still hold views of its bytes.
    for (const stream of files) stream.on('data', wipeChunk);
  });
  req.pipe(busboy);
  // After pipe's own listener, which has busboy parse each chunk first.
  req.on('data', (chunk: Buffer) => {
    if (failed) chunk.fill(0);
  });
}

/** multer's options for up to `maxFiles` images (also what the unit test runs multer with). */
export function multipartOptions(maxFiles: number) {
  return {
    storage: new WipingMemoryStorage(),
    // multer's option (not in Nest's types yet).
    ...({ streamHandler: pipeWipingLeftovers } as object),
    limits: {
      fileSize: MAX_IMAGE_BYTES,
      files: maxFiles,
      fields: 0,
      parts: maxFiles,
      fieldNameSize: 100,
      headerPairs: 20,
    },
  };
}

function multipartImages(maxFiles: number): Type<NestInterceptor> {
  return FilesInterceptor(IMAGE_FIELD, maxFiles, multipartOptions(maxFiles));
}
