// HTTP/2 flow-control windows for the app-facing gRPC server and the app client (grpc-js).
//
// HTTP/2 starts every stream and connection with a 64 KiB receive window, and grpc-js keeps the server's
// at that size (grpc-node PR #3058, still open, adds an option). A sender may then have at most 64 KiB
// unacknowledged on a connection: a 50 KB envelope needs a WINDOW_UPDATE round trip through the busy
// receiver's event loop before the next one may leave, so a bulk SubmitStream or Subscribe runs at the
// speed of that round trip instead of the CPU's. Measured in bench:federation (50 KB, HTTP/2 relay):
// 314-349 msg/s with 64 KiB windows, 476-527 msg/s with 1 MiB per stream and 4 MiB per connection
// (DECISIONS 16).
import type * as grpc from '@grpc/grpc-js';
import type { Http2Session } from 'node:http2';
import type { EventEmitter } from 'node:events';

export interface FlowControlWindows {
  /** Per-stream receive window (SETTINGS_INITIAL_WINDOW_SIZE). */
  streamWindowBytes: number;
  /** Connection-level receive window, shared by all streams of one connection. */
  connectionWindowBytes: number;
}

/** HTTP/2's initial window (RFC 9113 §6.9.2); also the smallest one a node may configure. */
export const HTTP2_DEFAULT_WINDOW = 65_535;
/** The largest window HTTP/2 allows (2^31 - 1). */
export const HTTP2_MAX_WINDOW = 0x7fff_ffff;

/**
 * Channel option for grpc-js clients: the receive window of each stream and of the connection (grpc-js
 * uses one figure for both). 4 MiB lets a subscriber take its whole ack window of 50 KB deliveries in one
 * go; it is buffer room the node may fill, not memory allocated up front.
 */
export const CLIENT_FLOW_CONTROL_WINDOW = 4 * 1024 * 1024;

/**
 * Widens the receive windows of every HTTP/2 session the server accepts from now on. Call it after
 * `bindAsync`. grpc-js exposes no option for this on the server, so it reaches the HTTP/2 servers grpc-js
 * created (a private field); if a grpc-js upgrade moves that field the windows stay at 64 KiB, the node
 * still works, and this returns false so the caller can say so.
 */
export function widenServerWindows(server: grpc.Server, windows: FlowControlWindows): boolean {
  const http2Servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  if (!(http2Servers instanceof Map) || http2Servers.size === 0) return false;
  const servers = [...http2Servers.keys()] as unknown[];
  if (!servers.every((s) => typeof (s as EventEmitter | undefined)?.on === 'function')) return false;
  for (const http2Server of servers as EventEmitter[]) {
    http2Server.on('session', (session: Http2Session) => {
      try {
        // A SETTINGS change applies to the streams already open too (RFC 9113 §6.9.2).
        if (windows.streamWindowBytes !== HTTP2_DEFAULT_WINDOW) session.settings({ initialWindowSize: windows.streamWindowBytes });
        if (windows.connectionWindowBytes > HTTP2_DEFAULT_WINDOW) session.setLocalWindowSize(windows.connectionWindowBytes);
      } catch {
        // The session was torn down before we got to it (a client that connected and left at once).
        // Throwing here would escape from the HTTP/2 server's event and stop the node; there is nothing
        // left to widen.
      }
    });
  }
  return true;
}
