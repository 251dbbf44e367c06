// Original file: /work/main/proto/aftersmtp.proto


export interface WhoAmIRequest {
}

export interface WhoAmIRequest__Output {
}
