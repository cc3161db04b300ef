import { Controller, Get } from '@nestjs/common';
import { z } from 'zod';
import { CurrentPrincipal, WorkstationAuth, type Principal } from '../auth';
import { ApiRoute, defineRoute } from '../http';
import { OutboxService } from './outbox.service';

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
  constructor(private readonly outbox: OutboxService) {}

  @Get('outbox')
  @ApiRoute(outboxSpec)
  async list(@CurrentPrincipal() principal: Principal) {
    const messages = await this.outbox.list(principal.clinicId);
    return { messages: messages.map((m) => ({ ...m, createdAt: m.createdAt.toISOString() })) };
  }
}
