// What every part of the gateway shares: the typed errors and their gRPC status map, the one
// configuration schema, the scheduler of periodic work, files only the node's user may read, key
// material in base64url, the protobuf <-> identity envelope conversions, gRPC's HTTP/2 windows, a bounded map.
export { CONFIG_FILE, configSchema, dataPath, dnsServersOf, envOverrides, loadConfig, parseConfig, redactConfig, smtpHostname, type ConfigInput, type NodeConfig } from './config.ts';
export { GatewayError, isStorageFull, oneLine, openingFile, peerErrorCode, storageFailure, toGrpcError, type GatewayErrorCode } from './errors.ts';
export { CLIENT_FLOW_CONTROL_WINDOW, widenServerWindows } from './grpc-windows.ts';
export { b64u, fromB64u, type KeyMaterial } from './key-material.ts';
export { LruMap } from './lru.ts';
export { createPrivateFile, refuseSharedFile, tightenModes, writeSecretFile, type ModeFix } from './private-files.ts';
export { Scheduler, type Clock } from './scheduler.ts';
export { envelopeFromWire, envelopeToWire } from './wire.ts';
