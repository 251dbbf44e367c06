// Original file: proto/aftersmtp.proto


export interface PublishRequest {
  'documentJson'?: (string);
}

export interface PublishRequest__Output {
  'documentJson': (string);
}
