import { transportConformance } from './conformance.ts';
import { http2Factory } from './factories.ts';

transportConformance('http2', http2Factory);
