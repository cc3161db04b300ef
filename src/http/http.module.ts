import { Module } from '@nestjs/common';
import { APP_FILTER, DiscoveryModule } from '@nestjs/core';
import { DocsController } from './docs.controller';
import { ErrorFilter } from './exception.filter';
import { OpenApiService } from './openapi';
import { RouteInterceptor } from './route';

/** The error filter (global, HTTP only), `GET /openapi.json` and `GET /docs`. */
@Module({
  imports: [DiscoveryModule],
  controllers: [DocsController],
  providers: [{ provide: APP_FILTER, useClass: ErrorFilter }, OpenApiService, RouteInterceptor],
  exports: [OpenApiService],
})
export class HttpModule {}
