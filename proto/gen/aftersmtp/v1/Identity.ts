// Original file: proto/aftersmtp.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { PublishReply as _aftersmtp_v1_PublishReply, PublishReply__Output as _aftersmtp_v1_PublishReply__Output } from '../../aftersmtp/v1/PublishReply.ts';
import type { PublishRequest as _aftersmtp_v1_PublishRequest, PublishRequest__Output as _aftersmtp_v1_PublishRequest__Output } from '../../aftersmtp/v1/PublishRequest.ts';
import type { ResolveReply as _aftersmtp_v1_ResolveReply, ResolveReply__Output as _aftersmtp_v1_ResolveReply__Output } from '../../aftersmtp/v1/ResolveReply.ts';
import type { ResolveRequest as _aftersmtp_v1_ResolveRequest, ResolveRequest__Output as _aftersmtp_v1_ResolveRequest__Output } from '../../aftersmtp/v1/ResolveRequest.ts';

export interface IdentityClient extends grpc.Client {
  Publish(argument: _aftersmtp_v1_PublishRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_PublishReply__Output>): grpc.ClientUnaryCall;
  Publish(argument: _aftersmtp_v1_PublishRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_PublishReply__Output>): grpc.ClientUnaryCall;
  Publish(argument: _aftersmtp_v1_PublishRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_PublishReply__Output>): grpc.ClientUnaryCall;
  Publish(argument: _aftersmtp_v1_PublishRequest, callback: grpc.requestCallback<_aftersmtp_v1_PublishReply__Output>): grpc.ClientUnaryCall;
  publish(argument: _aftersmtp_v1_PublishRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_PublishReply__Output>): grpc.ClientUnaryCall;
  publish(argument: _aftersmtp_v1_PublishRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_PublishReply__Output>): grpc.ClientUnaryCall;
  publish(argument: _aftersmtp_v1_PublishRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_PublishReply__Output>): grpc.ClientUnaryCall;
  publish(argument: _aftersmtp_v1_PublishRequest, callback: grpc.requestCallback<_aftersmtp_v1_PublishReply__Output>): grpc.ClientUnaryCall;
  
  Resolve(argument: _aftersmtp_v1_ResolveRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_ResolveReply__Output>): grpc.ClientUnaryCall;
  Resolve(argument: _aftersmtp_v1_ResolveRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_ResolveReply__Output>): grpc.ClientUnaryCall;
  Resolve(argument: _aftersmtp_v1_ResolveRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_ResolveReply__Output>): grpc.ClientUnaryCall;
  Resolve(argument: _aftersmtp_v1_ResolveRequest, callback: grpc.requestCallback<_aftersmtp_v1_ResolveReply__Output>): grpc.ClientUnaryCall;
  resolve(argument: _aftersmtp_v1_ResolveRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_ResolveReply__Output>): grpc.ClientUnaryCall;
  resolve(argument: _aftersmtp_v1_ResolveRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_ResolveReply__Output>): grpc.ClientUnaryCall;
  resolve(argument: _aftersmtp_v1_ResolveRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_ResolveReply__Output>): grpc.ClientUnaryCall;
  resolve(argument: _aftersmtp_v1_ResolveRequest, callback: grpc.requestCallback<_aftersmtp_v1_ResolveReply__Output>): grpc.ClientUnaryCall;
  
}

export interface IdentityHandlers extends grpc.UntypedServiceImplementation {
  Publish: grpc.handleUnaryCall<_aftersmtp_v1_PublishRequest__Output, _aftersmtp_v1_PublishReply>;
  
  Resolve: grpc.handleUnaryCall<_aftersmtp_v1_ResolveRequest__Output, _aftersmtp_v1_ResolveReply>;
  
}

export interface IdentityDefinition extends grpc.ServiceDefinition {
  Publish: MethodDefinition<_aftersmtp_v1_PublishRequest, _aftersmtp_v1_PublishReply, _aftersmtp_v1_PublishRequest__Output, _aftersmtp_v1_PublishReply__Output>
  Resolve: MethodDefinition<_aftersmtp_v1_ResolveRequest, _aftersmtp_v1_ResolveReply, _aftersmtp_v1_ResolveRequest__Output, _aftersmtp_v1_ResolveReply__Output>
}
