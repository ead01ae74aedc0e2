import { runConformanceSuite } from '@switchboard/core/testing';
import { target } from './conformance-target.js';

// Every scenario again with the records of a partition handled side by side (offset windows, key queues).
runConformanceSuite({ ...target, name: 'kafka, ordering "key"', defaults: { ordering: 'key' } });
