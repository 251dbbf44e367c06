// One set of protobuf mapping options, shared by the type generator and the runtime loader, so the
// generated types always describe what the loader actually produces.
export const protoLoaderOptions = {
  keepCase: false,
  longs: Number,
  enums: String,
  bytes: Buffer,
  defaults: true,
  arrays: true,
  objects: false,
  oneofs: true,
} as const;

export const PROTO_FILE = new URL('./aftersmtp.proto', import.meta.url).pathname;
