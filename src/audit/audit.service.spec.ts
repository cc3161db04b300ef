import type { AuditRepository } from '../storage/ports';
import { AuditDetailError, AuditService, checkAuditDetail } from './audit.service';

describe('checkAuditDetail', () => {
  it.each([
    [{ images: 3, keyId: 'k1' }],
    [{ reason: 'face_id_not_applicable', channel: 'remote', ok: true, none: null }],
    [{ nested: { counts: [1, 2, 3], flags: [true, false] } }],
    [{ scores: Array.from({ length: 16 }, (_, i) => i / 16) }],
  ])('accepts small JSON %#', (detail) => {
    expect(() => checkAuditDetail(detail)).not.toThrow();
  });

  it.each([
    ['a Buffer', { frame: Buffer.from([1, 2, 3]) }, 'detail.frame'],
    ['a Float32Array', { embedding: new Float32Array(512) }, 'detail.embedding'],
    ['a Uint8Array deep inside', { a: { b: [new Uint8Array(2)] } }, 'detail.a.b[0]'],
    ['an ArrayBuffer', { raw: new ArrayBuffer(8) }, 'detail.raw'],
    ['a DataView', { raw: new DataView(new ArrayBuffer(8)) }, 'detail.raw'],
    [
      'a long number array (an embedding as JSON)',
      { embedding: Array.from({ length: 512 }, () => 0.1) },
      'detail.embedding',
    ],
    ['a long string (base64)', { jpeg: 'A'.repeat(5000) }, 'detail.jpeg'],
    ['NaN', { score: NaN }, 'detail.score'],
    ['a Date', { at: new Date() }, 'detail.at'],
    ['a function', { f: () => 1 }, 'detail.f'],
    ['deep nesting', { a: { b: { c: { d: { e: 1 } } } } }, 'detail.a.b.c.d'],
  ])('rejects %s', (_name, detail, path) => {
    let err: unknown;
    try {
      checkAuditDetail(detail);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AuditDetailError);
    expect(err).toMatchObject({ code: 'audit_detail_rejected', path });
    expect((err as Error).message).not.toContain('AAAA');
  });
});

describe('AuditService', () => {
  const append = jest.fn(async (e: object) => ({ ...e, seq: 1, at: new Date(), prevHash: '0', hash: '1' }));
  const service = new AuditService({ append, list: jest.fn() } as unknown as AuditRepository);

  beforeEach(() => append.mockClear());

  it('appends a checked entry', async () => {
    await service.record('workstation:w1', 'template.enrolled', {
      clinicId: 'c1',
      subject: 'p1',
      detail: { images: 2 },
    });
    expect(append).toHaveBeenCalledWith({
      clinicId: 'c1',
      actor: 'workstation:w1',
      action: 'template.enrolled',
      subject: 'p1',
      detail: { images: 2 },
    });
    await service.record('system', 'clinic.bootstrapped', { clinicId: null });
    expect(append).toHaveBeenLastCalledWith(expect.objectContaining({ subject: null, detail: null }));
  });

  it('refuses biometric-looking details and odd action names without writing', async () => {
    await expect(
      service.record('system', 'template.enrolled', { clinicId: 'c1', detail: { e: new Float32Array(512) } }),
    ).rejects.toBeInstanceOf(AuditDetailError);
    await expect(service.record('system', 'Template Enrolled', { clinicId: 'c1' })).rejects.toBeInstanceOf(
      AuditDetailError,
    );
    await expect(
      service.record('system', 'x.y', { clinicId: 'c1', detail: [1, 2] as unknown as Record<string, unknown> }),
    ).rejects.toBeInstanceOf(AuditDetailError);
    expect(append).not.toHaveBeenCalled();
  });
});
