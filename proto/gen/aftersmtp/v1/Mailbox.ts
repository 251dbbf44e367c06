// Original file: proto/aftersmtp.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { Delivery as _aftersmtp_v1_Delivery, Delivery__Output as _aftersmtp_v1_Delivery__Output } from '../../aftersmtp/v1/Delivery.ts';
import type { ReleaseReply as _aftersmtp_v1_ReleaseReply, ReleaseReply__Output as _aftersmtp_v1_ReleaseReply__Output } from '../../aftersmtp/v1/ReleaseReply.ts';
import type { ReleaseRequest as _aftersmtp_v1_ReleaseRequest, ReleaseRequest__Output as _aftersmtp_v1_ReleaseRequest__Output } from '../../aftersmtp/v1/ReleaseRequest.ts';
import type { SubmitReply as _aftersmtp_v1_SubmitReply, SubmitReply__Output as _aftersmtp_v1_SubmitReply__Output } from '../../aftersmtp/v1/SubmitReply.ts';
import type { SubmitRequest as _aftersmtp_v1_SubmitRequest, SubmitRequest__Output as _aftersmtp_v1_SubmitRequest__Output } from '../../aftersmtp/v1/SubmitRequest.ts';
import type { SubscribeRequest as _aftersmtp_v1_SubscribeRequest, SubscribeRequest__Output as _aftersmtp_v1_SubscribeRequest__Output } from '../../aftersmtp/v1/SubscribeRequest.ts';
import type { WhoAmIReply as _aftersmtp_v1_WhoAmIReply, WhoAmIReply__Output as _aftersmtp_v1_WhoAmIReply__Output } from '../../aftersmtp/v1/WhoAmIReply.ts';
import type { WhoAmIRequest as _aftersmtp_v1_WhoAmIRequest, WhoAmIRequest__Output as _aftersmtp_v1_WhoAmIRequest__Output } from '../../aftersmtp/v1/WhoAmIRequest.ts';

export interface MailboxClient extends grpc.Client {
  Release(argument: _aftersmtp_v1_ReleaseRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_ReleaseReply__Output>): grpc.ClientUnaryCall;
  Release(argument: _aftersmtp_v1_ReleaseRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_ReleaseReply__Output>): grpc.ClientUnaryCall;
  Release(argument: _aftersmtp_v1_ReleaseRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_ReleaseReply__Output>): grpc.ClientUnaryCall;
  Release(argument: _aftersmtp_v1_ReleaseRequest, callback: grpc.requestCallback<_aftersmtp_v1_ReleaseReply__Output>): grpc.ClientUnaryCall;
  release(argument: _aftersmtp_v1_ReleaseRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_ReleaseReply__Output>): grpc.ClientUnaryCall;
  release(argument: _aftersmtp_v1_ReleaseRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_ReleaseReply__Output>): grpc.ClientUnaryCall;
  release(argument: _aftersmtp_v1_ReleaseRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_ReleaseReply__Output>): grpc.ClientUnaryCall;
  release(argument: _aftersmtp_v1_ReleaseRequest, callback: grpc.requestCallback<_aftersmtp_v1_ReleaseReply__Output>): grpc.ClientUnaryCall;
  
  Submit(argument: _aftersmtp_v1_SubmitRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_SubmitReply__Output>): grpc.ClientUnaryCall;
  Submit(argument: _aftersmtp_v1_SubmitRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_SubmitReply__Output>): grpc.ClientUnaryCall;
  Submit(argument: _aftersmtp_v1_SubmitRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_SubmitReply__Output>): grpc.ClientUnaryCall;
  Submit(argument: _aftersmtp_v1_SubmitRequest, callback: grpc.requestCallback<_aftersmtp_v1_SubmitReply__Output>): grpc.ClientUnaryCall;
  submit(argument: _aftersmtp_v1_SubmitRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_SubmitReply__Output>): grpc.ClientUnaryCall;
  submit(argument: _aftersmtp_v1_SubmitRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_SubmitReply__Output>): grpc.ClientUnaryCall;
  submit(argument: _aftersmtp_v1_SubmitRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_SubmitReply__Output>): grpc.ClientUnaryCall;
  submit(argument: _aftersmtp_v1_SubmitRequest, callback: grpc.requestCallback<_aftersmtp_v1_SubmitReply__Output>): grpc.ClientUnaryCall;
  
  SubmitStream(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_aftersmtp_v1_SubmitRequest, _aftersmtp_v1_SubmitReply__Output>;
  SubmitStream(options?: grpc.CallOptions): grpc.ClientDuplexStream<_aftersmtp_v1_SubmitRequest, _aftersmtp_v1_SubmitReply__Output>;
  submitStream(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_aftersmtp_v1_SubmitRequest, _aftersmtp_v1_SubmitReply__Output>;
  submitStream(options?: grpc.CallOptions): grpc.ClientDuplexStream<_aftersmtp_v1_SubmitRequest, _aftersmtp_v1_SubmitReply__Output>;
  
  Subscribe(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_aftersmtp_v1_SubscribeRequest, _aftersmtp_v1_Delivery__Output>;
  Subscribe(options?: grpc.CallOptions): grpc.ClientDuplexStream<_aftersmtp_v1_SubscribeRequest, _aftersmtp_v1_Delivery__Output>;
  subscribe(metadata: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<_aftersmtp_v1_SubscribeRequest, _aftersmtp_v1_Delivery__Output>;
  subscribe(options?: grpc.CallOptions): grpc.ClientDuplexStream<_aftersmtp_v1_SubscribeRequest, _aftersmtp_v1_Delivery__Output>;
  
  WhoAmI(argument: _aftersmtp_v1_WhoAmIRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_WhoAmIReply__Output>): grpc.ClientUnaryCall;
  WhoAmI(argument: _aftersmtp_v1_WhoAmIRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_WhoAmIReply__Output>): grpc.ClientUnaryCall;
  WhoAmI(argument: _aftersmtp_v1_WhoAmIRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_WhoAmIReply__Output>): grpc.ClientUnaryCall;
  WhoAmI(argument: _aftersmtp_v1_WhoAmIRequest, callback: grpc.requestCallback<_aftersmtp_v1_WhoAmIReply__Output>): grpc.ClientUnaryCall;
  whoAmI(argument: _aftersmtp_v1_WhoAmIRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_WhoAmIReply__Output>): grpc.ClientUnaryCall;
  whoAmI(argument: _aftersmtp_v1_WhoAmIRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_WhoAmIReply__Output>): grpc.ClientUnaryCall;
  whoAmI(argument: _aftersmtp_v1_WhoAmIRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_WhoAmIReply__Output>): grpc.ClientUnaryCall;
  whoAmI(argument: _aftersmtp_v1_WhoAmIRequest, callback: grpc.requestCallback<_aftersmtp_v1_WhoAmIReply__Output>): grpc.ClientUnaryCall;
  
}

export interface MailboxHandlers extends grpc.UntypedServiceImplementation {
  Release: grpc.handleUnaryCall<_aftersmtp_v1_ReleaseRequest__Output, _aftersmtp_v1_ReleaseReply>;
  
  Submit: grpc.handleUnaryCall<_aftersmtp_v1_SubmitRequest__Output, _aftersmtp_v1_SubmitReply>;
  
  SubmitStream: grpc.handleBidiStreamingCall<_aftersmtp_v1_SubmitRequest__Output, _aftersmtp_v1_SubmitReply>;
  
  Subscribe: grpc.handleBidiStreamingCall<_aftersmtp_v1_SubscribeRequest__Output, _aftersmtp_v1_Delivery>;
  
  WhoAmI: grpc.handleUnaryCall<_aftersmtp_v1_WhoAmIRequest__Output, _aftersmtp_v1_WhoAmIReply>;
  
}

export interface MailboxDefinition extends grpc.ServiceDefinition {
  Release: MethodDefinition<_aftersmtp_v1_ReleaseRequest, _aftersmtp_v1_ReleaseReply, _aftersmtp_v1_ReleaseRequest__Output, _aftersmtp_v1_ReleaseReply__Output>
  Submit: MethodDefinition<_aftersmtp_v1_SubmitRequest, _aftersmtp_v1_SubmitReply, _aftersmtp_v1_SubmitRequest__Output, _aftersmtp_v1_SubmitReply__Output>
  SubmitStream: MethodDefinition<_aftersmtp_v1_SubmitRequest, _aftersmtp_v1_SubmitReply, _aftersmtp_v1_SubmitRequest__Output, _aftersmtp_v1_SubmitReply__Output>
  Subscribe: MethodDefinition<_aftersmtp_v1_SubscribeRequest, _aftersmtp_v1_Delivery, _aftersmtp_v1_SubscribeRequest__Output, _aftersmtp_v1_Delivery__Output>
  WhoAmI: MethodDefinition<_aftersmtp_v1_WhoAmIRequest, _aftersmtp_v1_WhoAmIReply, _aftersmtp_v1_WhoAmIRequest__Output, _aftersmtp_v1_WhoAmIReply__Output>
}
