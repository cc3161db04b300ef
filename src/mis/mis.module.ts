import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { KeysModule } from '../keys/keys.module';
import { MisController } from './mis.controller';
import { MisClientsService } from './mis-clients.service';

/** MIS clients: `/mis/me`, key rotation (through the key lifecycle), and the service the admin CLI uses too. */
@Module({
  imports: [AuthModule, KeysModule],
  controllers: [MisController],
  providers: [MisClientsService],
  exports: [MisClientsService],
})
export class MisModule {}
