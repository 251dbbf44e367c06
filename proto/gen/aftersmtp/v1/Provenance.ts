// Original file: proto/aftersmtp.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { Checkpoint as _aftersmtp_v1_Checkpoint, Checkpoint__Output as _aftersmtp_v1_Checkpoint__Output } from '../../aftersmtp/v1/Checkpoint.ts';
import type { CosignReply as _aftersmtp_v1_CosignReply, CosignReply__Output as _aftersmtp_v1_CosignReply__Output } from '../../aftersmtp/v1/CosignReply.ts';
import type { CosignRequest as _aftersmtp_v1_CosignRequest, CosignRequest__Output as _aftersmtp_v1_CosignRequest__Output } from '../../aftersmtp/v1/CosignRequest.ts';
import type { GetCheckpointRequest as _aftersmtp_v1_GetCheckpointRequest, GetCheckpointRequest__Output as _aftersmtp_v1_GetCheckpointRequest__Output } from '../../aftersmtp/v1/GetCheckpointRequest.ts';
import type { GetProofRequest as _aftersmtp_v1_GetProofRequest, GetProofRequest__Output as _aftersmtp_v1_GetProofRequest__Output } from '../../aftersmtp/v1/GetProofRequest.ts';
import type { LedgerStatusReply as _aftersmtp_v1_LedgerStatusReply, LedgerStatusReply__Output as _aftersmtp_v1_LedgerStatusReply__Output } from '../../aftersmtp/v1/LedgerStatusReply.ts';
import type { LedgerStatusRequest as _aftersmtp_v1_LedgerStatusRequest, LedgerStatusRequest__Output as _aftersmtp_v1_LedgerStatusRequest__Output } from '../../aftersmtp/v1/LedgerStatusRequest.ts';
import type { ProofBundle as _aftersmtp_v1_ProofBundle, ProofBundle__Output as _aftersmtp_v1_ProofBundle__Output } from '../../aftersmtp/v1/ProofBundle.ts';
import type { VerifyReply as _aftersmtp_v1_VerifyReply, VerifyReply__Output as _aftersmtp_v1_VerifyReply__Output } from '../../aftersmtp/v1/VerifyReply.ts';
import type { VerifyRequest as _aftersmtp_v1_VerifyRequest, VerifyRequest__Output as _aftersmtp_v1_VerifyRequest__Output } from '../../aftersmtp/v1/VerifyRequest.ts';

export interface ProvenanceClient extends grpc.Client {
  Cosign(argument: _aftersmtp_v1_CosignRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_CosignReply__Output>): grpc.ClientUnaryCall;
  Cosign(argument: _aftersmtp_v1_CosignRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_CosignReply__Output>): grpc.ClientUnaryCall;
  Cosign(argument: _aftersmtp_v1_CosignRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_CosignReply__Output>): grpc.ClientUnaryCall;
  Cosign(argument: _aftersmtp_v1_CosignRequest, callback: grpc.requestCallback<_aftersmtp_v1_CosignReply__Output>): grpc.ClientUnaryCall;
  cosign(argument: _aftersmtp_v1_CosignRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_CosignReply__Output>): grpc.ClientUnaryCall;
  cosign(argument: _aftersmtp_v1_CosignRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_CosignReply__Output>): grpc.ClientUnaryCall;
  cosign(argument: _aftersmtp_v1_CosignRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_CosignReply__Output>): grpc.ClientUnaryCall;
  cosign(argument: _aftersmtp_v1_CosignRequest, callback: grpc.requestCallback<_aftersmtp_v1_CosignReply__Output>): grpc.ClientUnaryCall;
  
  GetCheckpoint(argument: _aftersmtp_v1_GetCheckpointRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_Checkpoint__Output>): grpc.ClientUnaryCall;
  GetCheckpoint(argument: _aftersmtp_v1_GetCheckpointRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_Checkpoint__Output>): grpc.ClientUnaryCall;
  GetCheckpoint(argument: _aftersmtp_v1_GetCheckpointRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_Checkpoint__Output>): grpc.ClientUnaryCall;
  GetCheckpoint(argument: _aftersmtp_v1_GetCheckpointRequest, callback: grpc.requestCallback<_aftersmtp_v1_Checkpoint__Output>): grpc.ClientUnaryCall;
  getCheckpoint(argument: _aftersmtp_v1_GetCheckpointRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_Checkpoint__Output>): grpc.ClientUnaryCall;
  getCheckpoint(argument: _aftersmtp_v1_GetCheckpointRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_Checkpoint__Output>): grpc.ClientUnaryCall;
  getCheckpoint(argument: _aftersmtp_v1_GetCheckpointRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_Checkpoint__Output>): grpc.ClientUnaryCall;
  getCheckpoint(argument: _aftersmtp_v1_GetCheckpointRequest, callback: grpc.requestCallback<_aftersmtp_v1_Checkpoint__Output>): grpc.ClientUnaryCall;
  
  GetProof(argument: _aftersmtp_v1_GetProofRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_ProofBundle__Output>): grpc.ClientUnaryCall;
  GetProof(argument: _aftersmtp_v1_GetProofRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_ProofBundle__Output>): grpc.ClientUnaryCall;
  GetProof(argument: _aftersmtp_v1_GetProofRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_ProofBundle__Output>): grpc.ClientUnaryCall;
  GetProof(argument: _aftersmtp_v1_GetProofRequest, callback: grpc.requestCallback<_aftersmtp_v1_ProofBundle__Output>): grpc.ClientUnaryCall;
  getProof(argument: _aftersmtp_v1_GetProofRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_ProofBundle__Output>): grpc.ClientUnaryCall;
  getProof(argument: _aftersmtp_v1_GetProofRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_ProofBundle__Output>): grpc.ClientUnaryCall;
  getProof(argument: _aftersmtp_v1_GetProofRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_ProofBundle__Output>): grpc.ClientUnaryCall;
  getProof(argument: _aftersmtp_v1_GetProofRequest, callback: grpc.requestCallback<_aftersmtp_v1_ProofBundle__Output>): grpc.ClientUnaryCall;
  
  LedgerStatus(argument: _aftersmtp_v1_LedgerStatusRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_LedgerStatusReply__Output>): grpc.ClientUnaryCall;
  LedgerStatus(argument: _aftersmtp_v1_LedgerStatusRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_LedgerStatusReply__Output>): grpc.ClientUnaryCall;
  LedgerStatus(argument: _aftersmtp_v1_LedgerStatusRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_LedgerStatusReply__Output>): grpc.ClientUnaryCall;
  LedgerStatus(argument: _aftersmtp_v1_LedgerStatusRequest, callback: grpc.requestCallback<_aftersmtp_v1_LedgerStatusReply__Output>): grpc.ClientUnaryCall;
  ledgerStatus(argument: _aftersmtp_v1_LedgerStatusRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_LedgerStatusReply__Output>): grpc.ClientUnaryCall;
  ledgerStatus(argument: _aftersmtp_v1_LedgerStatusRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_LedgerStatusReply__Output>): grpc.ClientUnaryCall;
  ledgerStatus(argument: _aftersmtp_v1_LedgerStatusRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_LedgerStatusReply__Output>): grpc.ClientUnaryCall;
  ledgerStatus(argument: _aftersmtp_v1_LedgerStatusRequest, callback: grpc.requestCallback<_aftersmtp_v1_LedgerStatusReply__Output>): grpc.ClientUnaryCall;
  
  Verify(argument: _aftersmtp_v1_VerifyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_VerifyReply__Output>): grpc.ClientUnaryCall;
  Verify(argument: _aftersmtp_v1_VerifyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_VerifyReply__Output>): grpc.ClientUnaryCall;
  Verify(argument: _aftersmtp_v1_VerifyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_VerifyReply__Output>): grpc.ClientUnaryCall;
  Verify(argument: _aftersmtp_v1_VerifyRequest, callback: grpc.requestCallback<_aftersmtp_v1_VerifyReply__Output>): grpc.ClientUnaryCall;
  verify(argument: _aftersmtp_v1_VerifyRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_VerifyReply__Output>): grpc.ClientUnaryCall;
  verify(argument: _aftersmtp_v1_VerifyRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_VerifyReply__Output>): grpc.ClientUnaryCall;
  verify(argument: _aftersmtp_v1_VerifyRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_VerifyReply__Output>): grpc.ClientUnaryCall;
  verify(argument: _aftersmtp_v1_VerifyRequest, callback: grpc.requestCallback<_aftersmtp_v1_VerifyReply__Output>): grpc.ClientUnaryCall;
  
}

export interface ProvenanceHandlers extends grpc.UntypedServiceImplementation {
  Cosign: grpc.handleUnaryCall<_aftersmtp_v1_CosignRequest__Output, _aftersmtp_v1_CosignReply>;
  
  GetCheckpoint: grpc.handleUnaryCall<_aftersmtp_v1_GetCheckpointRequest__Output, _aftersmtp_v1_Checkpoint>;
  
  GetProof: grpc.handleUnaryCall<_aftersmtp_v1_GetProofRequest__Output, _aftersmtp_v1_ProofBundle>;
  
  LedgerStatus: grpc.handleUnaryCall<_aftersmtp_v1_LedgerStatusRequest__Output, _aftersmtp_v1_LedgerStatusReply>;
  
  Verify: grpc.handleUnaryCall<_aftersmtp_v1_VerifyRequest__Output, _aftersmtp_v1_VerifyReply>;
  
}

export interface ProvenanceDefinition extends grpc.ServiceDefinition {
  Cosign: MethodDefinition<_aftersmtp_v1_CosignRequest, _aftersmtp_v1_CosignReply, _aftersmtp_v1_CosignRequest__Output, _aftersmtp_v1_CosignReply__Output>
  GetCheckpoint: MethodDefinition<_aftersmtp_v1_GetCheckpointRequest, _aftersmtp_v1_Checkpoint, _aftersmtp_v1_GetCheckpointRequest__Output, _aftersmtp_v1_Checkpoint__Output>
  GetProof: MethodDefinition<_aftersmtp_v1_GetProofRequest, _aftersmtp_v1_ProofBundle, _aftersmtp_v1_GetProofRequest__Output, _aftersmtp_v1_ProofBundle__Output>
  LedgerStatus: MethodDefinition<_aftersmtp_v1_LedgerStatusRequest, _aftersmtp_v1_LedgerStatusReply, _aftersmtp_v1_LedgerStatusRequest__Output, _aftersmtp_v1_LedgerStatusReply__Output>
  Verify: MethodDefinition<_aftersmtp_v1_VerifyRequest, _aftersmtp_v1_VerifyReply, _aftersmtp_v1_VerifyRequest__Output, _aftersmtp_v1_VerifyReply__Output>
}
