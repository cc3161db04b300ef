import { Module } from '@nestjs/common';
import { MisController } from './mis.controller';
import { MisClientsService } from './mis-clients.service';

/** MIS clients: `/mis/me`, key rotation, and the service the admin CLI uses too (storage, auth, audit are global). */
@Module({
  controllers: [MisController],
  providers: [MisClientsService],
  exports: [MisClientsService],
})
export class MisModule {}
