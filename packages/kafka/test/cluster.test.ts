import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it, onTestFinished } from 'vitest';
import { runLeaderFailover, type LeaderFailoverReport } from '@switchboard/kafka/testing';
import { TEST_DRIVER } from './helpers.js';

const run = promisify(execFile);
const script = fileURLToPath(new URL('../../../scripts/kafka.sh', import.meta.url));
const cluster = async (...args: string[]) => void (await run('bash', [script, 'cluster', ...args]));
const brokers = (process.env.KAFKA_CLUSTER_BROKERS ?? '127.0.0.1:19091,127.0.0.1:19092,127.0.0.1:19093').split(',');

// A 3-broker cluster takes three JVMs and about a minute of leader kills: CI runs it (it sets
// SWITCHBOARD_CLUSTER_TESTS=1). The test starts the cluster and stops it afterwards (the other tests
// run on a machine without three idle JVMs).
const enabled = process.env.SWITCHBOARD_CLUSTER_TESTS === '1';
const clusterIt = enabled ? it : it.skip;
const reason = enabled ? '' : ' — skipped: needs the 3-broker cluster (SWITCHBOARD_CLUSTER_TESTS=1, scripts/kafka.sh cluster up)';

describe('kafka on a 3-broker cluster (replication factor 3, min.insync.replicas 2)', () => {
  clusterIt(
    `the leader of a partition SIGKILLed mid-stream: acks=all loses no acknowledged message (driver ${TEST_DRIVER}); acks 0 and 1 are measured${reason}`,
    async () => {
      await cluster('up');
      onTestFinished(() => cluster('down'));
      const reports: LeaderFailoverReport[] = [];
      // acks 0 / 1 / all on the project's driver (producer and consumer group), then acks=all with the
      // consumer group's coordinator killed (its commits fail while it rejoins).
      const runs = [
        { guarantee: 'none', kill: 'partition-leader' },
        { guarantee: 'leader', kill: 'partition-leader' },
        { guarantee: 'all', kill: 'partition-leader' },
        { guarantee: 'all', kill: 'group-coordinator' },
      ] as const;
      for (const { guarantee, kill } of runs) {
        reports.push(
          await runLeaderFailover({
            brokers,
            guarantee,
            driver: TEST_DRIVER,
            kill,
            total: 20_000,
            killBroker: (node) => cluster('kill', String(node)),
            startBroker: (node) => cluster('start', String(node)),
          }),
        );
      }
      for (const r of reports) {
        console.log(
          `[measure] kafka cluster, ${r.killed === 'partition-leader' ? 'leader of partition 0' : 'group coordinator'} (node ${r.killedNode}) SIGKILLed, acks=${r.acks}, driver ${r.driver}: ${r.throughput} msg/s, acknowledged ${r.acknowledged}, rejected ${r.rejected}, delivered ${r.delivered}, lost ${r.lost}, duplicates ${r.duplicates}, publishing stalled ${r.failoverMs} ms, consumer interrupted/resumed ${r.consumerInterrupted}/${r.consumerResumed}`,
        );
      }
      for (const all of reports.filter((r) => r.guarantee === 'all')) {
        expect(all.acknowledged, `acks=all, driver ${all.driver}, killed ${all.killed}`).toBeGreaterThan(0);
        expect(all.lost, `acks=all, driver ${all.driver}, killed ${all.killed}`).toBe(0);
      }
    },
    720_000,
  );
});
