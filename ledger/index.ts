/**
 * ledger: the node's provenance transparency log (RFC 9162 Merkle tree in C2SP tlog-tiles shape on
 * SQLite), signed checkpoints (C2SP tlog-checkpoint / signed-note) and witness cosignatures (C2SP
 * tlog-cosignature/v1). Knows nothing of SMTP or gRPC. Formats: docs/LEDGER.md.
 */
export { LedgerError, isLedgerError } from './errors.ts';
export type { LedgerErrorCode } from './errors.ts';

export { HASH_SIZE, bytesEqual, emptyRoot, leafHash, nodeHash, sha256 } from './hash.ts';

export {
  MemoryTree,
  consistencyProof,
  inclusionProof,
  rootFromInclusionProof,
  rootHash,
  verifyConsistency,
  verifyInclusion,
} from './proof.ts';
export type { HashSource } from './proof.ts';

export { TILE_HEIGHT, TILE_WIDTH, encodeTileIndex, entriesPath, parseTilePath, tilePath } from './tiles.ts';
export type { ParsedTilePath } from './tiles.ts';

export { LEAF_SIZE, LEAF_TYPES, LEAF_VERSION, decodeLeaf, encodeLeaf } from './leaf.ts';
export type { LeafRecord, LeafType } from './leaf.ts';

export { generateEd25519KeyPair } from './keys.ts';
export type { Ed25519KeyPair } from './keys.ts';

export {
  SIG_TYPE_COSIGNATURE_V1,
  SIG_TYPE_ED25519,
  addSignatures,
  ed25519NoteSigner,
  ed25519NoteVerifier,
  formatNote,
  formatSignatureLine,
  noteKeyId,
  openNote,
  parseNote,
  signNote,
} from './note.ts';
export type { NoteSignature, NoteSigner, NoteVerifier, OpenedNote, ParsedNote } from './note.ts';

export { formatVerifierKey, parseVerifierKey } from './vkey.ts';

export { formatCheckpoint, openCheckpoint, parseCheckpoint, signCheckpointNote } from './checkpoint.ts';
export type { Checkpoint, CheckpointCosignature, OpenCheckpointOptions, OpenedCheckpoint } from './checkpoint.ts';

export {
  cosignCheckpoint,
  cosignatureKeyId,
  cosignatureMessage,
  cosignatureTimestamp,
  cosignatureV1Verifier,
  verifyCosignature,
} from './cosignature.ts';
export type { CosignOptions, VerifyCosignatureOptions } from './cosignature.ts';

export { MAX_LEAF_BYTES, TransparencyLog } from './log.ts';
export type { SignCheckpointOptions, StoredCheckpoint, TransparencyLogOptions } from './log.ts';

// Substrate anchoring (optional; @polkadot/api is loaded only when used).
export * from './anchor.ts';
