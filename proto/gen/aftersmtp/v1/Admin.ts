// Original file: proto/aftersmtp.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { PeersReply as _aftersmtp_v1_PeersReply, PeersReply__Output as _aftersmtp_v1_PeersReply__Output } from '../../aftersmtp/v1/PeersReply.ts';
import type { PeersRequest as _aftersmtp_v1_PeersRequest, PeersRequest__Output as _aftersmtp_v1_PeersRequest__Output } from '../../aftersmtp/v1/PeersRequest.ts';
import type { QueueActionReply as _aftersmtp_v1_QueueActionReply, QueueActionReply__Output as _aftersmtp_v1_QueueActionReply__Output } from '../../aftersmtp/v1/QueueActionReply.ts';
import type { QueueActionRequest as _aftersmtp_v1_QueueActionRequest, QueueActionRequest__Output as _aftersmtp_v1_QueueActionRequest__Output } from '../../aftersmtp/v1/QueueActionRequest.ts';
import type { QueueListReply as _aftersmtp_v1_QueueListReply, QueueListReply__Output as _aftersmtp_v1_QueueListReply__Output } from '../../aftersmtp/v1/QueueListReply.ts';
import type { QueueListRequest as _aftersmtp_v1_QueueListRequest, QueueListRequest__Output as _aftersmtp_v1_QueueListRequest__Output } from '../../aftersmtp/v1/QueueListRequest.ts';
import type { StatusReply as _aftersmtp_v1_StatusReply, StatusReply__Output as _aftersmtp_v1_StatusReply__Output } from '../../aftersmtp/v1/StatusReply.ts';
import type { StatusRequest as _aftersmtp_v1_StatusRequest, StatusRequest__Output as _aftersmtp_v1_StatusRequest__Output } from '../../aftersmtp/v1/StatusRequest.ts';

export interface AdminClient extends grpc.Client {
  Peers(argument: _aftersmtp_v1_PeersRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_PeersReply__Output>): grpc.ClientUnaryCall;
  Peers(argument: _aftersmtp_v1_PeersRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_PeersReply__Output>): grpc.ClientUnaryCall;
  Peers(argument: _aftersmtp_v1_PeersRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_PeersReply__Output>): grpc.ClientUnaryCall;
  Peers(argument: _aftersmtp_v1_PeersRequest, callback: grpc.requestCallback<_aftersmtp_v1_PeersReply__Output>): grpc.ClientUnaryCall;
  peers(argument: _aftersmtp_v1_PeersRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_PeersReply__Output>): grpc.ClientUnaryCall;
  peers(argument: _aftersmtp_v1_PeersRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_PeersReply__Output>): grpc.ClientUnaryCall;
  peers(argument: _aftersmtp_v1_PeersRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_PeersReply__Output>): grpc.ClientUnaryCall;
  peers(argument: _aftersmtp_v1_PeersRequest, callback: grpc.requestCallback<_aftersmtp_v1_PeersReply__Output>): grpc.ClientUnaryCall;
  
  QueueAction(argument: _aftersmtp_v1_QueueActionRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_QueueActionReply__Output>): grpc.ClientUnaryCall;
  QueueAction(argument: _aftersmtp_v1_QueueActionRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_QueueActionReply__Output>): grpc.ClientUnaryCall;
  QueueAction(argument: _aftersmtp_v1_QueueActionRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_QueueActionReply__Output>): grpc.ClientUnaryCall;
  QueueAction(argument: _aftersmtp_v1_QueueActionRequest, callback: grpc.requestCallback<_aftersmtp_v1_QueueActionReply__Output>): grpc.ClientUnaryCall;
  queueAction(argument: _aftersmtp_v1_QueueActionRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_QueueActionReply__Output>): grpc.ClientUnaryCall;
  queueAction(argument: _aftersmtp_v1_QueueActionRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_QueueActionReply__Output>): grpc.ClientUnaryCall;
  queueAction(argument: _aftersmtp_v1_QueueActionRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_QueueActionReply__Output>): grpc.ClientUnaryCall;
  queueAction(argument: _aftersmtp_v1_QueueActionRequest, callback: grpc.requestCallback<_aftersmtp_v1_QueueActionReply__Output>): grpc.ClientUnaryCall;
  
  QueueList(argument: _aftersmtp_v1_QueueListRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_QueueListReply__Output>): grpc.ClientUnaryCall;
  QueueList(argument: _aftersmtp_v1_QueueListRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_QueueListReply__Output>): grpc.ClientUnaryCall;
  QueueList(argument: _aftersmtp_v1_QueueListRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_QueueListReply__Output>): grpc.ClientUnaryCall;
  QueueList(argument: _aftersmtp_v1_QueueListRequest, callback: grpc.requestCallback<_aftersmtp_v1_QueueListReply__Output>): grpc.ClientUnaryCall;
  queueList(argument: _aftersmtp_v1_QueueListRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_QueueListReply__Output>): grpc.ClientUnaryCall;
  queueList(argument: _aftersmtp_v1_QueueListRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_QueueListReply__Output>): grpc.ClientUnaryCall;
  queueList(argument: _aftersmtp_v1_QueueListRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_QueueListReply__Output>): grpc.ClientUnaryCall;
  queueList(argument: _aftersmtp_v1_QueueListRequest, callback: grpc.requestCallback<_aftersmtp_v1_QueueListReply__Output>): grpc.ClientUnaryCall;
  
  Status(argument: _aftersmtp_v1_StatusRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_StatusReply__Output>): grpc.ClientUnaryCall;
  Status(argument: _aftersmtp_v1_StatusRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_StatusReply__Output>): grpc.ClientUnaryCall;
  Status(argument: _aftersmtp_v1_StatusRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_StatusReply__Output>): grpc.ClientUnaryCall;
  Status(argument: _aftersmtp_v1_StatusRequest, callback: grpc.requestCallback<_aftersmtp_v1_StatusReply__Output>): grpc.ClientUnaryCall;
  status(argument: _aftersmtp_v1_StatusRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_StatusReply__Output>): grpc.ClientUnaryCall;
  status(argument: _aftersmtp_v1_StatusRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_aftersmtp_v1_StatusReply__Output>): grpc.ClientUnaryCall;
  status(argument: _aftersmtp_v1_StatusRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_aftersmtp_v1_StatusReply__Output>): grpc.ClientUnaryCall;
  status(argument: _aftersmtp_v1_StatusRequest, callback: grpc.requestCallback<_aftersmtp_v1_StatusReply__Output>): grpc.ClientUnaryCall;
  
}

export interface AdminHandlers extends grpc.UntypedServiceImplementation {
  Peers: grpc.handleUnaryCall<_aftersmtp_v1_PeersRequest__Output, _aftersmtp_v1_PeersReply>;
  
  QueueAction: grpc.handleUnaryCall<_aftersmtp_v1_QueueActionRequest__Output, _aftersmtp_v1_QueueActionReply>;
  
  QueueList: grpc.handleUnaryCall<_aftersmtp_v1_QueueListRequest__Output, _aftersmtp_v1_QueueListReply>;
  
  Status: grpc.handleUnaryCall<_aftersmtp_v1_StatusRequest__Output, _aftersmtp_v1_StatusReply>;
  
}

export interface AdminDefinition extends grpc.ServiceDefinition {
  Peers: MethodDefinition<_aftersmtp_v1_PeersRequest, _aftersmtp_v1_PeersReply, _aftersmtp_v1_PeersRequest__Output, _aftersmtp_v1_PeersReply__Output>
  QueueAction: MethodDefinition<_aftersmtp_v1_QueueActionRequest, _aftersmtp_v1_QueueActionReply, _aftersmtp_v1_QueueActionRequest__Output, _aftersmtp_v1_QueueActionReply__Output>
  QueueList: MethodDefinition<_aftersmtp_v1_QueueListRequest, _aftersmtp_v1_QueueListReply, _aftersmtp_v1_QueueListRequest__Output, _aftersmtp_v1_QueueListReply__Output>
  Status: MethodDefinition<_aftersmtp_v1_StatusRequest, _aftersmtp_v1_StatusReply, _aftersmtp_v1_StatusRequest__Output, _aftersmtp_v1_StatusReply__Output>
}
