import { transportConformance } from './conformance.ts';
import { quicFactory } from './factories.ts';

transportConformance('quic', quicFactory);
