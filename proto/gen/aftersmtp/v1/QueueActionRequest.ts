// Original file: proto/aftersmtp.proto


export interface QueueActionRequest {
  /**
   * retry | hold | release | purge
   */
  'action'?: (string);
  'messageId'?: (Buffer | Uint8Array | string);
  /**
   * empty = every recipient of the message
   */
  'recipient'?: (string);
  /**
   * Instead of message_id: every recipient still waiting (queued, deferred, held) for this domain, or for
   * every domain with "*" (a flush after a peer's outage, a hold on a domain under investigation).
   */
  'domain'?: (string);
}

export interface QueueActionRequest__Output {
  /**
   * retry | hold | release | purge
   */
  'action': (string);
  'messageId': (Buffer);
  /**
   * empty = every recipient of the message
   */
  'recipient': (string);
  /**
   * Instead of message_id: every recipient still waiting (queued, deferred, held) for this domain, or for
   * every domain with "*" (a flush after a peer's outage, a hold on a domain under investigation).
   */
  'domain': (string);
}
