// Original file: /work/main/proto/aftersmtp.proto


export interface QueueActionReply {
  'affected'?: (number);
}

export interface QueueActionReply__Output {
  'affected': (number);
}
