import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { VerdictResult } from '../storage/ports';

export type AnalysisCall = 'track' | 'full';

/**
 * The counters the identification code and the transports update. Labels are fixed, small sets (call kind, verdict
 * result, error code): never ids, tokens, addresses or anything derived from a face.
 */
export interface FaceidMetrics {
  frameReceived(): void;
  frameAnalysed(): void;
  /** A frame replaced by a newer one before it was analysed (latest frame wins), or dropped unread above fps.max. */
  frameDropped(): void;
  /** A frame dropped unread because it arrived above fps.max (also counted by frameDropped). */
  frameOverRate(): void;
  /** One engine call's wall time. */
  analysis(call: AnalysisCall, seconds: number): void;
  verdict(result: VerdictResult): void;
  sessionOpened(): void;
  sessionClosed(): void;
  /** A stable error code (protocol_*, payload_too_large, token_invalid, ...). */
  wsError(code: string): void;
}

/** What the MIS event delivery reports: webhook attempts and open event subscriptions. */
export interface EventMetrics {
  webhookAttempt(outcome: 'delivered' | 'failed', seconds: number): void;
  /** A subscriber just marked dead (it waits for a resume). */
  webhookDead(): void;
  eventSubscriberOpened(): void;
  eventSubscriberClosed(): void;
}

/** A code must look like our stable codes to become a label value; anything else would be free text. */
const CODE_LABEL = /^[a-z][a-z0-9_]{0,63}$/;
/** Bounds the label's cardinality even if a caller passes codes from an open set. */
const MAX_ERROR_CODES = 64;

/**
 * One registry per instance (not prom-client's global one), so several apps in one process (tests) don't clash
 * over metric names.
 */
@Injectable()
export class MetricsService implements FaceidMetrics, EventMetrics {
  readonly registry = new Registry();

  private readonly framesReceived = new Counter({
    name: 'faceid_frames_received_total',
    help: 'Binary frame messages received on identification sessions.',
    registers: [this.registry],
  });
  private readonly framesAnalysed = new Counter({
    name: 'faceid_frames_analysed_total',
    help: 'Frames analysed by the engine.',
    registers: [this.registry],
  });
  private readonly framesDropped = new Counter({
    name: 'faceid_frames_dropped_total',
    help: 'Frames dropped before analysis: replaced by a newer frame (latest frame wins), or above fps.max.',
    registers: [this.registry],
  });
  private readonly framesOverRate = new Counter({
    name: 'faceid_frames_over_rate_total',
    help: 'Frames dropped unread because they arrived above the fps.max of the session (also in frames_dropped).',
    registers: [this.registry],
  });
  private readonly analysisSeconds = new Histogram({
    name: 'faceid_analysis_seconds',
    help: 'Wall time of one engine call, queueing included.',
    labelNames: ['call'] as const,
    // Track calls take about 15 ms, full calls about 30-70 ms on 2 cores; the tail shows saturation.
    buckets: [0.005, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  private readonly verdicts = new Counter({
    name: 'faceid_verdicts_total',
    help: 'Verdicts sent, by result.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  private readonly sessionsOpen = new Gauge({
    name: 'faceid_sessions_open',
    help: 'Identification sessions with an open WebSocket.',
    registers: [this.registry],
  });
  private readonly wsErrors = new Counter({
    name: 'faceid_ws_errors_total',
    help: 'WebSocket errors and refusals, by stable error code.',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  private readonly seenCodes = new Set<string>();
  private readonly webhookAttempts = new Counter({
    name: 'faceid_webhook_attempts_total',
    help: 'Webhook delivery attempts, by outcome (a failed attempt is retried later).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  private readonly webhookSeconds = new Histogram({
    name: 'faceid_webhook_attempt_seconds',
    help: 'Wall time of one webhook delivery attempt (the receiver answering, or the timeout).',
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  private readonly webhooksDead = new Counter({
    name: 'faceid_webhooks_dead_total',
    help: 'Webhook subscribers marked dead after WEBHOOK_MAX_ATTEMPTS failures in a row.',
    registers: [this.registry],
  });
  private readonly eventSubscribers = new Gauge({
    name: 'faceid_event_subscribers',
    help: 'Open /ws/events subscriptions.',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // Known from the start, so dashboards see zeros rather than missing series.
    for (const call of ['track', 'full'] as const) this.analysisSeconds.zero({ call });
    for (const outcome of ['delivered', 'failed'] as const) this.webhookAttempts.inc({ outcome }, 0);
  }

  frameReceived(): void {
    this.framesReceived.inc();
  }

  frameAnalysed(): void {
    this.framesAnalysed.inc();
  }

  frameDropped(): void {
    this.framesDropped.inc();
  }

  frameOverRate(): void {
    this.framesOverRate.inc();
  }

  analysis(call: AnalysisCall, seconds: number): void {
    if (Number.isFinite(seconds) && seconds >= 0) this.analysisSeconds.observe({ call }, seconds);
  }

  verdict(result: VerdictResult): void {
    this.verdicts.inc({ result });
  }

  sessionOpened(): void {
    this.sessionsOpen.inc();
  }

  sessionClosed(): void {
    this.sessionsOpen.dec();
  }

  webhookAttempt(outcome: 'delivered' | 'failed', seconds: number): void {
    this.webhookAttempts.inc({ outcome });
    if (Number.isFinite(seconds) && seconds >= 0) this.webhookSeconds.observe(seconds);
  }

  webhookDead(): void {
    this.webhooksDead.inc();
  }

  eventSubscriberOpened(): void {
    this.eventSubscribers.inc();
  }

  eventSubscriberClosed(): void {
    this.eventSubscribers.dec();
  }

  wsError(code: string): void {
    let label = CODE_LABEL.test(code) ? code : 'other';
    if (!this.seenCodes.has(label)) {
      if (this.seenCodes.size >= MAX_ERROR_CODES) label = 'other';
      else this.seenCodes.add(label);
    }
    this.wsErrors.inc({ code: label });
  }
}
