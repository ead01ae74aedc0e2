import { runConformanceSuite } from '@switchboard/core/testing';
import { target } from './conformance-target.js';

runConformanceSuite(target);
