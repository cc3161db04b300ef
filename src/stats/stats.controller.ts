import { Controller, Get } from '@nestjs/common';
import { z } from 'zod';
import { MisCaller, MisKeyAuth, type MisPrincipal } from '../auth';
import { ApiRoute, defineRoute, Input, type RouteInput } from '../http';
import { PERCENTILE_DEFINITION, REFUSAL_RATE_DEFINITION } from './aggregate';
import { MAX_STATS_SPAN_DAYS, StatsService } from './stats.service';

const Timestamp = z.iso.datetime({ offset: true });
const Counts = z.record(z.string(), z.number().int());
const Durations = z.object({
  count: z.number().int(),
  median: z.number().nullable(),
  p90: z.number().nullable(),
});

const statsSpec = defineRoute({
  summary: 'Identification statistics of the caller’s clinic',
  description:
    'Computed from the clinic’s stored MIS events with from <= time < to (never from biometric data). ' +
    `Default window: the last 24 hours; at most ${MAX_STATS_SPAN_DAYS} days; to must be after from ` +
    '(else 400 `stats_range_invalid`).\n\n' +
    '- identifications: every outcome (face and code verdicts, expiries, lock-outs) by method and result. A refusal ' +
    'is not an outcome: the refused session ends later with its code verdict (or expires).\n' +
    `- ${REFUSAL_RATE_DEFINITION}\n` +
    '- failures: outcomes other than `match`, by result.\n' +
    `- timeToVerdictMs: ${PERCENTILE_DEFINITION} Nulls when there is no data.\n` +
    '- lockouts: face (the attempts limit of a patient) and code (the code’s attempts ran out).',
  tags: ['stats'],
  query: z.object({
    from: Timestamp.optional().meta({ description: 'ISO 8601 timestamp, inclusive. Default: 24 h before `to`.' }),
    to: Timestamp.optional().meta({ description: 'ISO 8601 timestamp, exclusive. Default: now.' }),
  }),
  response: z.object({
    from: z.string(),
    to: z.string(),
    identifications: z.object({
      total: z.number().int(),
      byMethod: z.object({ face: z.number().int(), code: z.number().int(), none: z.number().int() }),
      byResult: Counts,
    }),
    refusals: z.object({
      count: z.number().int(),
      rate: z.number().nullable().meta({ description: REFUSAL_RATE_DEFINITION }),
      reasons: Counts.meta({ description: 'Refusals by reason code.' }),
    }),
    failures: z.object({ total: z.number().int(), byKind: Counts }),
    timeToVerdictMs: z
      .object({ face: Durations, code: Durations, all: Durations })
      .meta({ description: PERCENTILE_DEFINITION }),
    lockouts: z.object({ face: z.number().int(), code: z.number().int() }),
  }),
  errors: ['stats_range_invalid'],
});

/** `GET /stats` for hospital information systems (MIS key), scoped to the key's clinic. */
@Controller('stats')
@MisKeyAuth()
export class StatsController {
  constructor(private readonly stats: StatsService) {}

  @Get()
  @ApiRoute(statsSpec)
  get(@MisCaller() caller: MisPrincipal, @Input() input: RouteInput<typeof statsSpec>) {
    return this.stats.forClinic(caller.clinicId, input.query);
  }
}
