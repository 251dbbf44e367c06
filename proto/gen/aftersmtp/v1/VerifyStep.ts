// Original file: proto/aftersmtp.proto


export interface VerifyStep {
  'name'?: (string);
  /**
   * ok | failed | skipped
   */
  'status'?: (string);
  'detail'?: (string);
}

export interface VerifyStep__Output {
  'name': (string);
  /**
   * ok | failed | skipped
   */
  'status': (string);
  'detail': (string);
}
