// Original file: proto/aftersmtp.proto


export interface ReleaseReply {
  /**
   * held deliveries of the message to be released (the node does so within a second)
   */
  'released'?: (number);
}

export interface ReleaseReply__Output {
  /**
   * held deliveries of the message to be released (the node does so within a second)
   */
  'released': (number);
}
