import { runConformanceSuite } from '@switchboard/core/testing';
import { target } from './conformance-target.js';
import { testTransport } from './helpers.js';

// Every scenario again with @platformatic/kafka producing (kafkajs still consumes and administers).
runConformanceSuite({ ...target, name: 'kafka, producer "platformatic"', createTransport: () => testTransport({ producer: 'platformatic' }) });
