import * as fs from 'node:fs';
import * as path from 'node:path';
import { Controller, Get, Inject, Logger, NotFoundException, Param, Req, Res, type OnModuleInit } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import type { Request, Response } from 'express';
import { CONFIG, type Config } from '../config';
import { TransportService } from '../transport';

/** client/ at the repository root: two levels up from src/demo and from dist/demo alike. */
export const CLIENT_DIR = path.resolve(__dirname, '..', '..', 'client');

/** The only files served, by URL: relative path under client/ and content type. Nothing else is reachable. */
const FILES: Record<string, [file: string, type: string]> = {
  '/': ['demo/index.html', 'text/html; charset=utf-8'],
  '/client/faceid-client.js': ['faceid-client.js', 'text/javascript; charset=utf-8'],
  '/demo/demo.js': ['demo/demo.js', 'text/javascript; charset=utf-8'],
  '/demo/demo.css': ['demo/demo.css', 'text/css; charset=utf-8'],
  '/demo/i18n.js': ['demo/i18n.js', 'text/javascript; charset=utf-8'],
  '/demo/patient-view.js': ['demo/patient-view.js', 'text/javascript; charset=utf-8'],
  '/demo/patient-view.css': ['demo/patient-view.css', 'text/css; charset=utf-8'],
  '/demo/patient-screen.js': ['demo/patient-screen.js', 'text/javascript; charset=utf-8'],
  '/demo/favicon.svg': ['demo/favicon.svg', 'image/svg+xml'],
};

/**
 * The translation dictionaries, one JSON file per language (client/locales/<lang>.json, e.g. kk.json), by a language
 * tag of 2-3 lower-case letters: a new language's file is served without a change here. Nothing else is served from
 * client/locales.
 */
const LOCALE_URL = /^\/client\/locales\/([a-z]{2,3})\.json$/;

/** The file and content type of a URL, or undefined for anything not served. */
function servedFile(url: string): [file: string, type: string] | undefined {
  if (Object.prototype.hasOwnProperty.call(FILES, url)) return FILES[url];
  const locale = LOCALE_URL.exec(url);
  return locale ? [`locales/${locale[1]}.json`, 'application/json; charset=utf-8'] : undefined;
}

/** A host name or IP literal as it may appear in a CSP source (anything else is left out of the policy). */
const SAFE_HOST = /^(?:[a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])$/i;

/**
 * The Content-Security-Policy of the demo: the page's own origin only. No inline script or style, no eval, no
 * plugins, not framed. `connect-src 'self'` covers fetch and the same-origin WebSocket (ws: and wss: on the page's
 * host and port). With WS_TRANSPORT=uws the WebSocket listens on its own port (`uwsPort`), which is added for the
 * page's host name.
 */
export function demoCsp(uwsPort: number | null, hostname: string | undefined): string {
  let connect = "'self'";
  if (uwsPort && hostname && SAFE_HOST.test(hostname)) {
    connect += ` ws://${hostname}:${uwsPort} wss://${hostname}:${uwsPort}`;
  }
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "media-src 'self'",
    `connect-src ${connect}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/**
 * The demo page at `/` and the browser client module at `/client/faceid-client.js` (files from client/, served as
 * they are: plain HTML, CSS and ES modules, no build step). Public: the page asks for a workstation API key and
 * keeps it in sessionStorage.
 */
@Controller()
export class DemoController implements OnModuleInit {
  private readonly log = new Logger('Demo');

  constructor(
    @Inject(CONFIG) private readonly config: Config,
    private readonly moduleRef: ModuleRef,
  ) {}

  onModuleInit(): void {
    const missing = Object.values(FILES)
      .map(([file]) => file)
      .filter((file) => !fs.existsSync(path.join(CLIENT_DIR, file)));
    if (missing.length) this.log.warn(`Demo page files missing from ${CLIENT_DIR}: ${missing.join(', ')}`);
  }

  @Get()
  page(@Req() req: Request, @Res() res: Response): Promise<void> {
    return this.send('/', req, res);
  }

  @Get('client/faceid-client.js')
  client(@Req() req: Request, @Res() res: Response): Promise<void> {
    return this.send('/client/faceid-client.js', req, res);
  }

  @Get('client/locales/:file')
  locale(@Param('file') file: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    return this.send(`/client/locales/${file}`, req, res);
  }

  @Get('demo/:file')
  asset(@Param('file') file: string, @Req() req: Request, @Res() res: Response): Promise<void> {
    return this.send(`/demo/${file}`, req, res);
  }

  /** The uWS WebSocket port (its own; the listening one when WS_PORT_UWS is 0), or null with WS_TRANSPORT=ws. */
  private uwsPort(): number | null {
    if (this.config.WS_TRANSPORT !== 'uws') return null;
    try {
      const info = this.moduleRef.get(TransportService, { strict: false }).info();
      return info?.port || this.config.WS_PORT_UWS || null;
    } catch {
      return this.config.WS_PORT_UWS || null;
    }
  }

  private async send(url: string, req: Request, res: Response): Promise<void> {
    const entry = servedFile(url);
    if (!entry) throw new NotFoundException();
    const [file, type] = entry;
    res.setHeader('Content-Type', type);
    res.setHeader('Content-Security-Policy', demoCsp(this.uwsPort(), req.hostname));
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
    res.setHeader('Permissions-Policy', 'camera=(self), microphone=(), geolocation=()');
    res.setHeader('Cache-Control', 'no-cache');
    await new Promise<void>((resolve, reject) =>
      res.sendFile(file, { root: CLIENT_DIR, dotfiles: 'deny', headers: { 'Content-Type': type } }, (err?: Error) => {
        if (!err) resolve();
        else if ((err as NodeJS.ErrnoException).code === 'ENOENT') reject(new NotFoundException());
        else reject(err);
      }),
    );
  }
}
