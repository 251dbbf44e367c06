// Original file: proto/aftersmtp.proto


export interface QueueListRequest {
  'state'?: (string);
}

export interface QueueListRequest__Output {
  'state': (string);
}
