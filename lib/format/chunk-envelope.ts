/**
 * The chunk/blob envelope's header layout, re-exported from lib/codec/envelope.ts, the one module
 * that encodes and decodes envelopes (layer L1). Kept so that existing imports keep working; new
 * code imports lib/codec/envelope.ts.
 */
export {
  ENVELOPE_HEADER_SIZE,
  MAX_RAW_SIZE,
  FLAG_COMPRESSED,
  FLAG_ENCRYPTED,
  envelopeSubject,
  encodeEnvelopeHeader,
  parseEnvelope,
  type EnvelopeCorruptCode,
  type ParseEnvelopeOptions,
  type Envelope,
  type EnvelopeHeaderInput,
} from '../codec/envelope.js';
