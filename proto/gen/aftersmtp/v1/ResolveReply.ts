// Original file: proto/aftersmtp.proto


export interface ResolveReply {
  'did'?: (string);
  'documentJson'?: (string);
  /**
   * The address's domain has no AfterSMTP node: `did` and `document_json` are this node's own, whose key
   * agreement key is the bridge key. A message sealed to it is opened by this node and sent on over SMTP
   * (end-to-end encryption ends here; docs/BRIDGE.md "Sending to legacy domains").
   */
  'legacy'?: (boolean);
}

export interface ResolveReply__Output {
  'did': (string);
  'documentJson': (string);
  /**
   * The address's domain has no AfterSMTP node: `did` and `document_json` are this node's own, whose key
   * agreement key is the bridge key. A message sealed to it is opened by this node and sent on over SMTP
   * (end-to-end encryption ends here; docs/BRIDGE.md "Sending to legacy domains").
   */
  'legacy': (boolean);
}
