import { Controller, Post } from '@nestjs/common';
import { z } from 'zod';
import { CurrentPrincipal, WorkstationAuth, type Principal } from '../auth';
import { ApiRoute, defineRoute, Input, type RouteInput } from '../http';
import { CodePathService } from './code-path.service';

/** A session on the code path whose code was sent (the answer of a refusal and of a remote POST /sessions). */
export const CodeSentSchema = z.object({
  sessionId: z.string(),
  state: z.literal('code_pending'),
  codeExpiresAt: z.string().meta({ description: 'When the six-digit code expires (CODE_TTL_S after sending).' }),
});

const SessionParams = z.object({ id: z.string().uuid() });

const refusalSpec = defineRoute({
  summary: 'The patient refuses the photo: identify by a six-digit code instead',
  description:
    'Moves a session that has no verdict yet to the code path: a running camera session is stopped (its frames ' +
    'are wiped; the browser gets an `error` `session_refused` and close 4010), the refusal is recorded (an ' +
    '`identification.refused` MIS event) and a six-digit code goes to the patient by SMS, valid CODE_TTL_S seconds. ' +
    'If the SMS gateway fails (502 `sms_unavailable`), the session stays on the code path until the code expires; ' +
    'start a new session to try again.',
  tags: ['sessions'],
  params: SessionParams,
  body: z.object({
    reason: z
      .string()
      .regex(/^[a-z_]{1,64}$/, 'a short code of a-z and _, e.g. patient_refused_photo')
      .meta({ description: 'Why, as a short code: e.g. `patient_refused_photo`.' }),
  }),
  response: CodeSentSchema,
  status: 200,
  errors: ['session_not_found', 'session_finished', 'code_already_sent', 'code_attempts_exceeded', 'sms_unavailable'],
});

const codeSpec = defineRoute({
  summary: 'Check the six-digit code the patient received',
  description:
    'A right code finishes the session with `match` by method `code`. A wrong one answers 422 `code_invalid` with ' +
    '`error.attemptsLeft`; the last allowed wrong entry (CODE_ATTEMPTS_MAX) answers 429 `code_locked_out` and ends ' +
    'the session `locked_out`. Too many wrong codes for the patient or the workstation within ' +
    'CODE_FAILURES_WINDOW_MIN: 429 `code_attempts_exceeded` with Retry-After.',
  tags: ['sessions'],
  params: SessionParams,
  body: z.object({
    code: z
      .string()
      .regex(/^\d{6}$/, 'the code is exactly 6 digits')
      .meta({ description: 'Six digits, e.g. "042137".' }),
  }),
  response: z.object({
    sessionId: z.string(),
    verdict: z.object({
      result: z.string(),
      method: z.string(),
      createdAt: z.string(),
    }),
  }),
  status: 200,
  errors: [
    'session_not_found',
    'session_finished',
    'code_not_requested',
    'code_invalid',
    'code_expired',
    'code_used',
    'code_locked_out',
    'code_attempts_exceeded',
  ],
});

const resendSpec = defineRoute({
  summary: 'Send the code again (the SMS did not arrive)',
  description:
    'Sends a new six-digit code for a session on the code path: the previous code stops working, the new one is ' +
    'valid CODE_TTL_S seconds, and the wrong entries so far still count towards CODE_ATTEMPTS_MAX. At most ' +
    'CODE_RESENDS_MAX times per session (then 429 `code_resend_limit`: start a new session).',
  tags: ['sessions'],
  params: SessionParams,
  response: CodeSentSchema.extend({
    resendsLeft: z.number().int().meta({ description: 'How many more times the code can be sent again.' }),
  }),
  status: 200,
  errors: [
    'session_not_found',
    'session_finished',
    'code_not_requested',
    'code_used',
    'code_resend_limit',
    'code_attempts_exceeded',
    'sms_unavailable',
  ],
});

/** Thin HTTP edge of the code path; the policy is CodePathService's. */
@Controller('sessions')
@WorkstationAuth()
export class CodePathController {
  constructor(private readonly codePath: CodePathService) {}

  @Post(':id/refusal')
  @ApiRoute(refusalSpec)
  async refuse(@CurrentPrincipal() principal: Principal, @Input() input: RouteInput<typeof refusalSpec>) {
    const sent = await this.codePath.refuse(principal, input.params.id, input.body.reason);
    return { sessionId: sent.sessionId, state: sent.state, codeExpiresAt: sent.codeExpiresAt.toISOString() };
  }

  @Post(':id/code/resend')
  @ApiRoute(resendSpec)
  async resend(@CurrentPrincipal() principal: Principal, @Input() input: RouteInput<typeof resendSpec>) {
    const sent = await this.codePath.resend(principal, input.params.id);
    return {
      sessionId: sent.sessionId,
      state: sent.state,
      codeExpiresAt: sent.codeExpiresAt.toISOString(),
      resendsLeft: sent.resendsLeft,
    };
  }

  @Post(':id/code')
  @ApiRoute(codeSpec)
  async code(@CurrentPrincipal() principal: Principal, @Input() input: RouteInput<typeof codeSpec>) {
    const v = await this.codePath.verify(principal, input.params.id, input.body.code);
    return {
      sessionId: v.sessionId,
      verdict: { result: v.result, method: v.method, createdAt: v.createdAt.toISOString() },
    };
  }
}
