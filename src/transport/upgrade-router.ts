/**
 * The one 'upgrade' listener on the HTTP server: each WebSocket endpoint registers its path here, and an upgrade
 * request goes to the endpoint of its path, or is answered 404. No endpoint knows any other's path.
 */
import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { splitUrl } from './handshake';

/** Takes an upgrade request for its path (the socket's 'error' is already handled). */
export type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

const NOT_FOUND = 'HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n';

export class UpgradeRouter {
  private readonly routes = new Map<string, UpgradeHandler>();
  private attached = false;

  constructor(private readonly server: Server) {}

  /** Routes upgrades for `path` (exact, without the query) to `handler`. Returns the function that removes it. */
  route(path: string, handler: UpgradeHandler): () => void {
    if (this.routes.has(path)) throw new Error(`Two WebSocket endpoints for the path ${path}.`);
    this.routes.set(path, handler);
    return () => {
      if (this.routes.get(path) === handler) this.routes.delete(path);
    };
  }

  /** The paths routed now. */
  paths(): string[] {
    return [...this.routes.keys()];
  }

  /** Starts taking the server's upgrades. Idempotent. */
  attach(): void {
    if (this.attached) return;
    this.server.on('upgrade', this.onUpgrade);
    this.attached = true;
  }

  /** Stops taking them (Node then drops upgrade requests, with no listener). Idempotent. */
  detach(): void {
    if (!this.attached) return;
    this.server.off('upgrade', this.onUpgrade);
    this.attached = false;
  }

  private readonly onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy()); // a reset during the handshake must not crash the process
    const handler = this.routes.get(splitUrl(req.url ?? '').path);
    if (!handler) {
      socket.end(NOT_FOUND);
      return;
    }
    handler(req, socket, head);
  };
}
