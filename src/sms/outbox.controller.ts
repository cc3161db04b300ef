import { Controller, Get, Inject } from '@nestjs/common';
import { z } from 'zod';
import { CurrentPrincipal, WorkstationAuth, type Principal } from '../auth';
import { ApiRoute, AppError, defineRoute } from '../http';
import { SESSIONS, type SessionRepository } from '../storage/ports';
import { DevSmsOutbox } from './dev-sms.outbox';
import { maskIin, SMS_GATEWAY, type SmsGateway } from './sms-gateway';

const outboxSpec = defineRoute({
  summary: 'The development SMS outbox',
  description:
    'Only with SMS_ADAPTER=dev (otherwise 404 `not_found`): the last text messages sent to patients of the ' +
    'caller’s clinic, oldest first, so a demo can read the six-digit code without a phone.',
  tags: ['dev'],
  response: z.object({
    messages: z.array(
      z.object({
        sessionId: z.string(),
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
  ) {}

  @Get('outbox')
  @ApiRoute(outboxSpec)
  async list(@CurrentPrincipal() principal: Principal) {
    if (!(this.sms instanceof DevSmsOutbox)) throw new AppError('not_found', 'No such resource.');
    const messages = [];
    // A message's reference is its session: only sessions of the caller's clinic are shown.
    for (const m of this.sms.list()) {
      if (!(await this.sessions.get(principal.clinicId, m.reference))) continue;
      messages.push({ sessionId: m.reference, to: maskIin(m.iin), text: m.text, createdAt: m.createdAt.toISOString() });
    }
    return { messages };
  }
}
