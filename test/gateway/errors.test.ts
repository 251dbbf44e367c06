// Error codes and their gRPC status: the one mapping, for the node's own errors, identity/'s, and a peer's.
import { describe, it, expect } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { GatewayError, peerErrorCode, toGrpcError } from '../../gateway/core/index.ts';
import { IdentityError } from '../../identity/index.ts';

describe('error codes', () => {
  it('maps the node\'s codes and identity/\'s envelope checks to their status', () => {
    expect(toGrpcError(new GatewayError('STORAGE_FULL', 'full')).code).toBe(grpc.status.UNAVAILABLE);
    expect(toGrpcError(new GatewayError('PEER_REJECTED', 'no')).code).toBe(grpc.status.PERMISSION_DENIED);
    // A malformed envelope is INVALID_ARGUMENT whichever check found it (PROTOCOL.md "Errors").
    for (const code of ['SIGNATURE', 'KEY_ID_MISMATCH', 'RECIPIENTS_DIGEST'] as const) {
      const e = toGrpcError(new IdentityError(code, 'bad'));
      expect(e).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'bad' });
      expect(e.metadata.get('aftersmtp-error')).toEqual([code]);
    }
  });

  it('an error without a known code is INTERNAL and says nothing more', () => {
    const e = toGrpcError(Object.assign(new Error('SELECT * FROM secrets'), { code: 'ERR_SQLITE_ERROR' }));
    expect(e).toMatchObject({ code: grpc.status.INTERNAL, details: 'internal error' });
  });

  it('a peer\'s code is kept when it is one of ours, else PEER_ERROR', () => {
    expect(peerErrorCode('UNKNOWN_RECIPIENT')).toBe('UNKNOWN_RECIPIENT');
    expect(peerErrorCode('TIME_WINDOW')).toBe('TIME_WINDOW');
    expect(peerErrorCode('SOMETHING_NEWER')).toBe('PEER_ERROR');
    expect(peerErrorCode('toString')).toBe('PEER_ERROR');
    expect(peerErrorCode('X\r\n--b')).toBe('PEER_ERROR');
  });
});
