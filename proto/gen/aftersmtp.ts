import type * as grpc from '@grpc/grpc-js';
import type { MessageTypeDefinition } from '@grpc/proto-loader';

import type { Ack as _aftersmtp_v1_Ack, Ack__Output as _aftersmtp_v1_Ack__Output } from './aftersmtp/v1/Ack.ts';
import type { AdminClient as _aftersmtp_v1_AdminClient, AdminDefinition as _aftersmtp_v1_AdminDefinition } from './aftersmtp/v1/Admin.ts';
import type { Checkpoint as _aftersmtp_v1_Checkpoint, Checkpoint__Output as _aftersmtp_v1_Checkpoint__Output } from './aftersmtp/v1/Checkpoint.ts';
import type { CosignReply as _aftersmtp_v1_CosignReply, CosignReply__Output as _aftersmtp_v1_CosignReply__Output } from './aftersmtp/v1/CosignReply.ts';
import type { CosignRequest as _aftersmtp_v1_CosignRequest, CosignRequest__Output as _aftersmtp_v1_CosignRequest__Output } from './aftersmtp/v1/CosignRequest.ts';
import type { Delivery as _aftersmtp_v1_Delivery, Delivery__Output as _aftersmtp_v1_Delivery__Output } from './aftersmtp/v1/Delivery.ts';
import type { Envelope as _aftersmtp_v1_Envelope, Envelope__Output as _aftersmtp_v1_Envelope__Output } from './aftersmtp/v1/Envelope.ts';
import type { GetCheckpointRequest as _aftersmtp_v1_GetCheckpointRequest, GetCheckpointRequest__Output as _aftersmtp_v1_GetCheckpointRequest__Output } from './aftersmtp/v1/GetCheckpointRequest.ts';
import type { GetProofRequest as _aftersmtp_v1_GetProofRequest, GetProofRequest__Output as _aftersmtp_v1_GetProofRequest__Output } from './aftersmtp/v1/GetProofRequest.ts';
import type { IdentityClient as _aftersmtp_v1_IdentityClient, IdentityDefinition as _aftersmtp_v1_IdentityDefinition } from './aftersmtp/v1/Identity.ts';
import type { LedgerStatusReply as _aftersmtp_v1_LedgerStatusReply, LedgerStatusReply__Output as _aftersmtp_v1_LedgerStatusReply__Output } from './aftersmtp/v1/LedgerStatusReply.ts';
import type { LedgerStatusRequest as _aftersmtp_v1_LedgerStatusRequest, LedgerStatusRequest__Output as _aftersmtp_v1_LedgerStatusRequest__Output } from './aftersmtp/v1/LedgerStatusRequest.ts';
import type { MailboxClient as _aftersmtp_v1_MailboxClient, MailboxDefinition as _aftersmtp_v1_MailboxDefinition } from './aftersmtp/v1/Mailbox.ts';
import type { Peer as _aftersmtp_v1_Peer, Peer__Output as _aftersmtp_v1_Peer__Output } from './aftersmtp/v1/Peer.ts';
import type { PeersReply as _aftersmtp_v1_PeersReply, PeersReply__Output as _aftersmtp_v1_PeersReply__Output } from './aftersmtp/v1/PeersReply.ts';
import type { PeersRequest as _aftersmtp_v1_PeersRequest, PeersRequest__Output as _aftersmtp_v1_PeersRequest__Output } from './aftersmtp/v1/PeersRequest.ts';
import type { ProofBundle as _aftersmtp_v1_ProofBundle, ProofBundle__Output as _aftersmtp_v1_ProofBundle__Output } from './aftersmtp/v1/ProofBundle.ts';
import type { ProvenanceClient as _aftersmtp_v1_ProvenanceClient, ProvenanceDefinition as _aftersmtp_v1_ProvenanceDefinition } from './aftersmtp/v1/Provenance.ts';
import type { PublishReply as _aftersmtp_v1_PublishReply, PublishReply__Output as _aftersmtp_v1_PublishReply__Output } from './aftersmtp/v1/PublishReply.ts';
import type { PublishRequest as _aftersmtp_v1_PublishRequest, PublishRequest__Output as _aftersmtp_v1_PublishRequest__Output } from './aftersmtp/v1/PublishRequest.ts';
import type { QueueActionReply as _aftersmtp_v1_QueueActionReply, QueueActionReply__Output as _aftersmtp_v1_QueueActionReply__Output } from './aftersmtp/v1/QueueActionReply.ts';
import type { QueueActionRequest as _aftersmtp_v1_QueueActionRequest, QueueActionRequest__Output as _aftersmtp_v1_QueueActionRequest__Output } from './aftersmtp/v1/QueueActionRequest.ts';
import type { QueueItem as _aftersmtp_v1_QueueItem, QueueItem__Output as _aftersmtp_v1_QueueItem__Output } from './aftersmtp/v1/QueueItem.ts';
import type { QueueListReply as _aftersmtp_v1_QueueListReply, QueueListReply__Output as _aftersmtp_v1_QueueListReply__Output } from './aftersmtp/v1/QueueListReply.ts';
import type { QueueListRequest as _aftersmtp_v1_QueueListRequest, QueueListRequest__Output as _aftersmtp_v1_QueueListRequest__Output } from './aftersmtp/v1/QueueListRequest.ts';
import type { Receipt as _aftersmtp_v1_Receipt, Receipt__Output as _aftersmtp_v1_Receipt__Output } from './aftersmtp/v1/Receipt.ts';
import type { RecipientKey as _aftersmtp_v1_RecipientKey, RecipientKey__Output as _aftersmtp_v1_RecipientKey__Output } from './aftersmtp/v1/RecipientKey.ts';
import type { RelayClient as _aftersmtp_v1_RelayClient, RelayDefinition as _aftersmtp_v1_RelayDefinition } from './aftersmtp/v1/Relay.ts';
import type { RelayAck as _aftersmtp_v1_RelayAck, RelayAck__Output as _aftersmtp_v1_RelayAck__Output } from './aftersmtp/v1/RelayAck.ts';
import type { RelayFrame as _aftersmtp_v1_RelayFrame, RelayFrame__Output as _aftersmtp_v1_RelayFrame__Output } from './aftersmtp/v1/RelayFrame.ts';
import type { RelayHello as _aftersmtp_v1_RelayHello, RelayHello__Output as _aftersmtp_v1_RelayHello__Output } from './aftersmtp/v1/RelayHello.ts';
import type { ReleaseReply as _aftersmtp_v1_ReleaseReply, ReleaseReply__Output as _aftersmtp_v1_ReleaseReply__Output } from './aftersmtp/v1/ReleaseReply.ts';
import type { ReleaseRequest as _aftersmtp_v1_ReleaseRequest, ReleaseRequest__Output as _aftersmtp_v1_ReleaseRequest__Output } from './aftersmtp/v1/ReleaseRequest.ts';
import type { ResolveReply as _aftersmtp_v1_ResolveReply, ResolveReply__Output as _aftersmtp_v1_ResolveReply__Output } from './aftersmtp/v1/ResolveReply.ts';
import type { ResolveRequest as _aftersmtp_v1_ResolveRequest, ResolveRequest__Output as _aftersmtp_v1_ResolveRequest__Output } from './aftersmtp/v1/ResolveRequest.ts';
import type { StatusReply as _aftersmtp_v1_StatusReply, StatusReply__Output as _aftersmtp_v1_StatusReply__Output } from './aftersmtp/v1/StatusReply.ts';
import type { StatusRequest as _aftersmtp_v1_StatusRequest, StatusRequest__Output as _aftersmtp_v1_StatusRequest__Output } from './aftersmtp/v1/StatusRequest.ts';
import type { SubmitError as _aftersmtp_v1_SubmitError, SubmitError__Output as _aftersmtp_v1_SubmitError__Output } from './aftersmtp/v1/SubmitError.ts';
import type { SubmitReply as _aftersmtp_v1_SubmitReply, SubmitReply__Output as _aftersmtp_v1_SubmitReply__Output } from './aftersmtp/v1/SubmitReply.ts';
import type { SubmitRequest as _aftersmtp_v1_SubmitRequest, SubmitRequest__Output as _aftersmtp_v1_SubmitRequest__Output } from './aftersmtp/v1/SubmitRequest.ts';
import type { SubscribeRequest as _aftersmtp_v1_SubscribeRequest, SubscribeRequest__Output as _aftersmtp_v1_SubscribeRequest__Output } from './aftersmtp/v1/SubscribeRequest.ts';
import type { SubscribeStart as _aftersmtp_v1_SubscribeStart, SubscribeStart__Output as _aftersmtp_v1_SubscribeStart__Output } from './aftersmtp/v1/SubscribeStart.ts';
import type { VerifyReply as _aftersmtp_v1_VerifyReply, VerifyReply__Output as _aftersmtp_v1_VerifyReply__Output } from './aftersmtp/v1/VerifyReply.ts';
import type { VerifyRequest as _aftersmtp_v1_VerifyRequest, VerifyRequest__Output as _aftersmtp_v1_VerifyRequest__Output } from './aftersmtp/v1/VerifyRequest.ts';
import type { VerifyStep as _aftersmtp_v1_VerifyStep, VerifyStep__Output as _aftersmtp_v1_VerifyStep__Output } from './aftersmtp/v1/VerifyStep.ts';
import type { WhoAmIReply as _aftersmtp_v1_WhoAmIReply, WhoAmIReply__Output as _aftersmtp_v1_WhoAmIReply__Output } from './aftersmtp/v1/WhoAmIReply.ts';
import type { WhoAmIRequest as _aftersmtp_v1_WhoAmIRequest, WhoAmIRequest__Output as _aftersmtp_v1_WhoAmIRequest__Output } from './aftersmtp/v1/WhoAmIRequest.ts';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  aftersmtp: {
    v1: {
      Ack: MessageTypeDefinition<_aftersmtp_v1_Ack, _aftersmtp_v1_Ack__Output>
      Admin: SubtypeConstructor<typeof grpc.Client, _aftersmtp_v1_AdminClient> & { service: _aftersmtp_v1_AdminDefinition }
      Checkpoint: MessageTypeDefinition<_aftersmtp_v1_Checkpoint, _aftersmtp_v1_Checkpoint__Output>
      CosignReply: MessageTypeDefinition<_aftersmtp_v1_CosignReply, _aftersmtp_v1_CosignReply__Output>
      CosignRequest: MessageTypeDefinition<_aftersmtp_v1_CosignRequest, _aftersmtp_v1_CosignRequest__Output>
      Delivery: MessageTypeDefinition<_aftersmtp_v1_Delivery, _aftersmtp_v1_Delivery__Output>
      Envelope: MessageTypeDefinition<_aftersmtp_v1_Envelope, _aftersmtp_v1_Envelope__Output>
      GetCheckpointRequest: MessageTypeDefinition<_aftersmtp_v1_GetCheckpointRequest, _aftersmtp_v1_GetCheckpointRequest__Output>
      GetProofRequest: MessageTypeDefinition<_aftersmtp_v1_GetProofRequest, _aftersmtp_v1_GetProofRequest__Output>
      Identity: SubtypeConstructor<typeof grpc.Client, _aftersmtp_v1_IdentityClient> & { service: _aftersmtp_v1_IdentityDefinition }
      LedgerStatusReply: MessageTypeDefinition<_aftersmtp_v1_LedgerStatusReply, _aftersmtp_v1_LedgerStatusReply__Output>
      LedgerStatusRequest: MessageTypeDefinition<_aftersmtp_v1_LedgerStatusRequest, _aftersmtp_v1_LedgerStatusRequest__Output>
      Mailbox: SubtypeConstructor<typeof grpc.Client, _aftersmtp_v1_MailboxClient> & { service: _aftersmtp_v1_MailboxDefinition }
      Peer: MessageTypeDefinition<_aftersmtp_v1_Peer, _aftersmtp_v1_Peer__Output>
      PeersReply: MessageTypeDefinition<_aftersmtp_v1_PeersReply, _aftersmtp_v1_PeersReply__Output>
      PeersRequest: MessageTypeDefinition<_aftersmtp_v1_PeersRequest, _aftersmtp_v1_PeersRequest__Output>
      ProofBundle: MessageTypeDefinition<_aftersmtp_v1_ProofBundle, _aftersmtp_v1_ProofBundle__Output>
      Provenance: SubtypeConstructor<typeof grpc.Client, _aftersmtp_v1_ProvenanceClient> & { service: _aftersmtp_v1_ProvenanceDefinition }
      PublishReply: MessageTypeDefinition<_aftersmtp_v1_PublishReply, _aftersmtp_v1_PublishReply__Output>
      PublishRequest: MessageTypeDefinition<_aftersmtp_v1_PublishRequest, _aftersmtp_v1_PublishRequest__Output>
      QueueActionReply: MessageTypeDefinition<_aftersmtp_v1_QueueActionReply, _aftersmtp_v1_QueueActionReply__Output>
      QueueActionRequest: MessageTypeDefinition<_aftersmtp_v1_QueueActionRequest, _aftersmtp_v1_QueueActionRequest__Output>
      QueueItem: MessageTypeDefinition<_aftersmtp_v1_QueueItem, _aftersmtp_v1_QueueItem__Output>
      QueueListReply: MessageTypeDefinition<_aftersmtp_v1_QueueListReply, _aftersmtp_v1_QueueListReply__Output>
      QueueListRequest: MessageTypeDefinition<_aftersmtp_v1_QueueListRequest, _aftersmtp_v1_QueueListRequest__Output>
      Receipt: MessageTypeDefinition<_aftersmtp_v1_Receipt, _aftersmtp_v1_Receipt__Output>
      RecipientKey: MessageTypeDefinition<_aftersmtp_v1_RecipientKey, _aftersmtp_v1_RecipientKey__Output>
      Relay: SubtypeConstructor<typeof grpc.Client, _aftersmtp_v1_RelayClient> & { service: _aftersmtp_v1_RelayDefinition }
      RelayAck: MessageTypeDefinition<_aftersmtp_v1_RelayAck, _aftersmtp_v1_RelayAck__Output>
      RelayFrame: MessageTypeDefinition<_aftersmtp_v1_RelayFrame, _aftersmtp_v1_RelayFrame__Output>
      RelayHello: MessageTypeDefinition<_aftersmtp_v1_RelayHello, _aftersmtp_v1_RelayHello__Output>
      ReleaseReply: MessageTypeDefinition<_aftersmtp_v1_ReleaseReply, _aftersmtp_v1_ReleaseReply__Output>
      ReleaseRequest: MessageTypeDefinition<_aftersmtp_v1_ReleaseRequest, _aftersmtp_v1_ReleaseRequest__Output>
      ResolveReply: MessageTypeDefinition<_aftersmtp_v1_ResolveReply, _aftersmtp_v1_ResolveReply__Output>
      ResolveRequest: MessageTypeDefinition<_aftersmtp_v1_ResolveRequest, _aftersmtp_v1_ResolveRequest__Output>
      StatusReply: MessageTypeDefinition<_aftersmtp_v1_StatusReply, _aftersmtp_v1_StatusReply__Output>
      StatusRequest: MessageTypeDefinition<_aftersmtp_v1_StatusRequest, _aftersmtp_v1_StatusRequest__Output>
      SubmitError: MessageTypeDefinition<_aftersmtp_v1_SubmitError, _aftersmtp_v1_SubmitError__Output>
      SubmitReply: MessageTypeDefinition<_aftersmtp_v1_SubmitReply, _aftersmtp_v1_SubmitReply__Output>
      SubmitRequest: MessageTypeDefinition<_aftersmtp_v1_SubmitRequest, _aftersmtp_v1_SubmitRequest__Output>
      SubscribeRequest: MessageTypeDefinition<_aftersmtp_v1_SubscribeRequest, _aftersmtp_v1_SubscribeRequest__Output>
      SubscribeStart: MessageTypeDefinition<_aftersmtp_v1_SubscribeStart, _aftersmtp_v1_SubscribeStart__Output>
      VerifyReply: MessageTypeDefinition<_aftersmtp_v1_VerifyReply, _aftersmtp_v1_VerifyReply__Output>
      VerifyRequest: MessageTypeDefinition<_aftersmtp_v1_VerifyRequest, _aftersmtp_v1_VerifyRequest__Output>
      VerifyStep: MessageTypeDefinition<_aftersmtp_v1_VerifyStep, _aftersmtp_v1_VerifyStep__Output>
      WhoAmIReply: MessageTypeDefinition<_aftersmtp_v1_WhoAmIReply, _aftersmtp_v1_WhoAmIReply__Output>
      WhoAmIRequest: MessageTypeDefinition<_aftersmtp_v1_WhoAmIRequest, _aftersmtp_v1_WhoAmIRequest__Output>
    }
  }
}

