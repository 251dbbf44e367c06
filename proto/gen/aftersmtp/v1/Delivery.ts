// Original file: proto/aftersmtp.proto

import type { Envelope as _aftersmtp_v1_Envelope, Envelope__Output as _aftersmtp_v1_Envelope__Output } from '../../aftersmtp/v1/Envelope.ts';
import type { Receipt as _aftersmtp_v1_Receipt, Receipt__Output as _aftersmtp_v1_Receipt__Output } from '../../aftersmtp/v1/Receipt.ts';
import type { Long } from '@grpc/proto-loader';

export interface Delivery {
  'seq'?: (number | string | Long);
  'envelope'?: (_aftersmtp_v1_Envelope | null);
  'receivedMs'?: (number | string | Long);
  'receipt'?: (_aftersmtp_v1_Receipt | null);
  /**
   * Acknowledgements that are now durable on the node. A frame with seq = 0 and no envelope carries only
   * these; a client that has seen its ack confirmed will never get that delivery again.
   */
  'confirmedAcks'?: (number | string | Long)[];
  /**
   * Who vouched for the sender's address (docs/PROTOCOL.md §4 "Sender binding"): the address the node
   * authenticated (the submitting mailbox's token) or that the sending node vouched for in its relay
   * frame; empty when nobody vouched for a full address.
   */
  'authenticatedSender'?: (string);
  /**
   * The sender's mail domain as the node authenticated it or the sending node vouched for it (the relay
   * frame's sender_domain, checked against that node's route); empty when nobody vouched.
   */
  'senderDomain'?: (string);
  /**
   * Labels the node's compliance rules put on the message (`tag` rules; docs/OPERATIONS.md "Compliance rules").
   */
  'labels'?: (string)[];
}

export interface Delivery__Output {
  'seq': (number);
  'envelope': (_aftersmtp_v1_Envelope__Output | null);
  'receivedMs': (number);
  'receipt': (_aftersmtp_v1_Receipt__Output | null);
  /**
   * Acknowledgements that are now durable on the node. A frame with seq = 0 and no envelope carries only
   * these; a client that has seen its ack confirmed will never get that delivery again.
   */
  'confirmedAcks': (number)[];
  /**
   * Who vouched for the sender's address (docs/PROTOCOL.md §4 "Sender binding"): the address the node
   * authenticated (the submitting mailbox's token) or that the sending node vouched for in its relay
   * frame; empty when nobody vouched for a full address.
   */
  'authenticatedSender': (string);
  /**
   * The sender's mail domain as the node authenticated it or the sending node vouched for it (the relay
   * frame's sender_domain, checked against that node's route); empty when nobody vouched.
   */
  'senderDomain': (string);
  /**
   * Labels the node's compliance rules put on the message (`tag` rules; docs/OPERATIONS.md "Compliance rules").
   */
  'labels': (string)[];
}
