// The running node: AfterSmtpNode wires the store, the ledger, federation, the gRPC services, the SMTP
// bridge and the HTTPS server; its metrics and memory policy. Loaded only where a node runs.
export { MemoryPolicy } from './memory.ts';
export { AfterSmtpNode } from './node.ts';
