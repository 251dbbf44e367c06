// The SMTP bridge's public surface: everything outside bridge/ imports from here only. bridge/ knows SMTP
// and MIME, nothing of gRPC or QUIC; DNS is injected (the node passes its one DNS client).
export type {
  BridgeResolver, BridgeDnsAnswer, BridgeDnsStatus, BridgeMxRecord, BridgeSecureDnsAnswer, BridgeSecureResolver, BridgeTlsaRecord,
} from './auth/dns.ts';
export { verifyMessage } from './auth/verify.ts';
export type { AuthVerdicts, DkimResult, DkimVerdict, DmarcResult, DmarcVerdict, SpfResult, SpfVerdict, VerifyOptions } from './auth/verify.ts';
export type { ArcResult, ArcVerdict } from './auth/arc-verify.ts';
export { AuthError } from './auth/errors.ts';
export type { AuthErrorCode } from './auth/errors.ts';
export { arcSeal, DEFAULT_ARC_SIGNED_HEADERS, MAX_ARC_INSTANCE } from './auth/arc-seal.ts';
export type { ArcSealOptions, ArcSet } from './auth/arc-seal.ts';
export { DEFAULT_DKIM_SIGNED_HEADERS, DKIM_RSA_BITS, dkimDnsRecord, dkimSign, generateDkimKey } from './auth/dkim-sign.ts';
export type { DkimDnsRecordOptions, DkimKey, DkimKeyAlgorithm, DkimSigner, DkimSignOptions } from './auth/dkim-sign.ts';
export { BridgeError, smtpReplyFor } from './inbound/errors.ts';
export type { BridgeErrorCode, SmtpReply } from './inbound/errors.ts';
export type {
  BridgeLogger, InboundHandler, InboundLimits, InboundMessage, InboundObservation, InboundOptions, InboundRecipient, InboundServer, ListenerConfig,
  ListenerKind, RecipientKind,
} from './inbound/types.ts';
export { startInbound } from './inbound/server.ts';
export { authorOf } from './inbound/message.ts';
export { daneTlsaPolicy, isUsableTlsa, peerChain, verifyDane } from './outbound/dane.ts';
export type { DaneFailure, DanePolicy, DaneVerdict } from './outbound/dane.ts';
export {
  fetchStsPolicy, InMemoryStsPolicyCache, MAX_STS_AGE_SECONDS, mxMatches, parseStsPolicy, parseStsRecord, refreshStsPolicy, resolveStsPolicy, StsError,
} from './outbound/mta-sts.ts';
export type {
  CachedStsPolicy, StsFailureCode, StsFetchOptions, StsMode, StsPolicy, StsPolicyCache, StsRecord, StsResolution,
} from './outbound/mta-sts.ts';
export { Srs, SrsError } from './outbound/srs.ts';
export type { SrsErrorCode, SrsOptions } from './outbound/srs.ts';
export { ComposeError, composeMessage, RECEIPT_FIELD } from './outbound/compose.ts';
export type { ComposedMessage, ComposeErrorCode, ComposeInput } from './outbound/compose.ts';
export { buildDsn, DsnError, MAX_RETURNED_MESSAGE, parseDsn } from './outbound/dsn.ts';
export type { DsnAction, DsnErrorCode, DsnInput, DsnRecipient, ParsedDsn, ParsedDsnRecipient } from './outbound/dsn.ts';
export type {
  OutboundEnvelope, OutboundMessage, OutboundRecipient, RecipientResult, RecipientStatus, SmtpNextHop, SmtpOutbound, SmtpOutboundOptions,
  SmtpReplyText, SmtpTlsMode, TlsFailureType, TlsOutcome,
} from './outbound/types.ts';
export { createSmtpOutbound } from './outbound/delivery.ts';
export { dotStuff, safeMailbox, SmtpSession, xtext } from './outbound/smtp-client.ts';
export type { SmtpSessionOptions, TransactionReplies } from './outbound/smtp-client.ts';
export { MAX_REPLY_LINE, MAX_REPLY_LINES, parseExtensions, SmtpClientError } from './outbound/smtp-reply.ts';
export type { SmtpClientErrorCode, SmtpExtensions, SmtpReply as SmtpClientReply } from './outbound/smtp-reply.ts';
export { hostAddresses, resolveMx } from './outbound/mx.ts';
export type { MxHost, MxResolution } from './outbound/mx.ts';
export { authenticates, checkPeer, hostPolicy, tlsRequired } from './outbound/tls-policy.ts';
export type { HostPolicy, PeerVerdict, PolicyReport } from './outbound/tls-policy.ts';
export { MAX_TLSRPT_DESTINATIONS, parseTlsRptRecord } from './reports/tlsrpt-record.ts';
export type { TlsRptDestination, TlsRptRecord } from './reports/tlsrpt-record.ts';
export { aggregateTlsOutcomes, buildTlsReport, tlsReportId, utcDayRange } from './reports/tlsrpt-build.ts';
export type { TlsFailureInput, TlsOutcomeDayCount, TlsPolicyInput, TlsReportDomain, TlsReportInput } from './reports/tlsrpt-build.ts';
export { gzipTlsReport, TLSRPT_DKIM_SIGNED_HEADERS, TLSRPT_GZIP_TYPE, TLSRPT_JSON_TYPE, tlsReportFilename, tlsReportMail } from './reports/tlsrpt-mail.ts';
export type { TlsReportMailInput } from './reports/tlsrpt-mail.ts';
export { isPublicAddress, MAX_TLS_REPORT_BYTES, postTlsReport } from './reports/tlsrpt-post.ts';
export type { TlsReportPostOptions } from './reports/tlsrpt-post.ts';
export { extractTlsReportFromMail, MAX_TLS_REPORT_INFLATED, MAX_TLS_REPORT_MAIL, parseTlsReport } from './reports/tlsrpt-read.ts';
export type { ExtractedTlsReport } from './reports/tlsrpt-read.ts';
export { TLS_POLICY_TYPES, TLS_RESULT_TYPES, validateTlsReport } from './reports/tlsrpt-schema.ts';
export type { TlsFailureDetail, TlsPolicyType, TlsReport, TlsReportPolicy, TlsReportValidation, TlsResultType } from './reports/tlsrpt-schema.ts';
export { TlsRptError } from './reports/errors.ts';
export type { TlsRptErrorCode } from './reports/errors.ts';
export { aggregateDmarc, dmarcDayRange } from './reports/dmarc-aggregate.ts';
export type { DmarcDomainAggregate, DmarcObservation } from './reports/dmarc-aggregate.ts';
export { buildDmarcReport } from './reports/dmarc-xml.ts';
export { parseDmarcReport } from './reports/dmarc-parse.ts';
export type { DmarcParseLimits } from './reports/dmarc-parse.ts';
export { dmarcReportFilename, dmarcReportMail, extractDmarcReportFromMail } from './reports/dmarc-mail.ts';
export type { DmarcReportMailOptions } from './reports/dmarc-mail.ts';
export { authorisedDestinations, checkExternalDestination, dmarcPolicyPublished, MAX_RUA_URIS, parseDmarcRua } from './reports/dmarc-record.ts';
export type { DmarcRuaUri } from './reports/dmarc-record.ts';
export { DMARC_XML_NAMESPACE, DmarcReportError } from './reports/dmarc-types.ts';
export type {
  DmarcAggregateReport, DmarcAlignmentMode, DmarcDisposition, DmarcDkimAuthResult, DmarcOverrideReason, DmarcPolicyAction, DmarcPolicyPublished,
  DmarcReportErrorCode, DmarcReportRecord,
} from './reports/dmarc-types.ts';
