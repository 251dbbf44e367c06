// Original file: proto/aftersmtp.proto


export interface ResolveRequest {
  'did'?: (string);
  /**
   * alternatively: a mailbox address hosted by this node
   */
  'address'?: (string);
}

export interface ResolveRequest__Output {
  'did': (string);
  /**
   * alternatively: a mailbox address hosted by this node
   */
  'address': (string);
}
