// Original file: proto/aftersmtp.proto


export interface SubmitError {
  /**
   * machine-readable, e.g. NOT_FOUND, ALREADY_EXISTS
   */
  'code'?: (string);
  /**
   * the gRPC status code this error maps to
   */
  'status'?: (number);
  'message'?: (string);
}

export interface SubmitError__Output {
  /**
   * machine-readable, e.g. NOT_FOUND, ALREADY_EXISTS
   */
  'code': (string);
  /**
   * the gRPC status code this error maps to
   */
  'status': (number);
  'message': (string);
}
