import { Inject, Injectable } from '@nestjs/common';
import { EVENTS, type EventFilter, type EventPayload, type EventRepository } from '../storage/ports';
import { EventsError } from './errors';

export interface EventPage {
  events: EventPayload[];
  /** The id of the last event returned, else the cursor given (null at the start of an empty stream). */
  cursor: string | null;
}

/** Reading a clinic's stream by cursor (an event id), for GET /events, the WebSocket and webhook replays. */
@Injectable()
export class EventFeed {
  constructor(@Inject(EVENTS) private readonly events: EventRepository) {}

  /**
   * The seq of the clinic's event `eventId`; `cursor_unknown` when the clinic has no such event, or `filter` hides it
   * (a workstation's cursor is one of its own events).
   */
  async seqOf(clinicId: string, eventId: string, filter?: EventFilter): Promise<number> {
    const event = await this.events.get(clinicId, eventId, filter);
    if (!event) throw new EventsError('cursor_unknown', 'No event with this id in your clinic.');
    return event.seq;
  }

  /** Up to `limit` events after the cursor (from the first event without one), in seq order, those `filter` lets through. */
  async page(clinicId: string, after: string | undefined, limit: number, filter?: EventFilter): Promise<EventPage> {
    const seq = after === undefined ? 0 : await this.seqOf(clinicId, after, filter);
    const events = (await this.events.after(clinicId, seq, limit, filter)).map((e) => e.payload);
    return { events, cursor: events.length ? events[events.length - 1].id : (after ?? null) };
  }

  /** The id of the last event at or before `seq` that `filter` lets through (a reader's position), or null. */
  async cursorAt(clinicId: string, seq: number, filter?: EventFilter): Promise<string | null> {
    if (seq <= 0) return null;
    return (await this.events.lastAtOrBefore(clinicId, seq, filter))?.id ?? null;
  }

  /** The id of the clinic's event at `seq`, or null for 0 (before the first event). */
  async idAt(clinicId: string, seq: number): Promise<string | null> {
    if (seq <= 0) return null;
    const [event] = await this.events.after(clinicId, seq - 1, 1);
    return event?.seq === seq ? event.id : null;
  }

  latestSeq(clinicId: string): Promise<number> {
    return this.events.latestSeq(clinicId);
  }
}
