// Key material as the node's files and a mailbox profile hold it: raw 32-byte keys in base64url.

export interface KeyMaterial {
  keyId: string;
  publicKey: string; // base64url, raw 32 bytes
  privateKey: string; // base64url, raw 32 bytes
}

export const b64u = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64url');
export const fromB64u = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, 'base64url'));
