// Public surface of proto/: the aftersmtp.v1 package, loaded once, with generated types.
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoLoaderOptions, PROTO_FILE } from './options.ts';
import type { ProtoGrpcType } from './gen/aftersmtp.ts';
import { installCodecs, loadRoot } from './codec.ts';

export { PROTO_FILE } from './options.ts';
export { installCodecs, messageCodec, loadRoot, type MessageCodec } from './codec.ts';
export type { ProtoGrpcType } from './gen/aftersmtp.ts';
export type { Envelope, Envelope__Output } from './gen/aftersmtp/v1/Envelope.ts';
export type { Receipt, Receipt__Output } from './gen/aftersmtp/v1/Receipt.ts';
export type { SubmitRequest__Output } from './gen/aftersmtp/v1/SubmitRequest.ts';
export type { SubmitReply, SubmitReply__Output } from './gen/aftersmtp/v1/SubmitReply.ts';
export type { SubscribeRequest, SubscribeRequest__Output } from './gen/aftersmtp/v1/SubscribeRequest.ts';
export type { Delivery, Delivery__Output } from './gen/aftersmtp/v1/Delivery.ts';
export type { WhoAmIReply__Output } from './gen/aftersmtp/v1/WhoAmIReply.ts';
export type { MailboxClient, MailboxHandlers } from './gen/aftersmtp/v1/Mailbox.ts';
export type { IdentityHandlers, IdentityClient } from './gen/aftersmtp/v1/Identity.ts';
export type { AdminHandlers, AdminClient } from './gen/aftersmtp/v1/Admin.ts';
export type { StatusReply__Output } from './gen/aftersmtp/v1/StatusReply.ts';

let cached: { packageDefinition: protoLoader.PackageDefinition; proto: ProtoGrpcType } | undefined;

/** The loaded package definition (for reflection) and the typed `aftersmtp.v1` grpc object. */
export function loadProto(): { packageDefinition: protoLoader.PackageDefinition; proto: ProtoGrpcType } {
  if (!cached) {
    const packageDefinition = protoLoader.loadSync(PROTO_FILE, { ...protoLoaderOptions });
    // The hot methods (Submit, Subscribe, Relay, ...) get the direct codec (codec.ts); same shapes.
    // Its reflection parses the .proto once more (~7 ms, once per process): proto-loader keeps its own.
    installCodecs(packageDefinition, loadRoot(PROTO_FILE));
    const proto = grpc.loadPackageDefinition(packageDefinition) as unknown as ProtoGrpcType;
    cached = { packageDefinition, proto };
  }
  return cached;
}
export type { ProvenanceHandlers, ProvenanceClient } from './gen/aftersmtp/v1/Provenance.ts';
export type { LedgerStatusReply, LedgerStatusReply__Output } from './gen/aftersmtp/v1/LedgerStatusReply.ts';
export type { ProofBundle as ProofBundleReply__Output } from './gen/aftersmtp/v1/ProofBundle.ts';
