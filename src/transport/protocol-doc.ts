/**
 * Fills the generated blocks of docs/protocol.md from the protocol's own schemas and constants, so the document
 * cannot drift from the code (`npx ts-node --transpile-only scripts/protocol-doc.ts`; a test checks it is current).
 * Prose lives in the markdown; only the parts between `<!-- BEGIN GENERATED: name -->` and
 * `<!-- END GENERATED: name -->` are rewritten.
 */
import { z } from 'zod';
import {
  CLIENT_MESSAGES,
  FRAME_FORMATS,
  FRAME_OUTCOME_DESCRIPTIONS,
  GUIDANCE_DESCRIPTIONS,
  LIMIT_ERROR_DESCRIPTIONS,
  LIVENESS_REASON_DESCRIPTIONS,
  MAX_TEXT_MESSAGE,
  PROTOCOL_ERROR_DESCRIPTIONS,
  SERVER_MESSAGES,
  WS_CLOSE,
  WS_CLOSE_DESCRIPTIONS,
  type WsCloseName,
} from './protocol';

type MessageSchema = (typeof CLIENT_MESSAGES)[number] | (typeof SERVER_MESSAGES)[number];

const FORMAT_NOTES: Record<(typeof FRAME_FORMATS)[number], string> = {
  jpeg: 'baseline JPEG (progressive or arithmetic-coded: `frame_too_complex`); width and height 0 (the JPEG carries its size)',
  rgba: 'width x height x 4 bytes, row-major, no padding',
  bgr: 'width x height x 3 bytes, row-major, no padding',
  i420: 'even width and height; planar Y (width x height), then U, then V (each width/2 x height/2): width x height x 1.5 bytes',
};

function table(head: string[], rows: string[][]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  return [
    `| ${head.join(' | ')} |`,
    `|${head.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

function messageSection(schema: MessageSchema, io: 'input' | 'output'): string {
  const type = schema.shape.type.value;
  const kind = 'kind' in schema.shape ? ` (kind \`${schema.shape.kind.value}\`)` : '';
  const json = z.toJSONSchema(schema, { io }) as Record<string, unknown>;
  delete json.$schema;
  const description = String(json.description ?? '');
  delete json.description;
  return [`#### \`${type}\`${kind}`, '', description, '', '```json', JSON.stringify(json, null, 2), '```'].join('\n');
}

const BLOCKS: Record<string, () => string> = {
  'frame-formats': () =>
    table(
      ['byte 3', 'format', 'frame bytes'],
      FRAME_FORMATS.map((f, i) => [String(i), `\`${f}\``, FORMAT_NOTES[f]]),
    ),
  'client-messages': () =>
    [
      `At most ${MAX_TEXT_MESSAGE} characters each. Unknown fields are ignored; an unknown \`type\` is \`protocol_bad_message\`.`,
      ...CLIENT_MESSAGES.map((s) => messageSection(s, 'input')),
    ].join('\n\n'),
  'server-messages': () => SERVER_MESSAGES.map((s) => messageSection(s, 'output')).join('\n\n'),
  'frame-outcomes': () =>
    table(
      ['outcome', 'what became of the frame'],
      Object.entries(FRAME_OUTCOME_DESCRIPTIONS).map(([outcome, text]) => [`\`${outcome}\``, text]),
    ),
  'guidance-codes': () =>
    table(
      ['code', 'tell the patient'],
      Object.entries(GUIDANCE_DESCRIPTIONS).map(([code, text]) => [`\`${code}\``, text]),
    ),
  'liveness-reasons': () =>
    table(
      ['reason', 'meaning'],
      Object.entries(LIVENESS_REASON_DESCRIPTIONS).map(([code, text]) => [`\`${code}\``, text]),
    ),
  'protocol-errors': () =>
    table(
      ['code', 'meaning'],
      Object.entries(PROTOCOL_ERROR_DESCRIPTIONS).map(([code, text]) => [`\`${code}\``, text]),
    ),
  'limit-errors': () =>
    table(
      ['code', 'meaning'],
      Object.entries(LIMIT_ERROR_DESCRIPTIONS).map(([code, text]) => [`\`${code}\``, text]),
    ),
  'close-codes': () =>
    table(
      ['code', 'name', 'meaning'],
      (Object.entries(WS_CLOSE) as [WsCloseName, number][])
        .sort((a, b) => a[1] - b[1])
        .map(([name, code]) => [String(code), `\`${name}\``, WS_CLOSE_DESCRIPTIONS[name]]),
    ),
};

/** Returns `markdown` with every generated block re-rendered. Throws on a missing or unknown block. */
export function renderProtocolDoc(markdown: string): string {
  const seen = new Set<string>();
  const out = markdown.replace(
    /(<!-- BEGIN GENERATED: ([a-z-]+) -->\n)[\s\S]*?(<!-- END GENERATED: \2 -->)/g,
    (_all, begin: string, name: string, end: string) => {
      const render = BLOCKS[name];
      if (!render) throw new Error(`docs/protocol.md: unknown generated block '${name}'`);
      seen.add(name);
      return `${begin}${render()}\n${end}`;
    },
  );
  const missing = Object.keys(BLOCKS).filter((b) => !seen.has(b));
  if (missing.length) throw new Error(`docs/protocol.md lacks generated blocks: ${missing.join(', ')}`);
  return out;
}
