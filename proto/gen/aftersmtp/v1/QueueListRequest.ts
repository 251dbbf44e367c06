// Original file: /work/main/proto/aftersmtp.proto


export interface QueueListRequest {
  'state'?: (string);
}

export interface QueueListRequest__Output {
  'state': (string);
}
