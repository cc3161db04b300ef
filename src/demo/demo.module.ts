import { Module } from '@nestjs/common';
import { DemoController } from './demo.controller';

/** Serves the demo page (`/`) and the browser client module (`/client/faceid-client.js`) from client/. */
@Module({ controllers: [DemoController] })
export class DemoModule {}
