// A message the node writes in its own name (a failure notice, mail it bridged from SMTP, a forward, a
// report): signed by the node's DID and sealed to the keys given, in one place, so every such message has
// the same shape (message/rfc822 body, the node's lifetime) whatever part of the node sends it.
import { randomBytes } from 'node:crypto';
import { sealEnvelope, signMessage, type Envelope } from '../../identity/index.ts';

export interface NodeSigner {
  nodeDid: string;
  nodeKeys: { signingKeyId: string; signingPrivateKey: Uint8Array };
}

export interface NodeMail {
  /** The address the message is from (the node's postmaster, or the sender it vouches for). */
  from: string;
  /** The recipients named in the message and its envelope. */
  to: { did: string; address: string }[];
  /** The keys the content key is wrapped for (each once): the recipients', and any copy not named (a journal). */
  keys: { keyId: string; publicKey: Uint8Array }[];
  /** An RFC 5322 message. */
  body: Uint8Array;
  lifetimeMs: number;
}

export function sealAsNode(signer: NodeSigner, mail: NodeMail): Envelope {
  const messageId = new Uint8Array(randomBytes(16));
  const createdMs = Date.now();
  const expiresMs = createdMs + mail.lifetimeMs;
  const { nodeDid, nodeKeys } = signer;
  const signed = signMessage({
    header: { messageId, from: { did: nodeDid, address: mail.from }, to: mail.to, createdMs, expiresMs, contentType: 'message/rfc822' },
    body: mail.body,
    keyId: nodeKeys.signingKeyId,
    privateKey: nodeKeys.signingPrivateKey,
  });
  return sealEnvelope({
    signedMessage: signed.signedMessage,
    messageId,
    messageHash: signed.messageHash,
    senderDid: nodeDid,
    senderKeyId: nodeKeys.signingKeyId,
    senderPrivateKey: nodeKeys.signingPrivateKey,
    recipientAddresses: mail.to.map((r) => r.address),
    recipients: [...new Map(mail.keys.map((k) => [k.keyId, { keyId: k.keyId, publicKey: k.publicKey }])).values()],
    createdMs,
    expiresMs,
  });
}
