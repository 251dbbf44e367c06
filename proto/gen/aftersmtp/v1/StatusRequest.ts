// Original file: proto/aftersmtp.proto


export interface StatusRequest {
}

export interface StatusRequest__Output {
}
