// Original file: proto/aftersmtp.proto


export interface LedgerStatusRequest {
}

export interface LedgerStatusRequest__Output {
}
