import { Catch } from '@nestjs/common';
import { ErrorFilter } from '../http';
import { IdentificationError } from './errors';

/**
 * The shared error filter, plus `attemptsLeft` in the body of a wrong code: `{"error": {"code": "code_invalid",
 * "message", "attemptsLeft": 2}}`. The shared body has no room for extra fields, so the code routes add it here.
 */
@Catch()
export class CodePathErrorFilter extends ErrorFilter {
  override reply(exception: unknown): ReturnType<ErrorFilter['reply']> {
    const reply = super.reply(exception);
    if (exception instanceof IdentificationError && exception.attemptsLeft !== undefined) {
      (reply.body.error as Record<string, unknown>).attemptsLeft = exception.attemptsLeft;
    }
    return reply;
  }
}
