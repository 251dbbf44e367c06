// Original file: proto/aftersmtp.proto


export interface CosignReply {
  'cosignatureLine'?: (string);
}

export interface CosignReply__Output {
  'cosignatureLine': (string);
}
