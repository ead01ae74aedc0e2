import { afterAll } from 'vitest';
import { deleteTestTopics } from './helpers.js';

// Every Kafka test file removes the topics it created.
afterAll(deleteTestTopics, 60_000);
