import type { Eyes } from '../engine';

/**
 * How BlinkDetector reads eye openness: the mean of both eyes' probability of being open (0-1), judged against
 * the session's own open readings, since the eye model's reading of open eyes varies a lot from face to face.
 */
export interface BlinkThresholds {
  /** The first reading at least this high starts the open baseline; reopened eyes must read at least this much too. */
  open: number;
  /**
   * Closed: below the lowest open reading so far by this many times the open readings' spread (their median minus
   * their lowest), at most `closedMax`, and in any case at most `closedOfLowest` times the lowest.
   */
  closedSpreads: number;
  closedMax: number;
  closedOfLowest: number;
  /**
   * A dip to at most this fraction of the lowest open reading (a half-read closure) waits one frame: a closed
   * reading next makes it part of the blink, anything else makes it an open reading.
   */
  dipOfLowest: number;
  /** Open again: at least this fraction of the median open reading before the closure (and at least `open`). */
  reopenOfMedian: number;
  /** Open readings needed before a closure counts. */
  minOpenReadings: number;
}

// Measured frame by frame on `faceid pad-eval`'s rendered sessions: 21 people, three recordings (the engine and the
// session's tracking changed between them), 1,339 live sessions and 450 still photos with a whole 5 s blink window.
// Open eyes read 0.95-1.00 steadily on most faces, but 0.3-0.6 with dips to 0.00-0.05 on a few (glasses, one eye
// misread), and a still photo of those faces dips as low; painted-shut eyes read 0.00-0.05 on most faces, up to
// 0.15-0.4 in some frames. A fixed "closed" level either misses the blinks of the faces read half-open or lets their
// still photo blink. Hence closed relative to the session's own open readings: on a steady face (open 0.97-1.00) up
// to 0.15, on a noisy one a twentieth of its lowest open reading; only after four open readings, and open again at
// half the usual reading. Live sessions that missed the blink: 43 of 1,339 (fixed 0.6 / 0.35: 127); still photos
// that blinked: 2 of 450, both of a face behind round glasses whose readings are noise (fixed rule: 75). With three
// open readings: 37 live misses, but 6 still photos blinked.
export const DEFAULT_BLINK: BlinkThresholds = {
  open: 0.3,
  closedSpreads: 6,
  closedMax: 0.15,
  closedOfLowest: 0.05,
  dipOfLowest: 0.5,
  reopenOfMedian: 0.5,
  minOpenReadings: 4,
};

/**
 * Watches eye openness frame by frame for one blink: open, then closed (at least one frame), then open again,
 * where closed means clearly below every reading of the eyes open so far in this session (by a margin that grows
 * with how much those readings wobble) and open means back near their usual reading. A still photo never closes its
 * eyes (its readings only wobble around their usual level); a photo of closed eyes never opens them.
 */
export class BlinkDetector {
  /** Readings of the eyes open, from the first at least `open`, in ascending order. */
  private readonly baseline: number[] = [];
  private dip: number | null = null;
  /** Set at the closure: the reading the eyes must reopen to. */
  private reopenAt: number | null = null;
  private done = false;

  constructor(private readonly t: BlinkThresholds = DEFAULT_BLINK) {}

  /** Feeds one frame's eyes (undefined when no face or no eyes were found). Returns true once a blink completed. */
  observe(eyes: Eyes | undefined): boolean {
    if (this.done || !eyes) return this.done;
    const x = (eyes.left + eyes.right) / 2;
    const base = this.baseline;
    if (this.reopenAt !== null) {
      this.done = x >= this.reopenAt;
    } else if (base.length === 0) {
      if (x >= this.t.open) insertSorted(base, x);
    } else {
      const lowest = base[0];
      const median = base[Math.floor(base.length / 2)];
      const belowSpread = lowest - this.t.closedSpreads * (median - lowest);
      const closedAt = Math.min(this.t.closedMax, Math.max(this.t.closedOfLowest * lowest, belowSpread));
      if (x <= closedAt) {
        this.dip = null;
        if (base.length >= this.t.minOpenReadings) {
          this.reopenAt = Math.max(this.t.open, this.t.reopenOfMedian * median);
        }
      } else if (x <= this.t.dipOfLowest * lowest && this.dip === null) {
        this.dip = x;
      } else {
        if (this.dip !== null) insertSorted(base, this.dip);
        this.dip = null;
        insertSorted(base, x);
      }
    }
    return this.done;
  }

  get blinked(): boolean {
    return this.done;
  }
}

function insertSorted(xs: number[], x: number): void {
  let i = xs.length;
  while (i > 0 && xs[i - 1] > x) i--;
  xs.splice(i, 0, x);
}
