// Original file: proto/aftersmtp.proto

import type { Peer as _aftersmtp_v1_Peer, Peer__Output as _aftersmtp_v1_Peer__Output } from '../../aftersmtp/v1/Peer.ts';

export interface PeersReply {
  'peers'?: (_aftersmtp_v1_Peer)[];
}

export interface PeersReply__Output {
  'peers': (_aftersmtp_v1_Peer__Output)[];
}
