// Original file: proto/aftersmtp.proto

import type { Envelope as _aftersmtp_v1_Envelope, Envelope__Output as _aftersmtp_v1_Envelope__Output } from '../../aftersmtp/v1/Envelope.ts';
import type { RelayAck as _aftersmtp_v1_RelayAck, RelayAck__Output as _aftersmtp_v1_RelayAck__Output } from '../../aftersmtp/v1/RelayAck.ts';
import type { RelayHello as _aftersmtp_v1_RelayHello, RelayHello__Output as _aftersmtp_v1_RelayHello__Output } from '../../aftersmtp/v1/RelayHello.ts';
import type { Long } from '@grpc/proto-loader';

export interface RelayFrame {
  'envelope'?: (_aftersmtp_v1_Envelope | null);
  'ack'?: (_aftersmtp_v1_RelayAck | null);
  'frameId'?: (number | string | Long);
  'hello'?: (_aftersmtp_v1_RelayHello | null);
  /**
   * With an envelope: the mail domain of its sender, vouched for by the sending node; it must be a
   * domain that node serves (docs/PROTOCOL.md "Relay").
   */
  'senderDomain'?: (string);
  /**
   * With an envelope: the sender's mailbox address, vouched for by the sending node (it authenticated
   * the mailbox that submitted it); its domain must be sender_domain. Empty: only the domain is vouched for.
   */
  'senderAddress'?: (string);
  'kind'?: "envelope"|"ack"|"hello";
}

export interface RelayFrame__Output {
  'envelope'?: (_aftersmtp_v1_Envelope__Output | null);
  'ack'?: (_aftersmtp_v1_RelayAck__Output | null);
  'frameId': (number);
  'hello'?: (_aftersmtp_v1_RelayHello__Output | null);
  /**
   * With an envelope: the mail domain of its sender, vouched for by the sending node; it must be a
   * domain that node serves (docs/PROTOCOL.md "Relay").
   */
  'senderDomain': (string);
  /**
   * With an envelope: the sender's mailbox address, vouched for by the sending node (it authenticated
   * the mailbox that submitted it); its domain must be sender_domain. Empty: only the domain is vouched for.
   */
  'senderAddress': (string);
  'kind'?: "envelope"|"ack"|"hello";
}
