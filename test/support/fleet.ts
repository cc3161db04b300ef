import WebSocket from 'ws';
import { createMisClient, createWorkstation } from '../../src/auth';
import { loadConfig } from '../../src/config';
import { EMBEDDING_LENGTH, TemplateCipher } from '../../src/enrollment';
import type { Storage } from '../../src/storage';
import type { EventPayload } from '../../src/storage/ports';
import { until } from './children';
import { makeIin } from './iin';

/** A desk of a seeded clinic: its workstation key and its patient (with an enrolled template). */
export interface Desk {
  key: string;
  iin: string;
}

/**
 * A clinic for the multi-gateway tests: `desks` workstations with one enrolled patient each (a random template,
 * sealed with `templateKey`), and an MIS client.
 */
export async function seedClinic(
  storage: Storage,
  opts: { name: string; desks: number; templateKey: string; birthDate: string; serialBase: number },
): Promise<{ clinicId: string; misKey: string; desks: Desk[] }> {
  const repos = storage.repos;
  const clinicId = (await repos.clinics.create(opts.name)).id;
  const misKey = (await createMisClient(repos.misClients, clinicId, 'MIS')).apiKey;
  const cipher = new TemplateCipher(loadConfig({ TEMPLATE_KEYS: opts.templateKey }).TEMPLATE_KEYS!);
  const desks: Desk[] = [];
  for (let d = 0; d < opts.desks; d++) {
    const { apiKey } = await createWorkstation(repos.workstations, clinicId, `Desk ${d + 1}`);
    const iin = makeIin(opts.birthDate, opts.serialBase + d * 7);
    const patient = await repos.patients.upsert(clinicId, iin);
    const embedding = Float32Array.from({ length: EMBEDDING_LENGTH }, () => Math.random() - 0.5);
    await repos.templates.replace(
      clinicId,
      patient.id,
      cipher.encrypt(embedding, { clinicId, patientId: patient.id }),
      {
        actor: { kind: 'admin', id: null },
        images: 1,
        confirmation: null,
      },
    );
    desks.push({ key: apiKey, iin });
  }
  return { clinicId, misKey, desks };
}

/** The MIS on /ws/events of `base` (a gateway or the balancer), resuming from its last event after every drop. */
export class Subscriber {
  readonly events: Array<EventPayload & { receivedAt: number }> = [];
  readonly closes: number[] = [];
  /** When each `ready` came (one per connection). */
  readonly readyAt: number[] = [];
  cursor: string | null = null;
  initialCursor: string | null = null;
  private ws: WebSocket | null = null;
  private stopped = false;

  constructor(
    private readonly base: string,
    private readonly key: string,
  ) {}

  get connections(): number {
    return this.readyAt.length;
  }

  async start(): Promise<void> {
    this.connect(null);
    await until('the subscriber to be ready', () => this.initialCursor !== null);
  }

  private connect(after: string | null): void {
    const url = `${this.base.replace(/^http/, 'ws')}/ws/events${after ? `?after=${after}` : ''}`;
    const ws = new WebSocket(url, ['faceid.events.v1', `key.${this.key}`]);
    this.ws = ws;
    ws.on('message', (data) => {
      const m = JSON.parse(String(data));
      if (m.type === 'ready') {
        this.readyAt.push(Date.now());
        if (this.initialCursor === null) this.initialCursor = m.cursor;
        this.cursor ??= m.cursor;
      } else if (m.type === 'event') {
        this.events.push({ ...m.event, receivedAt: Date.now() });
        this.cursor = m.event.id;
      }
    });
    ws.on('error', () => undefined);
    ws.on('close', (code) => {
      this.closes.push(code);
      if (!this.stopped) setTimeout(() => this.connect(this.cursor), 200);
    });
  }

  stop(): void {
    this.stopped = true;
    this.ws?.terminate();
  }
}
