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
}
