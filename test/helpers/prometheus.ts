/**
 * A real Prometheus (Debian's `prometheus`) scraping Haven nodes every second, as an operator
 * runs it, with its HTTP API to read the series back. Each instance has its own folder and port.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../../bench/processes.ts';
import { freePort } from './ports.ts';

export interface PrometheusOptions {
  /** `host:port` of each node's metrics listener. */
  targets: string[];
  /** The metrics token (`HAVEN_METRICS_TOKEN`), sent as a bearer token. */
  token?: string;
  /** Alert rule files to evaluate. */
  ruleFiles?: string[];
}

export interface Prometheus {
  url: string;
  /** The value of `query` (its first sample), or undefined while it has none. */
  query(query: string): Promise<number | undefined>;
  /** Waits until a scraped value of `query` `holds`, and gives it. */
  scraped(query: string, holds: (v: number) => boolean): Promise<number>;
  stop(): Promise<void>;
}

/** Starts Prometheus with a 1 s scrape of the `haven` job and waits until it is ready. */
export async function startPrometheus(options: PrometheusOptions): Promise<Prometheus> {
  const dir = mkdtempSync(join(tmpdir(), 'haven-prometheus-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const ruleFiles = (options.ruleFiles ?? []).map((f) => `'${f}'`).join(', ');
  writeFileSync(
    join(dir, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      `rule_files: [${ruleFiles}]`,
      'scrape_configs:',
      '  - job_name: haven',
      '    scrape_interval: 1s',
      ...(options.token ? [`    authorization: { credentials: ${options.token} }`] : []),
      `    static_configs: [{ targets: [${options.targets.map((t) => `'${t}'`).join(', ')}] }]`,
    ].join('\n'),
  );
  const child: ChildProcess = spawn(
    '/usr/bin/prometheus',
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const query = async (q: string) => {
    const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(q)}`);
    const body = (await res.json()) as { data: { result: { value: [number, string] }[] } };
    const sample = body.data.result[0];
    return sample ? Number(sample.value[1]) : undefined;
  };
  try {
    await waitFor(
      () =>
        fetch(`${url}/-/ready`).then(
          (r) => r.ok,
          () => false,
        ),
      30_000,
      'Prometheus ready',
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    url,
    query,
    scraped: (q, holds) =>
      waitFor(
        async () => {
          const v = await query(q);
          return v !== undefined && holds(v) ? { v } : undefined;
        },
        30_000,
        `Prometheus to scrape ${q}`,
      ).then(({ v }) => v),
    stop,
  };
}
