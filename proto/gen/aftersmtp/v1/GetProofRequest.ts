// Original file: proto/aftersmtp.proto


export interface GetProofRequest {
  'messageId'?: (Buffer | Uint8Array | string);
  'messageHash'?: (Buffer | Uint8Array | string);
}

export interface GetProofRequest__Output {
  'messageId': (Buffer);
  'messageHash': (Buffer);
}
