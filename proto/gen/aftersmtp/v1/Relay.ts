// Original file: proto/aftersmtp.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { RelayFrame as _aftersmtp_v1_RelayFrame, RelayFrame__Output as _aftersmtp_v1_RelayFrame__Output } from '../../aftersmtp/v1/RelayFrame.ts';

export interface RelayClient extends grpc.Client {
  Stream(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_aftersmtp_v1_RelayFrame, _aftersmtp_v1_RelayFrame__Output>;
  Stream(options?: grpc.CallOptions): grpc.ClientDuplexStream<_aftersmtp_v1_RelayFrame, _aftersmtp_v1_RelayFrame__Output>;
  stream(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_aftersmtp_v1_RelayFrame, _aftersmtp_v1_RelayFrame__Output>;
  stream(options?: grpc.CallOptions): grpc.ClientDuplexStream<_aftersmtp_v1_RelayFrame, _aftersmtp_v1_RelayFrame__Output>;
  
}

export interface RelayHandlers extends grpc.UntypedServiceImplementation {
  Stream: grpc.handleBidiStreamingCall<_aftersmtp_v1_RelayFrame__Output, _aftersmtp_v1_RelayFrame>;
  
}

export interface RelayDefinition extends grpc.ServiceDefinition {
  Stream: MethodDefinition<_aftersmtp_v1_RelayFrame, _aftersmtp_v1_RelayFrame, _aftersmtp_v1_RelayFrame__Output, _aftersmtp_v1_RelayFrame__Output>
}
