// Original file: /work/main/proto/aftersmtp.proto


export interface PublishReply {
}

export interface PublishReply__Output {
}
