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
import type { Request, Response } from 'express';
import { raw } from 'express';
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
}

/**
 * multer storage in memory (never disk), like multer's own memoryStorage, except that a file multer drops (a later
 * part failed a limit) is zeroed, not just forgotten.
 */
export class WipingMemoryStorage {
  _handleFile(_req: unknown, file: { stream: FileStream }, cb: (err: Error | null, info?: UploadedFile) => void): void {
    const chunks: Buffer[] = [];
    let size = 0;
    file.stream.on('data', (chunk) => {
      chunks.push(chunk);
      size += chunk.length;
    });
    file.stream.on('error', (err) => cb(err));
    file.stream.on('end', () => {
      // The chunks are views into busboy's parse buffers, so they are not ours to wipe.
      const buffer = Buffer.concat(chunks, size);
      chunks.length = 0;
      cb(null, { buffer, size });
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

const jpegBody = raw({ type: 'image/jpeg', limit: MAX_IMAGE_BYTES, inflate: false });

/**
 * Reads an image body after the guard (so an unauthenticated client cannot make us buffer 5 MB):
 * `Content-Type: image/jpeg` is read raw into one Buffer (never a string); `multipart/form-data` is left to the
 * multer interceptor that follows; anything else is 415 `unsupported_media_type`. Whatever the outcome, every image
 * buffer is zeroed once the response is done.
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
      await new Promise<void>((resolve, reject) =>
        jpegBody(req, res, (err?: unknown) => (err ? reject(err) : resolve())),
      );
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
      throw new EngineError(err.code, images.length > 1 ? `Image ${i + 1} of ${images.length}: ${err.message}` : err.message);
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

function multipartImages(maxFiles: number): Type<NestInterceptor> {
  return FilesInterceptor(IMAGE_FIELD, maxFiles, {
    storage: new WipingMemoryStorage(),
    limits: {
      fileSize: MAX_IMAGE_BYTES,
      files: maxFiles,
      fields: 0,
      parts: maxFiles,
      fieldNameSize: 100,
      headerPairs: 20,
    },
  });
}
