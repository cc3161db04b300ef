import { TokenBucket, type Clock } from '../transport/limits';
import { FRAME_BURST, FRAME_FLOOD, FRAME_RATE } from '../transport/protocol';

export interface FrameRateSettings {
  /** fps.max as told to the client in `ready`: frames a second that are analysed at most. */
  maxFps: number;
  /** Frames that may arrive at once beyond it before any is dropped (the token bucket's size). */
  burst: number;
  /** More than floodFactor x maxFps frames within one second is a flood. */
  floodFactor: number;
  /** Floods (counted at most once a second) after which the connection is closed; the first gets a warning. */
  floodSeconds: number;
}

export const DEFAULT_FRAME_RATE: Readonly<FrameRateSettings> = Object.freeze({
  maxFps: FRAME_RATE.max,
  burst: FRAME_BURST,
  floodFactor: FRAME_FLOOD.factor,
  floodSeconds: FRAME_FLOOD.seconds,
});

export interface FrameAdmission {
  /** False: drop the frame unread (wipe it; no decoding, no analysis). */
  accepted: boolean;
  /** `warn`: the first flood second (send the warning); `close`: the last one (close the connection). */
  flood: 'warn' | 'close' | null;
}

/**
 * fps.max, enforced per session before a frame is even parsed: a token bucket of `burst` frames refilled at maxFps
 * lets a client at the advertised rate (with jitter) through whole and drops the surplus of a faster one, so the
 * engine never sees more than maxFps frames a second from one session. A flood is more than floodFactor x maxFps
 * frames within one second (a sliding window: the arrival times of the last floodFactor x maxFps frames are kept);
 * floods are counted at most once a second: the first is warned, the `floodSeconds`-th closes.
 */
export class FrameRateGate {
  private readonly bucket: TokenBucket;
  /** Arrival times of the last `arrivals.length` frames, a ring. */
  private readonly arrivals: Float64Array;
  private next = 0;
  private seen = 0;
  private lastFloodAt = -Infinity;
  private floods = 0;

  constructor(
    readonly settings: FrameRateSettings = DEFAULT_FRAME_RATE,
    private readonly now: Clock = () => performance.now(),
  ) {
    this.bucket = new TokenBucket(settings.burst, settings.maxFps, now());
    this.arrivals = new Float64Array(Math.max(1, Math.floor(settings.floodFactor * settings.maxFps)));
  }

  /** Flood seconds so far. */
  get floodSeconds(): number {
    return this.floods;
  }

  /** One frame arrived. */
  admit(): FrameAdmission {
    const t = this.now();
    // This frame and the `arrivals.length` before it all within a second: more than floodFactor x maxFps.
    const oldest = this.arrivals[this.next];
    const flooding = this.seen >= this.arrivals.length && t - oldest < 1000;
    this.arrivals[this.next] = t;
    this.next = (this.next + 1) % this.arrivals.length;
    this.seen++;
    let flood: FrameAdmission['flood'] = null;
    if (flooding && t - this.lastFloodAt >= 1000) {
      this.lastFloodAt = t;
      this.floods++;
      if (this.floods >= this.settings.floodSeconds) return { accepted: false, flood: 'close' };
      if (this.floods === 1) flood = 'warn';
    }
    return { accepted: this.bucket.take(t), flood };
  }
}
