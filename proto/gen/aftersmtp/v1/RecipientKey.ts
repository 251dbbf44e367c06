// Original file: proto/aftersmtp.proto


export interface RecipientKey {
  /**
   * DID URL of the recipient's X25519 keyAgreement key
   */
  'keyId'?: (string);
  /**
   * HPKE encapsulated key (32 bytes)
   */
  'enc'?: (Buffer | Uint8Array | string);
  /**
   * HPKE-sealed content key (48 bytes)
   */
  'wrapped'?: (Buffer | Uint8Array | string);
}

export interface RecipientKey__Output {
  /**
   * DID URL of the recipient's X25519 keyAgreement key
   */
  'keyId': (string);
  /**
   * HPKE encapsulated key (32 bytes)
   */
  'enc': (Buffer);
  /**
   * HPKE-sealed content key (48 bytes)
   */
  'wrapped': (Buffer);
}
