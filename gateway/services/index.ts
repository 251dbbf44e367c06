// The node's gRPC services (Mailbox, Admin, Provenance), how a mailbox or the operator authenticates,
// and the guard that every call passes before its handler.
export { adminHandlers, checkAdmin } from './admin-service.ts';
export { RequestGuard, type CallPolicy } from './grpc-guard.ts';
export { MailboxService, authenticateMailbox, mailboxOfBearer, tokenSha256 } from './mailbox-service.ts';
export { provenanceHandlers } from './provenance-service.ts';
