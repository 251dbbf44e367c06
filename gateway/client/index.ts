// The app SDK: a mailbox profile, connecting to its node, sealing and submitting, subscribing and
// opening deliveries, and reading what the SMTP bridge recorded about bridged mail.
export { bridgedTrace, fromAddress, parseAuthenticationResults } from './bridged-mail.ts';
export { buildRfc5322, connect, openDelivery, profileResolver, readProfile, sealFor, submit, subscribe, unary, type Clients, type ComposeOptions, type MailboxProfile, type ReceivedMessage } from './client.ts';
