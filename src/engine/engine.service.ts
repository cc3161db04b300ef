import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { CONFIG, type Config } from '../config';
import { FaceEngine } from './engine';
import { EngineError, type EngineErrorCode } from './errors';
import { loadNative } from './native';
import type { EngineStats } from './types';

export type EngineStatus =
  | { ready: true; stats: EngineStats; opencv: string }
  | { ready: false; code: EngineErrorCode };

/**
 * Owns the one FaceEngine of the process. A load failure does not stop the server: it stays up so /health can
 * report the reason and non-biometric paths (fallback codes) keep working; engine users get the EngineError.
 */
@Injectable()
export class EngineService implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger('Engine');
  private engine: FaceEngine | undefined;
  private failure: EngineError = new EngineError('engine_closed', 'The face engine has not been opened yet.');
  private opencv = '';

  constructor(@Inject(CONFIG) private readonly config: Config) {}

  async onModuleInit(): Promise<void> {
    const started = Date.now();
    try {
      const engine = await FaceEngine.open({
        modelDir: this.config.FACEID_MODEL_DIR,
        workers: this.config.ENGINE_WORKERS,
        queueSize: this.config.ENGINE_QUEUE,
        detectThreshold: this.config.ENGINE_DETECT_THRESHOLD,
        threadsPerJob: this.config.ENGINE_THREADS_PER_JOB,
      });
      this.opencv = loadNative().opencvVersion;
      this.engine = engine;
      this.logger.log(
        `Face engine ready: ${engine.options.workers} workers, queue ${engine.options.queueSize}, ` +
          `OpenCV ${this.opencv}, ${Date.now() - started} ms`,
      );
    } catch (err) {
      this.failure = EngineError.from(err);
      this.logger.error(`Face engine not loaded (${this.failure.code}): ${this.failure.message}`);
    }
  }

  /** The open engine. Throws the load failure, or `engine_closed` during shutdown. */
  get(): FaceEngine {
    if (!this.engine) throw this.failure;
    return this.engine;
  }

  status(): EngineStatus {
    if (!this.engine) return { ready: false, code: this.failure.code };
    try {
      return { ready: true, stats: this.engine.stats(), opencv: this.opencv };
    } catch (err) {
      return { ready: false, code: EngineError.from(err).code };
    }
  }

  /** After the HTTP and WS servers have stopped (unlike onModuleDestroy), so no request is cut off mid-analysis. */
  async onApplicationShutdown(): Promise<void> {
    const engine = this.engine;
    if (!engine) return;
    this.engine = undefined;
    this.failure = new EngineError('engine_closed', 'The face engine has been closed.');
    await engine.close();
    this.logger.log('Face engine closed');
  }
}
