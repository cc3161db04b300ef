// Hospital information system clients: their account endpoints and key management.
export { MisModule } from './mis.module';
export { MisClientsService, type RotatedMisKey } from './mis-clients.service';
