// Signed relay receipts (PROTOCOL.md §4.1 "Receipts"): the receiving node signs what it promises —
// this message hash is leaf N of its log `origin` — so the sending node can hold it to that promise
// (and check it against the receiver's checkpoints later). A receipt that does not verify is not an
// acknowledgement: the message stays queued.
import { bytesEqual, sign, verifySignature, type DidResolver, type SignatureCheck } from '../../identity/index.ts';
import { GatewayError } from '../errors.ts';

const DOMAIN_SEPARATOR = 'aftersmtp-receipt-v1\n';

export interface ReceiptFields {
  logOrigin: string;
  leafIndex: number | string;
  checkpointSize: number | string;
  messageHash: Uint8Array;
}

/** The exact bytes signed: separator, origin (u16 length + UTF-8), leaf index u64, checkpoint size u64, hash. */
export function receiptSigningInput(r: ReceiptFields): Uint8Array {
  const origin = Buffer.from(r.logOrigin, 'utf8');
  if (origin.length > 0xffff) throw new GatewayError('INVALID_ARGUMENT', 'log origin too long');
  if (r.messageHash.length !== 32) throw new GatewayError('INVALID_ARGUMENT', 'message hash must be 32 bytes');
  const out = Buffer.alloc(DOMAIN_SEPARATOR.length + 2 + origin.length + 16 + 32);
  let off = out.write(DOMAIN_SEPARATOR, 0, 'ascii');
  off = out.writeUInt16BE(origin.length, off);
  off += origin.copy(out, off);
  off = out.writeBigUInt64BE(BigInt(r.leafIndex), off);
  off = out.writeBigUInt64BE(BigInt(r.checkpointSize), off);
  out.set(r.messageHash, off);
  return out;
}

export function signReceipt<T extends ReceiptFields>(receipt: T, signingPrivateKey: Uint8Array): T & { signature: Uint8Array } {
  return { ...receipt, signature: sign(signingPrivateKey, receiptSigningInput(receipt)) };
}

/**
 * Checks a peer's receipt for the envelope it acknowledges: same message hash, and a signature by a
 * key of the peer's DID. Throws BAD_RECEIPT with the reason.
 */
export async function verifyReceipt(
  receipt: ReceiptFields & { signature?: Uint8Array }, expectedHash: Uint8Array, peerDid: string, resolver: DidResolver,
  verify: SignatureCheck = verifySignature,
): Promise<void> {
  if (!bytesEqual(new Uint8Array(receipt.messageHash ?? []), expectedHash)) {
    throw new GatewayError('BAD_RECEIPT', `${peerDid} acknowledged another message hash`);
  }
  if (!receipt.logOrigin) throw new GatewayError('BAD_RECEIPT', `${peerDid} sent a receipt without a log origin`);
  const signature = receipt.signature ? new Uint8Array(receipt.signature) : new Uint8Array(0);
  if (signature.length !== 64) throw new GatewayError('BAD_RECEIPT', `${peerDid} sent an unsigned receipt`);
  const keys = await resolver.resolveKeys(peerDid);
  const input = receiptSigningInput({ ...receipt, messageHash: new Uint8Array(receipt.messageHash) });
  let ok = false;
  for (const key of [...keys.assertionMethod.values(), ...keys.authentication.values()]) {
    if ((ok = await verify(key, input, signature))) break;
  }
  if (!ok) throw new GatewayError('BAD_RECEIPT', `the receipt from ${peerDid} is not signed by a key of its DID document`);
}
