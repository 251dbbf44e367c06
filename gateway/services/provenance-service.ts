// The Provenance gRPC service: proofs, checkpoints and server-side verification of bundles.
import * as grpc from '@grpc/grpc-js';
import type { ProvenanceHandlers } from '../../proto/index.ts';
import { type DidResolver } from '../../identity/index.ts';
import type { Store } from '../store/index.ts';
import { verifyProofBundle, type NodeLedger, type AnchorState, type ProofBundle } from '../provenance/index.ts';
import { authenticateMailbox } from './mailbox-service.ts';
import { GatewayError, toGrpcError } from '../core/index.ts';

export interface ProvenanceDeps {
  storage: Store;
  ledger: NodeLedger;
  resolver: DidResolver;
  nodeDid: string;
  nodeKeyId: string;
  /** Anchoring status; absent when no chain is configured. */
  anchor?: () => { state?: AnchorState; endpoint: string; lagEntries: number; lagMs: number; lastError?: string };
  /** Witnessing, when federation runs: cosigned checkpoints for proofs, and the witness role. */
  witnessing?: {
    cosigned: (minSize: number) => { size: number; note: string } | undefined;
    cosign: (req: { note: string; oldSize: number; consistency: Uint8Array[]; logDid: string }) => Promise<string>;
    /** DIDs of the witnesses this node asks to cosign (known locally: no lookup). */
    witnesses: () => string[];
  };
}

export function provenanceHandlers(deps: ProvenanceDeps): ProvenanceHandlers {
  const { storage, ledger } = deps;
  return {
    GetProof: async (call, callback) => {
      try {
        // Proofs reveal only hashes, but the message id -> hash mapping is for the mailbox holders.
        const caller = authenticateMailbox(storage, call.metadata);
        const { messageId, messageHash } = call.request;
        let hash: Uint8Array | undefined = messageHash.length ? messageHash : undefined;
        if (!hash) {
          const index = messageId.length === 16 ? storage.logIndexOf(messageId, caller.address) : undefined;
          hash = typeof index === 'number' ? ledger.messageHashAt(index) : undefined;
          if (!hash) throw new GatewayError('NOT_FOUND', 'no single message with this id on this node (an id is known until its message expires, or while your mailbox holds it: ask by its message hash, which the log keeps; another message may reuse an id)');
        }
        const bundle = await ledger.proofBundle({ messageHash: hash, messageId: messageId.length ? messageId : undefined, nodeDid: deps.nodeDid, keyId: deps.nodeKeyId, anchor: deps.anchor?.().state, cosigned: deps.witnessing?.cosigned });
        callback(null, { json: JSON.stringify(bundle) });
      } catch (err) {
        callback(toGrpcError(err));
      }
    },
    // Anonymous: answers with the latest published checkpoint only. Signing one on demand would let
    // anyone make the node sign (and fsync) at will; the ledger signs on its own schedule.
    GetCheckpoint: (call, callback) => {
      const cp = ledger.latestCheckpoint();
      if (!cp || cp.size < call.request.minSize) {
        callback(toGrpcError(new GatewayError('NOT_FOUND', `no published checkpoint of size >= ${call.request.minSize} yet (one is signed within ledger.checkpointIntervalMs of growth)`)));
        return;
      }
      callback(null, { note: cp.note, size: cp.size, root: cp.root });
    },
    LedgerStatus: (_call, callback) => {
      const cp = ledger.latestCheckpoint();
      const anchor = deps.anchor?.();
      callback(null, {
        origin: ledger.origin,
        treeSize: ledger.log.size,
        root: ledger.log.root(),
        ...(cp ? { latestCheckpoint: { note: cp.note, size: cp.size, root: cp.root } } : {}),
        verifierKey: ledger.verifierKey,
        anchoring: anchor ? anchor.endpoint : 'off',
        latestAnchorJson: anchor?.state ? JSON.stringify(anchor.state) : '',
        anchorLagEntries: anchor ? anchor.lagEntries : 0,
        anchorLagMs: anchor ? anchor.lagMs : 0,
        lastAnchorError: anchor?.lastError ?? '',
        witnesses: deps.witnessing?.witnesses() ?? [],
      });
    },
    // Anonymous: taken only for logs of configured peers (a configured route for the origin's domain
    // names log_did), whose notes their keys sign. Peers normally use the federation transport
    // (federation/witness.ts), where the caller's key is checked as well.
    Cosign: (call, callback) => {
      const w = deps.witnessing;
      if (!w) {
        callback({ code: grpc.status.UNIMPLEMENTED, details: 'witnessing needs federation enabled' });
        return;
      }
      const r = call.request;
      w.cosign({ note: r.note, oldSize: Number(r.oldSize), consistency: r.consistency.map((b) => new Uint8Array(b)), logDid: r.logDid }).then(
        (line) => callback(null, { cosignatureLine: line }),
        (err: { knownSize?: number }) => {
          if (err.knownSize !== undefined) callback(null, { errorCode: 'CONFLICT', errorMessage: (err as Error).message, knownSize: err.knownSize });
          else callback(toGrpcError(err));
        },
      );
    },
    // A mailbox holder's check of a bundle of this node's log: the log key is this node's own (its DID
    // document is registered locally) and only its configured witnesses count, so the only DIDs resolved
    // are ones the node already chose to trust; a bundle cannot make it dial an address of its choosing.
    // Anchors are checked with the CLI, on a chain the user pins.
    Verify: (call, callback) => {
      let bundle: ProofBundle;
      try {
        authenticateMailbox(storage, call.metadata);
        bundle = JSON.parse(call.request.bundleJson) as ProofBundle;
      } catch (err) {
        callback(toGrpcError(err instanceof SyntaxError ? new GatewayError('INVALID_ARGUMENT', 'bundle_json is not JSON') : err));
        return;
      }
      verifyProofBundle(bundle, { resolver: deps.resolver, logDid: deps.nodeDid, witnesses: deps.witnessing?.witnesses() ?? [] }).then(
        (report) => callback(null, { ok: report.ok, steps: report.steps }),
        (err) => callback(toGrpcError(err)),
      );
    },
  };
}
