import { Injectable } from '@nestjs/common';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { SMS_FAILURE_REASONS, type SmsFailureReason, type SmsPurpose } from '../sms/sms-gateway';
import type { VerdictMethod, VerdictResult } from '../storage/ports';

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
  /** A session's outcome: by the face (`face`), by the six-digit code (`code`, lock-outs too). */
  verdict(result: VerdictResult, method: VerdictMethod): void;
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

/** What the SMS adapters report: messages the gateway did not take. */
export interface SmsMetrics {
  smsFailure(purpose: SmsPurpose, reason: SmsFailureReason): void;
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
export class MetricsService implements FaceidMetrics, EventMetrics, SmsMetrics {
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
    help:
      'Identification outcomes, by result and method: face verdicts, code verdicts, lock-outs (a code out of attempts; ' +
      'a patient over the face attempts limit, method face).',
    labelNames: ['result', 'method'] as const,
    registers: [this.registry],
  });
  private readonly sessionsOpen = new Gauge({
    name: 'faceid_sessions_open',
    help: 'Identification sessions with an open WebSocket.',
    registers: [this.registry],
  });
  private readonly faceSessions = new Gauge({
    name: 'faceid_face_sessions',
    help:
      'Places of the face sessions admission control (FACE_SESSIONS_MAX) in use, by state: streaming (connected), ' +
      'held (a face token issued and not used yet).',
    labelNames: ['state'] as const,
    registers: [this.registry],
  });
  private readonly faceSessionsMax = new Gauge({
    name: 'faceid_face_sessions_max',
    help: 'FACE_SESSIONS_MAX: face sessions this process serves at once (0 = no limit).',
    registers: [this.registry],
  });
  private readonly faceSessionsRefusedTotal = new Counter({
    name: 'faceid_face_sessions_refused_total',
    help: 'POST /sessions by face answered 503 capacity_exceeded (every place in use; the desk retries later).',
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
  private readonly smsFailures = new Counter({
    name: 'faceid_sms_failures_total',
    help:
      'Text messages to patients the SMS gateway did not take (after its retries), by purpose (identification code or ' +
      'enrollment confirmation) and reason: timeout, connection, rejected (4xx), server_error (5xx), other.',
    labelNames: ['purpose', 'reason'] as const,
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
    for (const purpose of ['identification', 'enrollment'] as const) {
      for (const reason of SMS_FAILURE_REASONS) this.smsFailures.inc({ purpose, reason }, 0);
    }
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

  verdict(result: VerdictResult, method: VerdictMethod): void {
    this.verdicts.inc({ result, method });
  }

  smsFailure(purpose: SmsPurpose, reason: SmsFailureReason): void {
    // Fixed sets only: a value from elsewhere (a caller's bug) must not become a new series.
    const p = purpose === 'enrollment' ? 'enrollment' : 'identification';
    const r = (SMS_FAILURE_REASONS as readonly string[]).includes(reason) ? reason : 'other';
    this.smsFailures.inc({ purpose: p, reason: r });
  }

  sessionOpened(): void {
    this.sessionsOpen.inc();
  }

  sessionClosed(): void {
    this.sessionsOpen.dec();
  }

  /** The face sessions admission control's places: its limit and those in use. */
  facePlaces(limit: number, streaming: number, held: number): void {
    this.faceSessionsMax.set(limit);
    this.faceSessions.set({ state: 'streaming' }, streaming);
    this.faceSessions.set({ state: 'held' }, held);
  }

  faceSessionsRefused(): void {
    this.faceSessionsRefusedTotal.inc();
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
