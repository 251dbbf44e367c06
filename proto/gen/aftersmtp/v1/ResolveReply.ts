// Original file: proto/aftersmtp.proto


export interface ResolveReply {
  'did'?: (string);
  'documentJson'?: (string);
}

export interface ResolveReply__Output {
  'did': (string);
  'documentJson': (string);
}
