// Original file: proto/aftersmtp.proto


export interface PublishReply {
}

export interface PublishReply__Output {
}
