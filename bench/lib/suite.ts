import { CONDITIONS } from '../../src/accuracy/conditions';
import type { FleetSuite, Fps, Mode, OverloadSuite, Suite, Transport, WsPoint } from './types';

/**
 * The three suites. quick (`npm run bench`, about six to eight minutes), full (`npm run bench:full`, about forty) and
 * smoke (CI: every benchmark runs for a second or so, to keep the tools working; its figures mean nothing).
 */

/** The challenge sets the product runs (`faceid pad-eval --configs`): the light for desks whose screen faces the
 *  patient, the turn for the others. */
const PAD_CONFIGS = ['light+blink', 'turn+blink'];

/**
 * The overload phase's desks: 10 fps, a patient who blinks half a second after the prompt (the immediate blink of the
 * frame-load generator fails the blink's first window in most sessions and needs `blink_again`: a patient who reacts
 * like a person gives sessions of the length a desk sees).
 */
const OVERLOAD_DESK = { fps: 10, reactionMs: 500, blinkMs: 250 };

/** The accuracy phase: every condition, the CLI's default seed (about 45 s on the labelled set on 2 cores). */
const ACCURACY = { conditions: [...CONDITIONS], seed: 1 };

function sweep(transports: Transport[], connections: number[], fps: Fps[]): WsPoint[] {
  const points: WsPoint[] = [];
  for (const c of connections)
    for (const f of fps) for (const t of transports) points.push({ transport: t, connections: c, fps: f });
  return points;
}

export function suiteFor(mode: Mode): Suite {
  switch (mode) {
    case 'quick':
      return {
        mode,
        reps: 3,
        engineSeconds: 1,
        peerSeconds: 1,
        httpSeconds: 1,
        httpConnections: { health: 10, sessions: 10, enroll: 2, code: 10 },
        ws: {
          // uWS is compared where the transport has work to do; one connection says nothing about it.
          points: [...sweep(['ws'], [1], [10]), ...sweep(['ws', 'uws'], [10, 50], [10])],
          warmupSeconds: 1,
          measureSeconds: 3,
          probeIntervalMs: 1000,
        },
        memory: { levels: [1, 100, 1000], transports: ['ws'] },
        pad: { attempts: 5, configs: PAD_CONFIGS, fps: 12 },
        overload: { loads: [1, 5], warmupSeconds: 3, measureSeconds: 6, ...OVERLOAD_DESK } satisfies OverloadSuite,
        fleet: { desks: [10, 30], reps: 1, warmupSeconds: 3, measureSeconds: 8, ...OVERLOAD_DESK } satisfies FleetSuite,
        accuracy: ACCURACY,
      };
    case 'full':
      return {
        mode,
        reps: 3,
        engineSeconds: 3,
        peerSeconds: 3,
        httpSeconds: 5,
        httpConnections: { health: 20, sessions: 10, enroll: 4, code: 10 },
        ws: {
          points: sweep(['ws', 'uws'], [1, 10, 50, 200], [5, 10, 15, 'closed']),
          warmupSeconds: 3,
          measureSeconds: 8,
          probeIntervalMs: 1000,
        },
        memory: { levels: [1, 100, 1000], transports: ['ws', 'uws'] },
        pad: { attempts: 50, configs: PAD_CONFIGS, fps: 12 },
        overload: {
          loads: [1, 2, 5, 10],
          warmupSeconds: 5,
          measureSeconds: 15,
          ...OVERLOAD_DESK,
        } satisfies OverloadSuite,
        fleet: {
          desks: [10, 30],
          reps: 3,
          warmupSeconds: 5,
          measureSeconds: 15,
          ...OVERLOAD_DESK,
        } satisfies FleetSuite,
        accuracy: ACCURACY,
      };
    case 'smoke':
      return {
        mode,
        reps: 2,
        engineSeconds: 0.3,
        peerSeconds: 0.3,
        httpSeconds: 1,
        httpConnections: { health: 2, sessions: 2, enroll: 1, code: 2 },
        ws: {
          points: sweep(['ws', 'uws'], [2], [10]),
          warmupSeconds: 0.5,
          measureSeconds: 1,
          probeIntervalMs: 250,
        },
        memory: { levels: [1, 5], transports: ['ws'] },
        pad: { attempts: 1, configs: ['light+blink'], fps: 12 },
        overload: {
          loads: [1, 5],
          capacity: 2,
          warmupSeconds: 0.5,
          measureSeconds: 1.5,
          ...OVERLOAD_DESK,
        } satisfies OverloadSuite,
      };
  }
}
