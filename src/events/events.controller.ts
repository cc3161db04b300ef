import { Controller, Get, Header } from '@nestjs/common';
import { z } from 'zod';
import { ApiRoute, defineRoute, Input, type RouteInput } from '../http';
import { EventFeed } from './event-feed';
import { EventReaderKeyAuth, filterOf, ReaderCaller, type EventReader } from './reader-auth';
import { ApiEventSchema, EVENT_TYPES, EVENT_VERSION, eventJsonSchema, type JsonObject } from './schemas';

export const MAX_PAGE = 1000;

const listSpec = defineRoute({
  summary: 'Events of your clinic after a cursor',
  description:
    'Pull access to the stream the WebSocket (`/ws/events`) and webhooks push: events in `seq` order after the ' +
    'event `after` (from the clinic’s first event without it). Call again with the answer’s `cursor` until `events` ' +
    'is empty. An MIS key reads every event of its clinic; a workstation key only the identification events of its ' +
    'own sessions (another event’s id is `cursor_unknown` to it).',
  tags: ['events'],
  query: z.object({
    after: z.uuid().optional().meta({ description: 'The id of the last event you have.' }),
    limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(100),
  }),
  response: z.object({
    events: z.array(ApiEventSchema),
    cursor: z.string().nullable().meta({ description: 'Pass as `after` next time.' }),
  }),
  errors: ['cursor_unknown'],
});

const schemasSpec = defineRoute({
  summary: 'JSON Schemas of the events',
  description: 'One JSON Schema (draft 2020-12) per event type, as in docs/events. Public.',
  tags: ['events'],
  response: z.object({
    version: z.literal(EVENT_VERSION),
    schemas: z.record(z.enum(EVENT_TYPES), z.record(z.string(), z.unknown())),
  }),
});

@Controller('events')
export class EventsController {
  constructor(private readonly feed: EventFeed) {}

  @Get()
  @ApiRoute(listSpec)
  @EventReaderKeyAuth()
  @Header('Cache-Control', 'no-store')
  list(@ReaderCaller() reader: EventReader, @Input() input: RouteInput<typeof listSpec>) {
    return this.feed.page(reader.clinicId, input.query.after, input.query.limit, filterOf(reader));
  }

  @Get('schemas')
  @ApiRoute(schemasSpec)
  schemas(): { version: typeof EVENT_VERSION; schemas: Record<string, JsonObject> } {
    return { version: EVENT_VERSION, schemas: Object.fromEntries(EVENT_TYPES.map((t) => [t, eventJsonSchema(t)])) };
  }
}
