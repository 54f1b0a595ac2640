/**
 * The bench's result: what `npm run bench` prints as JSON and draws in its HTML report. One run
 * has one or more steps (a load level: a number of rooms); with `--baseline`, each step is measured
 * twice, on Haven and on bare mediasoup (same worker binary, same topology), one after the other;
 * with `--e2ee`, on Haven in plain rooms and in end-to-end encrypted rooms.
 */

import type { E2eeComparison } from './e2ee.ts';
import type { SoakResult } from './soak.ts';
import type { MissingTrack } from './track-check.ts';

/** Percentiles of a set of durations, in ms (null when there were no samples). */
export interface Percentiles {
  count: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
}

/** Percentiles of `values` (nearest rank). */
export function percentiles(values: readonly number[]): Percentiles {
  if (values.length === 0) return { count: 0, p50: null, p95: null, p99: null, max: null };
  const sorted = [...values].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] ?? null;
  return { count: sorted.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: sorted.at(-1) ?? null };
}

/** CPU as a share of one core (1 = a whole core) over the step's measuring window, and memory. */
export interface ProcessLoad {
  /** user + system time ÷ wall time. */
  cpu: number;
  /** Resident memory at the end of the window, bytes. */
  rssBytes: number;
}

export interface StepMeasures {
  /** What was measured: Haven through its front door, or bare mediasoup. */
  target: 'haven' | 'baseline';
  /** Haven's end-to-end encrypted rooms (`--e2ee`: the same load as the plain step beside it). */
  e2ee?: boolean;
  rooms: number;
  participantsPerRoom: number;
  producers: number;
  consumers: number;
  /** Measuring window, seconds (after the ramp-up). */
  seconds: number;
  /** Packets and bits the load generator received from the SFU, per second. */
  forwardedPacketsPerSecond: number;
  forwardedBitsPerSecond: number;
  /** Packets the load generator sent to the SFU, per second. */
  sentPacketsPerSecond: number;
  /** Lost ÷ expected over all consumers (sequence gaps at the receiver). */
  loss: number;
  /** The worst consumer's loss. */
  maxConsumerLoss: number;
  /** Sender time (in the payload) to receipt, ms. */
  oneWayDelayMs: Percentiles;
  /** Each mediasoup worker, and their sum. */
  workers: ProcessLoad[];
  workersTotal: ProcessLoad;
  /** The Haven node's Node.js process (absent for the baseline: mediasoup's Node side idles in the bench process). */
  node?: ProcessLoad;
  /** The load generator's process: a saturated generator must not pass for a saturated SFU. */
  loadGenerator: ProcessLoad;
  /** The whole machine's CPU in use during the window (1 = every core busy): others' load shows here. */
  machineBusy?: number;
  /** Workers' CPU (share of a core) per 1,000 forwarded packets/s. */
  workerCpuPerKiloPacket: number;
  /** Media routers the rooms use, all nodes together (Haven only): more than the rooms when a room spread. */
  routers?: number;
  /** connect → admitted → first remote packet, ms (Haven only). */
  join?: { admitted: Percentiles; firstPacket: Percentiles };
  /** Action sent → every target notified, ms, per action (the `moderation` scenario). */
  moderation?: Record<string, Percentiles>;
  errors: number;
  /** Tracks a participant should have received in the window and did not (Haven only; the first 50). */
  missingTracks?: MissingTrack[];
  /** How many there were in all. */
  missingTrackCount?: number;
}

export interface BenchResult {
  scenario: 'groups' | 'education' | 'joinstorm' | 'moderation';
  startedAt: string;
  machine: { cpus: number; cpuModel: string; memoryBytes: number; node: string; mediasoup: string };
  options: Record<string, string | number | boolean>;
  steps: StepMeasures[];
  /** With `--baseline`: Haven ÷ bare mediasoup at the same load. */
  comparison?: { rooms: number; cpuPerPacketRatio: number; lossHaven: number; lossBaseline: number }[];
  /** With `--e2ee`: E2EE rooms against plain rooms at the same load. */
  e2ee?: E2eeComparison[];
  /** With `--find-capacity`: the largest load that held (loss ≤ 1 %, every worker ≤ 90 % of a core). */
  capacity?: {
    rooms: number;
    consumers: number;
    workers: number;
    roomsPerWorker: number;
    consumersPerWorker: number;
    stoppedBecause: string;
  };
  /** With `--soak`: memory and descriptors sampled through the held load. */
  soak?: SoakResult;
  /** Why the run failed, if it did (the command then exits non-zero). */
  failure?: string;
}

/** Everything the server side spends per forwarded packet: the workers, and the Node process that drives them. */
export function serverCpuPerPacket(step: StepMeasures): number {
  return (step.workersTotal.cpu + (step.node?.cpu ?? 0)) / Math.max(1, step.forwardedPacketsPerSecond);
}
