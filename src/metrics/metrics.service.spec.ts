import { MetricsService } from './metrics.service';

describe('MetricsService', () => {
  it('records through the facade', async () => {
    const m = new MetricsService();
    m.frameReceived();
    m.frameReceived();
    m.frameAnalysed();
    m.frameDropped();
    m.analysis('track', 0.012);
    m.analysis('full', 0.04);
    m.analysis('full', Number.NaN); // ignored
    m.verdict('match');
    m.sessionOpened();
    m.sessionOpened();
    m.sessionClosed();
    m.wsError('payload_too_large');
    const text = await m.registry.metrics();
    expect(text).toContain('faceid_frames_received_total 2');
    expect(text).toContain('faceid_frames_analysed_total 1');
    expect(text).toContain('faceid_frames_dropped_total 1');
    expect(text).toContain('faceid_analysis_seconds_count{call="track"} 1');
    expect(text).toContain('faceid_analysis_seconds_count{call="full"} 1');
    expect(text).toContain('faceid_verdicts_total{result="match"} 1');
    expect(text).toContain('faceid_sessions_open 1');
    expect(text).toContain('faceid_ws_errors_total{code="payload_too_large"} 1');
  });

  it('counts webhook attempts and event subscribers, with zeros from the start', async () => {
    const m = new MetricsService();
    expect(await m.registry.metrics()).toContain('faceid_webhook_attempts_total{outcome="failed"} 0');
    m.webhookAttempt('failed', 0.2);
    m.webhookAttempt('failed', Number.NaN); // counted, not timed
    m.webhookAttempt('delivered', 0.05);
    m.webhookDead();
    m.eventSubscriberOpened();
    m.eventSubscriberOpened();
    m.eventSubscriberClosed();
    const text = await m.registry.metrics();
    expect(text).toContain('faceid_webhook_attempts_total{outcome="failed"} 2');
    expect(text).toContain('faceid_webhook_attempts_total{outcome="delivered"} 1');
    expect(text).toContain('faceid_webhook_attempt_seconds_count 2');
    expect(text).toContain('faceid_webhooks_dead_total 1');
    expect(text).toContain('faceid_event_subscribers 1');
  });

  it('keeps free text and unbounded sets out of the error label', async () => {
    const m = new MetricsService();
    m.wsError('Token abc123 was wrong');
    m.wsError('');
    for (let i = 0; i < 100; i++) m.wsError(`code_${i}`);
    const text = await m.registry.metrics();
    expect(text).not.toContain('abc123');
    const labels = text.split('\n').filter((l) => l.startsWith('faceid_ws_errors_total{'));
    expect(labels.length).toBeLessThanOrEqual(65);
    expect(text).toMatch(/faceid_ws_errors_total\{code="other"\} \d+/);
  });

  it('gives every instance its own registry (several apps in one process)', () => {
    expect(() => [new MetricsService(), new MetricsService()]).not.toThrow();
  });
});
