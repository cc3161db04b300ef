import { Global, Module } from '@nestjs/common';
import { AdminClinicsController, AdminMisClientsController, AdminWorkstationsController } from './admin.controller';
import { AdminGuard } from './admin-auth';
import { KeysService } from './keys.service';

/**
 * Workstation and MIS client keys: their lifecycle (KeysService, also used by /mis/keys/rotate and the admin CLI) and
 * the operator's HTTP routes under /admin (ADMIN_TOKEN). Global, so the events WebSocket can hear of revocations.
 */
@Global()
@Module({
  controllers: [AdminClinicsController, AdminWorkstationsController, AdminMisClientsController],
  providers: [KeysService, AdminGuard],
  exports: [KeysService],
})
export class KeysModule {}
