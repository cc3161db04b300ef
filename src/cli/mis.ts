import { createCommand, listCommand, revokeCommand, rotateCommand } from './keys';
import type { CommandGroup } from './main';

const create = createCommand(
  'mis_client',
  `Creates a hospital information system client of the clinic and prints its API key, fid_mis_..., this once: only
its hash is stored. With it the MIS reads the clinic's events (WebSocket, GET /events), manages webhooks and reads
GET /stats.`,
);

const list = listCommand(
  'mis_client',
  'list',
  `Lists the clinic's MIS clients, oldest first: id, state (active or revoked), created, last rotation, previous keys
still in their grace, name. Keys are never shown (only their hashes are stored).`,
);

const rotate = rotateCommand('mis_client');

const revoke = revokeCommand('mis_client', 'Webhook subscriptions belong to the clinic and are not affected.');

export const misGroup: CommandGroup = {
  name: 'mis',
  summary: 'Create, rotate, revoke and list MIS client keys (admin, on the service database).',
  subcommands: [create, rotate, revoke, list],
};
