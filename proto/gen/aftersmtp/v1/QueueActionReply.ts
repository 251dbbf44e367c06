// Original file: proto/aftersmtp.proto


export interface QueueActionReply {
  'affected'?: (number);
}

export interface QueueActionReply__Output {
  'affected': (number);
}
