import { Module } from '@nestjs/common';
import { AuditModule } from '../audit/audit.module';
import { AuthModule } from '../auth/auth.module';
import { AdminClinicsController, AdminMisClientsController, AdminWorkstationsController } from './admin.controller';
import { AdminGuard } from './admin-auth';
import { ClinicsService } from './clinics.service';
import { KeysService } from './keys.service';

/**
 * Workstation and MIS client keys: their lifecycle (KeysService, also used by /mis/keys/rotate and the admin CLI) and
 * the operator's HTTP routes under /admin (ADMIN_TOKEN). The events module imports it to hear of revocations.
 */
@Module({
  // Auth: the admin guard counts wrong tokens with the shared rate limiter; audit: the admin routes record listings.
  imports: [AuthModule, AuditModule],
  controllers: [AdminClinicsController, AdminWorkstationsController, AdminMisClientsController],
  providers: [KeysService, ClinicsService, AdminGuard],
  exports: [KeysService],
})
export class KeysModule {}
