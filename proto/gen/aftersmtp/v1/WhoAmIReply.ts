// Original file: proto/aftersmtp.proto


export interface WhoAmIReply {
  'address'?: (string);
  'did'?: (string);
  'nodeDid'?: (string);
}

export interface WhoAmIReply__Output {
  'address': (string);
  'did': (string);
  'nodeDid': (string);
}
