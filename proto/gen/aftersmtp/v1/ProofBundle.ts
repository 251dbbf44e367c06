// Original file: proto/aftersmtp.proto


export interface ProofBundle {
  /**
   * the self-contained proof bundle (docs/LEDGER.md)
   */
  'json'?: (string);
}

export interface ProofBundle__Output {
  /**
   * the self-contained proof bundle (docs/LEDGER.md)
   */
  'json': (string);
}
