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
    m.verdict('match', 'face');
    m.verdict('match', 'code');
    m.verdict('locked_out', 'code');
    m.verdict('locked_out', 'code');
    m.verdict('locked_out', 'face');
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
    expect(text).toContain('faceid_verdicts_total{result="match",method="face"} 1');
    expect(text).toContain('faceid_verdicts_total{result="match",method="code"} 1');
    expect(text).toContain('faceid_verdicts_total{result="locked_out",method="code"} 2');
    expect(text).toContain('faceid_verdicts_total{result="locked_out",method="face"} 1');
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

  it('counts SMS failures by purpose and reason from fixed sets, with zeros from the start', async () => {
    const m = new MetricsService();
    const before = await m.registry.metrics();
    for (const purpose of ['identification', 'enrollment']) {
      for (const reason of ['timeout', 'connection', 'rejected', 'server_error', 'other']) {
        expect(before).toContain(`faceid_sms_failures_total{purpose="${purpose}",reason="${reason}"} 0`);
      }
    }
    m.smsFailure('enrollment', 'timeout');
    m.smsFailure('identification', 'server_error');
    m.smsFailure('identification', 'server_error');
    // Values from outside the sets (a caller's bug) never become new series.
    m.smsFailure('+77011234567' as never, '900101300027' as never);
    const text = await m.registry.metrics();
    expect(text).toContain('faceid_sms_failures_total{purpose="enrollment",reason="timeout"} 1');
    expect(text).toContain('faceid_sms_failures_total{purpose="identification",reason="server_error"} 2');
    expect(text).toContain('faceid_sms_failures_total{purpose="identification",reason="other"} 1');
    expect(text).not.toContain('77011234567');
    expect(text).not.toContain('900101300027');
  });

  it('gives every instance its own registry (several apps in one process)', () => {
    expect(() => [new MetricsService(), new MetricsService()]).not.toThrow();
  });
});
