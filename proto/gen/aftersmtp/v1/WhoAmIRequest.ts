// Original file: proto/aftersmtp.proto


export interface WhoAmIRequest {
}

export interface WhoAmIRequest__Output {
}
