export { FaceEngine, cosineSimilarity, type OpenOptions } from './engine';
export { EngineError, ENGINE_ERROR_CODES, type EngineErrorCode } from './errors';
export {
  FRAME_JPEG_LIMITS,
  inspectJpeg,
  looksLikeJpeg,
  PHOTO_JPEG_LIMITS,
  type JpegLimits,
  type JpegStructure,
} from './jpeg-structure';
export { resolveModels } from './models';
export * from './types';
export { EngineModule } from './engine.module';
export { EngineService, type EngineStatus } from './engine.service';
