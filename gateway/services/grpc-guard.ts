// Authentication before work on the app gRPC port (DESIGN §7a).
//
// grpc-js reads a request and runs its deserializer before any handler sees the call, so a check in the
// handler comes after the node has buffered and decoded whatever an anonymous caller sent (a 24 MiB
// request of empty repeated entries decoded into ~1 GB). Here, one server interceptor:
//   - checks the call's credential from its metadata before a byte of the request is read; a call that
//     fails is answered UNAUTHENTICATED and its request is never read (HTTP/2 flow control then holds
//     the sender to one stream window);
//   - decodes each request itself, after that check: the registered services take raw bytes, and the
//     interceptor runs the method's own decoder (whose repeated-field caps refuse a flood as it starts),
//     mapping a failure to INVALID_ARGUMENT, or RESOURCE_EXHAUSTED for a limit; requests to public
//     methods are refused above `publicMessageBytes` before decoding.
import * as grpc from '@grpc/grpc-js';
import { GatewayError, toGrpcError } from '../core/index.ts';

/** Which credential a method needs: a mailbox token, the admin token, or none. */
export type CallPolicy = 'mailbox' | 'admin' | 'public';

export interface GuardOptions {
  /** The policy of a method by its path ("/aftersmtp.v1.Mailbox/Submit"); services registered elsewhere are public. */
  policy: (path: string) => CallPolicy;
  /** Throws GatewayError (UNAUTHENTICATED) when `metadata` lacks the credential `policy` asks for. */
  authenticate: (policy: Exclude<CallPolicy, 'public'>, metadata: grpc.Metadata) => void;
  /** Largest request a public method decodes (its callers are anonymous). */
  publicMessageBytes: number;
}

type Decode = (bytes: Buffer) => unknown;

export class RequestGuard {
  private readonly opts: GuardOptions;
  private readonly decoders = new Map<string, Decode>();

  constructor(opts: GuardOptions) {
    this.opts = opts;
  }

  /** The service as the server registers it: its requests arrive as bytes, decoded by interceptor(). */
  service<T extends grpc.ServiceDefinition>(service: T): T {
    const raw: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
    for (const [name, method] of Object.entries(service)) {
      this.decoders.set(method.path, method.requestDeserialize);
      raw[name] = { ...method, requestDeserialize: (bytes: Buffer) => bytes };
    }
    return raw as T;
  }

  interceptor(): grpc.ServerInterceptor {
    return (method, call) => {
      const path = method.path;
      const decode = this.decoders.get(path);
      const policy = decode ? this.opts.policy(path) : 'public';
      let refused = false;
      const refuse = (err: unknown) => {
        refused = true;
        call.sendStatus(toGrpcError(err));
      };
      const listener = new grpc.ServerListenerBuilder()
        .withOnReceiveMetadata((metadata, next) => {
          if (policy !== 'public') {
            try {
              this.opts.authenticate(policy, metadata);
            } catch (err) {
              refuse(err); // `next` is not called: the handler never starts reading the request
              return;
            }
          }
          next(metadata);
        })
        .withOnReceiveMessage((message, next) => {
          if (refused) return;
          if (!decode) return next(message); // a service registered by a library (health, reflection)
          const bytes = message as Buffer;
          if (policy === 'public' && bytes.length > this.opts.publicMessageBytes) {
            return refuse(new GatewayError('LIMIT', `a request of ${bytes.length} bytes; this method takes at most ${this.opts.publicMessageBytes}`));
          }
          let decoded: unknown;
          try {
            decoded = decode(bytes);
          } catch (err) {
            return refuse(new GatewayError((err as { code?: unknown }).code === 'LIMIT' ? 'LIMIT' : 'INVALID_ARGUMENT', `the request does not decode: ${(err as Error).message}`));
          }
          next(decoded);
        })
        .build();
      return new grpc.ServerInterceptingCall(call, new grpc.ResponderBuilder().withStart((next) => next(listener)).build());
    };
  }
}
