/**
 * HTTP/2 wire-level helpers (docs/TRANSPORT.md §4): the node:http2 constants, gRPC statuses and
 * headers, session settings and memory limits, and the reading of a PeerAuth stream.
 */
import http2 from 'node:http2';
import { TransportError } from './errors.ts';
import { FrameDecoder } from './framing.ts';
import { PEER_AUTH_BYTES } from './peer-auth.ts';
import type { TransportLimits } from './types.ts';

export const {
  NGHTTP2_NO_ERROR,
  NGHTTP2_PROTOCOL_ERROR,
  NGHTTP2_CANCEL,
  NGHTTP2_REFUSED_STREAM,
  NGHTTP2_ENHANCE_YOUR_CALM,
  HTTP2_HEADER_METHOD,
  HTTP2_HEADER_PATH,
  HTTP2_HEADER_STATUS,
  HTTP2_HEADER_CONTENT_TYPE,
} = http2.constants;

export const GRPC_CONTENT_TYPE = 'application/grpc';
export const ERROR_CODE_HEADER = 'aftersmtp-error';
/** gRPC status codes used in trailers. */
export const GRPC_STATUS = { OK: 0, CANCELLED: 1, UNKNOWN: 2, RESOURCE_EXHAUSTED: 8, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16 } as const;

export function grpcStatusFor(code: string): number {
  switch (code) {
    case 'MESSAGE_TOO_LARGE':
    case 'STREAM_REFUSED':
      return GRPC_STATUS.RESOURCE_EXHAUSTED;
    case 'PROTOCOL_ERROR':
      return GRPC_STATUS.INTERNAL;
    case 'CANCELLED':
    case 'ABORTED':
      return GRPC_STATUS.CANCELLED;
    default:
      return GRPC_STATUS.UNKNOWN;
  }
}

/** gRPC percent-encodes grpc-message. */
export function encodeGrpcMessage(s: string): string {
  return encodeURIComponent(s.slice(0, 512));
}

export function decodeGrpcMessage(s: unknown): string | undefined {
  if (typeof s !== 'string') return undefined;
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

export function headerString(h: http2.IncomingHttpHeaders | undefined, name: string): string | undefined {
  const v = h?.[name];
  return Array.isArray(v) ? v[0] : v;
}

export function sessionSettings(limits: TransportLimits): http2.Settings {
  return {
    enablePush: false,
    initialWindowSize: limits.streamWindowBytes,
    maxConcurrentStreams: limits.maxConcurrentStreams,
    maxFrameSize: 64 * 1024,
  };
}

/** Connection-level window: generous (per-stream windows bound the memory), avoids head-of-line blocking. */
export function connectionWindow(limits: TransportLimits): number {
  return Math.min(0x7fff_ffff, limits.streamWindowBytes * (limits.maxConcurrentStreams + 1));
}

/** node's per-session memory cap (MB): buffered data of every stream must fit. */
export function maxSessionMemoryMb(limits: TransportLimits): number {
  return Math.ceil((2 * limits.streamWindowBytes * (limits.maxConcurrentStreams + 1)) / 2 ** 20) + 32;
}

// ---------------------------------------------------------------------------------------------
// Handshake helpers
// ---------------------------------------------------------------------------------------------

/** Reads one PeerAuth message from an auth stream (plus, for the client, the trailers' grpc-status). */
export function readPeerAuth(raw: http2.Http2Stream, side: 'client' | 'server'): Promise<Uint8Array> {
  return new Promise<Uint8Array>((resolve, reject) => {
    const decoder = new FrameDecoder({ maxMessageBytes: PEER_AUTH_BYTES, allowedControl: new Set(), allowMessages: true });
    const messages: Uint8Array[] = [];
    let trailers: http2.IncomingHttpHeaders | undefined;
    let response: http2.IncomingHttpHeaders | undefined;
    const fail = (err: TransportError): void => {
      reject(err);
      if (!raw.closed) raw.close(NGHTTP2_CANCEL);
    };
    raw.on('data', (chunk: Buffer) => {
      try {
        decoder.push(chunk, (f) => messages.push(f.payload));
      } catch (err) {
        fail(new TransportError('AUTH_FAILED', 'malformed PeerAuth', { cause: err }));
      }
      if (messages.length > 1) fail(new TransportError('AUTH_FAILED', 'more than one PeerAuth message'));
    });
    if (side === 'client') {
      (raw as http2.ClientHttp2Stream).on('response', (h) => {
        response = h;
      });
      (raw as http2.ClientHttp2Stream).on('trailers', (h) => {
        trailers = h;
      });
    }
    raw.on('end', () => {
      if (side === 'client') {
        const status = headerString(trailers, 'grpc-status') ?? headerString(response, 'grpc-status');
        if (status !== '0') {
          const why = decodeGrpcMessage(headerString(trailers ?? response, 'grpc-message')) ?? 'no status';
          reject(new TransportError('AUTH_FAILED', `the peer rejected our authentication (grpc-status ${status}: ${why})`, { remote: true }));
          return;
        }
      }
      if (messages.length !== 1 || decoder.midFrame) {
        reject(new TransportError('AUTH_FAILED', 'PeerAuth stream did not carry exactly one message'));
        return;
      }
      resolve(messages[0]!);
    });
    raw.on('error', () => {});
    raw.on('close', () => reject(new TransportError('AUTH_FAILED', `PeerAuth stream closed early (code ${raw.rstCode})`)));
  });
}

