// The node's DNS client (one resolver for every lookup; DNSSEC status from a loopback validating resolver).
export { DnsPacketResolver, hostAddresses, isLoopback, parseServer } from './resolver.ts';
export type { DnsAnswer, DnsRecordType, DnsResolver, DnsResolverOptions, DnsServer, DnsStatus, LookupOptions, MxRecord, TlsaRecord } from './resolver.ts';
export { DnsError } from './errors.ts';
export type { DnsErrorCode } from './errors.ts';
