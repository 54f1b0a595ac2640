/**
 * `groups --e2ee`: the same load measured twice in one run, in plain rooms and then in end-to-end
 * encrypted rooms (each on a fresh node), to show what encryption costs the SFU per forwarded
 * packet. It should cost nothing: the SFU forwards an E2EE frame as any other, reading only its
 * clear first bytes; its packets are larger by the AES-GCM tag and trailer, no more work per
 * packet than that. Members of the E2EE rooms join with a public key and send opaque frames
 * (`e2ee-media.ts`).
 */
import { type StepMeasures, serverCpuPerPacket } from './result.ts';

/** One load, plain rooms against E2EE rooms. CPU figures are shares of a core per 1,000 forwarded packets/s. */
export interface E2eeComparison {
  rooms: number;
  /** Everything the server side spends (media workers and the node's process). */
  plainCpuPerKiloPacket: number;
  e2eeCpuPerKiloPacket: number;
  /** E2EE ÷ plain (about 1: encryption adds nothing per packet). */
  cpuPerPacketRatio: number;
  /** The media workers alone. */
  plainWorkerCpuPerKiloPacket: number;
  e2eeWorkerCpuPerKiloPacket: number;
  workerCpuPerPacketRatio: number;
  /** The mean forwarded packet, bytes (SRTP included): E2EE frames carry the tag and the trailer. */
  plainPacketBytes: number;
  e2eePacketBytes: number;
  lossPlain: number;
  lossE2ee: number;
  /** The whole machine's busy share in each window (1 = every core): a phase disturbed by other work shows here. */
  machineBusyPlain?: number;
  machineBusyE2ee?: number;
}

const packetBytes = (s: StepMeasures) => s.forwardedBitsPerSecond / 8 / Math.max(1, s.forwardedPacketsPerSecond);

/** Each load measured on Haven both in plain and in E2EE rooms. */
export function e2eeComparison(steps: readonly StepMeasures[]): E2eeComparison[] {
  return steps.flatMap((e2ee) => {
    const plain = steps.find((s) => s.target === 'haven' && !s.e2ee && s.rooms === e2ee.rooms);
    if (!e2ee.e2ee || e2ee.target !== 'haven' || !plain) return [];
    const plainCpu = serverCpuPerPacket(plain) * 1000;
    const e2eeCpu = serverCpuPerPacket(e2ee) * 1000;
    return [
      {
        rooms: e2ee.rooms,
        plainCpuPerKiloPacket: plainCpu,
        e2eeCpuPerKiloPacket: e2eeCpu,
        cpuPerPacketRatio: e2eeCpu / plainCpu,
        plainWorkerCpuPerKiloPacket: plain.workerCpuPerKiloPacket,
        e2eeWorkerCpuPerKiloPacket: e2ee.workerCpuPerKiloPacket,
        workerCpuPerPacketRatio: e2ee.workerCpuPerKiloPacket / plain.workerCpuPerKiloPacket,
        plainPacketBytes: Math.round(packetBytes(plain)),
        e2eePacketBytes: Math.round(packetBytes(e2ee)),
        lossPlain: plain.loss,
        lossE2ee: e2ee.loss,
        ...(plain.machineBusy !== undefined ? { machineBusyPlain: plain.machineBusy } : {}),
        ...(e2ee.machineBusy !== undefined ? { machineBusyE2ee: e2ee.machineBusy } : {}),
      },
    ];
  });
}

const per = (v: number) => `${(v * 100).toFixed(3)} %`;
const ratio = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : '–');
const loss = (v: number) => `${(v * 100).toFixed(2)} %`;
const busy = (v: number | undefined) => (v === undefined ? '–' : `${Math.round(v * 100)} %`);

/** The console's line for one load. */
export function describeE2ee(c: E2eeComparison): string {
  return (
    `${c.rooms} rooms: E2EE ÷ plain rooms, server CPU per forwarded packet ${ratio(c.cpuPerPacketRatio)} ` +
    `(${per(c.e2eeCpuPerKiloPacket)} against ${per(c.plainCpuPerKiloPacket)} of a core per 1k pkt/s; ` +
    `workers alone ${ratio(c.workerCpuPerPacketRatio)}); packets ${c.e2eePacketBytes} against ${c.plainPacketBytes} bytes; ` +
    `loss ${loss(c.lossE2ee)} E2EE, ${loss(c.lossPlain)} plain; machine busy ${busy(c.machineBusyE2ee)} E2EE, ${busy(c.machineBusyPlain)} plain`
  );
}

/** The report's table (plain text cells; the report escapes them), or undefined without `--e2ee`. */
export function e2eeTable(comparison: readonly E2eeComparison[]): { head: string[]; rows: string[][] } | undefined {
  if (!comparison.length) return undefined;
  return {
    head: [
      'rooms',
      'plain: server CPU per 1k pkt/s',
      'E2EE: server CPU per 1k pkt/s',
      'E2EE ÷ plain',
      'workers alone, E2EE ÷ plain',
      'packet bytes, plain / E2EE',
      'loss, plain / E2EE',
      'machine busy, plain / E2EE',
    ],
    rows: comparison.map((c) => [
      String(c.rooms),
      per(c.plainCpuPerKiloPacket),
      per(c.e2eeCpuPerKiloPacket),
      ratio(c.cpuPerPacketRatio),
      ratio(c.workerCpuPerPacketRatio),
      `${c.plainPacketBytes} / ${c.e2eePacketBytes}`,
      `${loss(c.lossPlain)} / ${loss(c.lossE2ee)}`,
      `${busy(c.machineBusyPlain)} / ${busy(c.machineBusyE2ee)}`,
    ]),
  };
}
