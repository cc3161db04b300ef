import type { Eyes } from '../engine';

/** Eye openness (mean of both eyes' probability of being open) that counts as open, and as closed. */
export interface BlinkThresholds {
  open: number;
  closed: number;
}

// The eye model is decisive on real faces: open eyes read 0.8-1.0, closed (and synthetically closed) below 0.1.
export const DEFAULT_BLINK: BlinkThresholds = { open: 0.6, closed: 0.35 };

/**
 * Watches eye openness frame by frame for one blink: open, then closed (at least one frame), then open again.
 * A still photo never closes its eyes; a photo of closed eyes never opens them.
 */
export class BlinkDetector {
  private sawOpen = false;
  private sawClosed = false;
  private done = false;

  constructor(private readonly t: BlinkThresholds = DEFAULT_BLINK) {}

  /** Feeds one frame's eyes (undefined when no face or no eyes were found). Returns true once a blink completed. */
  observe(eyes: Eyes | undefined): boolean {
    if (this.done || !eyes) return this.done;
    const openness = (eyes.left + eyes.right) / 2;
    if (openness >= this.t.open) {
      if (this.sawOpen && this.sawClosed) this.done = true;
      this.sawOpen = true;
    } else if (openness <= this.t.closed && this.sawOpen) {
      this.sawClosed = true;
    }
    return this.done;
  }

  get blinked(): boolean {
    return this.done;
  }
}
