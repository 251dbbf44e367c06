// Original file: proto/aftersmtp.proto


export interface PeersRequest {
}

export interface PeersRequest__Output {
}
