import { Controller, Get, Inject } from '@nestjs/common';
import { z } from 'zod';
import { CurrentPrincipal, WorkstationAuth, type Principal } from '../auth';
import { ApiRoute, AppError, defineRoute } from '../http';
import {
  PENDING_ENROLLMENTS,
  SESSIONS,
  type PendingEnrollmentRepository,
  type SessionRepository,
} from '../storage/ports';
import { DevSmsOutbox } from './dev-sms.outbox';
import { smsAdapterOf } from './metered-sms.gateway';
import { maskIin, SMS_GATEWAY, type SmsGateway } from './sms-gateway';

const outboxSpec = defineRoute({
  summary: 'The development SMS outbox',
  description:
    'Only with SMS_ADAPTER=dev (otherwise 404 `not_found`): the last text messages sent to patients of the ' +
    'caller’s clinic, oldest first, so a demo can read the six-digit code without a phone: the codes of ' +
    'identification sessions, and those confirming a workstation’s replacement of a template.',
  tags: ['dev'],
  response: z.object({
    messages: z.array(
      z.object({
        purpose: z.enum(['identification', 'enrollment']).meta({
          description:
            '`identification`: the code of a session (`sessionId`); `enrollment`: the code confirming a new ' +
            'reference photo (`POST /patients/{iin}/template/confirm`).',
        }),
        sessionId: z.string().nullable().meta({ description: 'The session of an identification code; else null.' }),
        to: z.string().meta({ description: 'The patient’s IIN, masked: `********1234`.' }),
        text: z.string(),
        createdAt: z.string(),
      }),
    ),
  }),
  errors: ['not_found'],
});

@Controller('dev')
@WorkstationAuth()
export class OutboxController {
  constructor(
    @Inject(SMS_GATEWAY) private readonly sms: SmsGateway,
    @Inject(SESSIONS) private readonly sessions: SessionRepository,
    @Inject(PENDING_ENROLLMENTS) private readonly pendings: PendingEnrollmentRepository,
  ) {}

  @Get('outbox')
  @ApiRoute(outboxSpec)
  async list(@CurrentPrincipal() principal: Principal) {
    const outbox = smsAdapterOf(this.sms);
    if (!(outbox instanceof DevSmsOutbox)) throw new AppError('not_found', 'No such resource.');
    const messages = [];
    // A message's reference is its session (or its template replacement request): only the caller's clinic's show.
    for (const m of outbox.list()) {
      const purpose = m.purpose ?? 'identification';
      const ours =
        purpose === 'enrollment'
          ? await this.pendings.get(principal.clinicId, m.reference)
          : await this.sessions.get(principal.clinicId, m.reference);
      if (!ours) continue;
      messages.push({
        purpose,
        sessionId: purpose === 'identification' ? m.reference : null,
        to: maskIin(m.iin),
        text: m.text,
        createdAt: m.createdAt.toISOString(),
      });
    }
    return { messages };
  }
}
