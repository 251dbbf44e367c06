// The node's provenance: its transparency log (NodeLedger), anchoring checkpoints on a chain, and proof
// bundles with their offline verification. Built on the ledger/ module, which knows nothing of the node.
export { NodeAnchoring, checkAnchorOnChain } from './anchoring.ts';
export { NodeLedger, type AnchorState } from './ledger.ts';
export { verifyProofBundle, type ProofBundle } from './proof.ts';
