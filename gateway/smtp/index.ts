// The node's side of the SMTP bridge: the listeners, and handing mail received over SMTP to the
// acceptance path.
export { SmtpBridge } from './bridge-inbound.ts';
export { bridgeErrorFor, type SmtpHandler } from './smtp-handler.ts';
export { createSmtpSending, dkimSigners, nodeDkimRecord, nodeSrs, publishedDkimKeys, smtpNextHop, DKIM_SERVICES, type SmtpSending } from './bridge-outbound.ts';
export { SmtpAgent, type SmtpAgentOptions } from './smtp-agent.ts';
export { hostedStsPolicy, stsPolicyDomain, STS_POLICY_PATH, type HostedStsPolicy } from './mta-sts-host.ts';
export { checkDnsRecords, expectedDnsRecords, type CheckStatus, type ExpectedRecord, type RecordCheck, type RecordKind } from './dns-records.ts';
export { TlsReporter, type TlsReporterDeps } from './tls-reporter.ts';
export { DmarcReporter, type DmarcReporterDeps } from './dmarc-reporter.ts';
export { scheduleReports, type ReportingDeps } from './reporting.ts';
export { ReportIntake, MAX_REPORTS_PER_DAY, takeReportPost, TLSRPT_POST_PATH, type IntakeResult } from './report-intake.ts';
export { forwardBouncer } from './forward-bounce.ts';
