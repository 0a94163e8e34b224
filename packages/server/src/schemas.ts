/**
 * JSON Schemas from `api/`, compiled once at start. Client frames are validated per type so an
 * error can name the frame and the field that is wrong.
 */
import { Ajv, type ValidateFunction } from 'ajv';
import { ErrorCode } from '@herald/protocol';
import type { ClientFrame } from '@herald/protocol';
import { clientFramesSchema, envelopeSchema } from '@herald/protocol/schemas';
import { HeraldError } from './errors.js';
import { exceedsJsonDepth } from './json-depth.js';

const FRAME_TYPES = ['connect', 'subscribe', 'unsubscribe', 'publish', 'request', 'response', 'ack', 'refresh', 'presence', 'presence_stats', 'ping', 'pong'] as const;

export class Schemas {
  readonly ajv = new Ajv({ allErrors: false, strict: false });
  private readonly frameValidators = new Map<string, ValidateFunction>();
  readonly envelope: ValidateFunction;

  /** `maxJsonDepth`: `limits.maxJsonDepth`; deeper frames are refused before they are parsed. */
  constructor(private readonly maxJsonDepth = 64) {
    this.ajv.addSchema(clientFramesSchema());
    this.ajv.addSchema(envelopeSchema());
    for (const t of FRAME_TYPES) this.frameValidators.set(t, this.ajv.getSchema(`herald:client-frames#/$defs/${t}`)!);
    this.envelope = this.ajv.getSchema('herald:envelope')!;
  }

  /** Parses and validates one text frame; throws a HeraldError with the documented code. */
  parseClientFrame(text: string): ClientFrame {
    if (exceedsJsonDepth(text, this.maxJsonDepth)) {
      throw new HeraldError(ErrorCode.INVALID_FRAME, `the frame nests objects and arrays deeper than limits.maxJsonDepth (${this.maxJsonDepth})`);
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new HeraldError(ErrorCode.INVALID_JSON, 'the frame is not valid JSON');
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new HeraldError(ErrorCode.INVALID_FRAME, 'a frame must be a JSON object with a "type"');
    }
    const type = (value as { type?: unknown }).type;
    const validate = typeof type === 'string' ? this.frameValidators.get(type) : undefined;
    if (!validate) {
      throw new HeraldError(ErrorCode.UNKNOWN_FRAME_TYPE, `unknown frame type ${JSON.stringify(type ?? null)}; expected one of ${FRAME_TYPES.join(', ')}`);
    }
    if (!validate(value)) {
      const e = validate.errors?.[0];
      const where = e?.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : '';
      const what = e?.params && 'additionalProperty' in e.params ? `unknown field "${String(e.params.additionalProperty)}"` : e?.message ?? 'invalid';
      throw new HeraldError(ErrorCode.INVALID_FRAME, `invalid ${type} frame: ${where ? `${where} ` : ''}${what}`, { field: where || undefined });
    }
    return value as ClientFrame;
  }

  /** Id of a frame that failed validation, when it had a usable one, so the error can name it. */
  static frameId(text: string): number | undefined {
    const m = /"id"\s*:\s*(\d{1,15})/.exec(text);
    return m ? Number(m[1]) : undefined;
  }
}
