// Original file: proto/aftersmtp.proto


export interface VerifyRequest {
  'bundleJson'?: (string);
}

export interface VerifyRequest__Output {
  'bundleJson': (string);
}
