/**
 * Every series a node exports, on a registry of its own (several nodes can run in one process, in
 * tests). Labels are bounded by construction: stages, worker slots, request names of the
 * protocol, error codes, queue names, statuses. Never a room or participant id: those are
 * PHI-adjacent, and unbounded.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Join latencies: from under 50 ms (a direct join) to a long wait in the waiting room. */
const joinBuckets = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];
const redisBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

export function createSeries(registry = new Registry()) {
  const registers = [registry];
  return {
    registry,
    roomsOpen: new Gauge({ name: 'haven_rooms_open', help: 'Rooms open on this node.', registers }),
    participants: new Gauge({
      name: 'haven_participants',
      help: 'Participants in this node’s rooms, by stage (consent, waiting, admitted).',
      labelNames: ['stage'],
      registers,
    }),
    connectionQuality: new Gauge({
      name: 'haven_connection_quality',
      help: 'Participants in this node’s sessions by their connection quality (excellent, good, poor, lost).',
      labelNames: ['quality'],
      registers,
    }),
    videosHeld: new Gauge({
      name: 'haven_videos_held',
      help: 'Videos the node holds back from their receivers: the downlink cannot carry them (bandwidth), or audio-only (audioOnly).',
      labelNames: ['reason'],
      registers,
    }),
    failovers: new Counter({
      name: 'haven_room_failovers_total',
      help: 'Rooms opened here from the state another node (or an earlier run) left: sessions that moved.',
      registers,
    }),
    tokenToAdmitted: new Histogram({
      name: 'haven_join_admitted_seconds',
      help: 'From the connection (token verified) to being admitted (the join answer, or the admission from the waiting room).',
      buckets: joinBuckets,
      registers,
    }),
    admittedToMedia: new Histogram({
      name: 'haven_join_first_media_seconds',
      help: 'From being admitted to the participant’s first media transport connected (DTLS, or plain RTP).',
      buckets: joinBuckets,
      registers,
    }),
    producers: new Gauge({
      name: 'haven_worker_producers',
      help: 'Producers on a media worker’s routers.',
      labelNames: ['worker'],
      registers,
    }),
    consumers: new Gauge({
      name: 'haven_worker_consumers',
      help: 'Consumers on a media worker’s routers.',
      labelNames: ['worker'],
      registers,
    }),
    workerCpu: new Gauge({
      name: 'haven_worker_cpu_seconds',
      help: 'CPU time (user + system) a media worker process used since it started.',
      labelNames: ['worker'],
      registers,
    }),
    workerRss: new Gauge({
      name: 'haven_worker_max_rss_bytes',
      help: 'Largest resident set size of a media worker process (getrusage ru_maxrss).',
      labelNames: ['worker'],
      registers,
    }),
    workerDeaths: new Counter({
      name: 'haven_worker_deaths_total',
      help: 'Media worker processes that died (each is replaced in its slot).',
      labelNames: ['worker'],
      registers,
    }),
    requests: new Counter({
      name: 'haven_signaling_requests_total',
      help: 'Signaling requests answered, by request name (`connect` for the handshake, `unknown` for names outside the protocol) and code (`ok` or the error code).',
      labelNames: ['event', 'code'],
      registers,
    }),
    rateLimited: new Counter({
      name: 'haven_signaling_rate_limited_total',
      help: 'Signaling requests refused with RATE_LIMITED, by request name.',
      labelNames: ['event'],
      registers,
    }),
    redisLatency: new Histogram({
      name: 'haven_redis_command_duration_seconds',
      help: 'Duration of the node’s Redis commands (its main connection), until the reply or the error.',
      buckets: redisBuckets,
      registers,
    }),
    ready: new Gauge({
      name: 'haven_ready',
      help: '1 when the node is ready (what `GET /readyz` answers 200 for: Redis answers, a media worker lives), else 0.',
      registers,
    }),
    redisUp: new Gauge({
      name: 'haven_redis_up',
      help: '1 when the node’s Redis connection is ready, else 0.',
      registers,
    }),
    queueJobs: new Gauge({
      name: 'haven_queue_jobs',
      help: 'BullMQ jobs by queue and state (waiting, active, delayed, failed).',
      labelNames: ['queue', 'state'],
      registers,
    }),
    stalledJobs: new Counter({
      name: 'haven_queue_stalled_jobs_total',
      help: 'BullMQ jobs found stalled (their worker died or hung) since this node started, by queue.',
      labelNames: ['queue'],
      registers,
    }),
    webhookDeliveries: new Gauge({
      name: 'haven_webhook_deliveries',
      help: 'Webhook deliveries on record, by status (pending, delivered, retrying, dead).',
      labelNames: ['status'],
      registers,
    }),
    attendancePending: new Gauge({
      name: 'haven_attendance_events_pending',
      help: 'Attendance events not yet in Redis (in memory or in the spill file).',
      registers,
    }),
    attendanceSpilled: new Gauge({
      name: 'haven_attendance_events_spilled',
      help: 'Attendance events waiting in the spill file on disk.',
      registers,
    }),
    leaseRenewals: new Counter({
      name: 'haven_lease_renewals_total',
      help: 'Room lease renewals that went through.',
      registers,
    }),
    leaseLosses: new Counter({
      name: 'haven_lease_losses_total',
      help: 'Room leases lost (not renewed in time, or taken by another node): the room left this node.',
      registers,
    }),
  };
}

export type Series = ReturnType<typeof createSeries>;
