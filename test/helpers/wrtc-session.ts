/**
 * SessionClients inside Node, for integration tests and load: WebRTC from `@roamhq/wrtc`
 * (libwebrtc in the npm package) installed as browser globals, mediasoup-client's `Chrome111`
 * handler, synthetic tracks (a sine tone, a moving I420 picture) and counters of what arrives on
 * remote tracks. Everything made here is closable, so that a test process exits: call
 * `session.close()` (or `stop()` on what the free functions return).
 */
import { createServer, type Socket as NetSocket, connect as netConnect } from 'node:net';
import wrtc from '@roamhq/wrtc';
import { type RemoteTrack, SessionClient, type SessionClientOptions } from '../../client-sdk/src/index.ts';

const { RTCAudioSink, RTCAudioSource, RTCVideoSink, RTCVideoSource } = wrtc.nonstandard;

/** Browser WebRTC globals mediasoup-client's Chrome111 handler uses. */
const globalNames = [
  'RTCPeerConnection',
  'RTCSessionDescription',
  'RTCIceCandidate',
  'MediaStream',
  'MediaStreamTrack',
  'RTCRtpSender',
  'RTCRtpReceiver',
  'RTCRtpTransceiver',
  'RTCDataChannel',
  'RTCDtlsTransport',
  'RTCIceTransport',
  'RTCSctpTransport',
  'RTCPeerConnectionIceEvent',
  'RTCDataChannelEvent',
] as const;

let exitHooked = false;

/**
 * Sets the WebRTC globals from `@roamhq/wrtc` (where not defined already). Idempotent.
 *
 * Also ends the process with `process.exit` once its event loop is empty: libwebrtc's static
 * destructors crash (SIGSEGV) when Node tears a process down naturally with wrtc loaded, which
 * would turn a passing test file into a failed one.
 */
export function installWrtcGlobals(): void {
  if (!exitHooked) {
    exitHooked = true;
    process.once('beforeExit', () => process.exit(process.exitCode ?? 0));
  }
  const target = globalThis as Record<string, unknown>;
  const source = wrtc as unknown as Record<string, unknown>;
  for (const name of globalNames) {
    if (target[name] === undefined && source[name] !== undefined) target[name] = source[name];
  }
}

/** Something with a timer or a native sink behind it. */
export interface Stoppable {
  /** Stops it; idempotent. */
  stop(): void;
}

export interface SyntheticTrack extends Stoppable {
  readonly track: MediaStreamTrack;
}

export interface AudioTrackOptions {
  /** Tone, in Hz. Default 440. */
  frequency?: number;
  /** Default 48000. */
  sampleRate?: number;
  /** Peak amplitude, 0–32767. Default 8000. */
  amplitude?: number;
}

/** A mono sine tone, fed in 10 ms chunks (catching up on timer drift, at most 0.5 s). */
export function createAudioTrack(options: AudioTrackOptions = {}): SyntheticTrack {
  const { frequency = 440, sampleRate = 48_000, amplitude = 8_000 } = options;
  const source = new RTCAudioSource();
  const track = source.createTrack();
  const numberOfFrames = sampleRate / 100;
  const samples = new Int16Array(numberOfFrames);
  const step = (2 * Math.PI * frequency) / sampleRate;
  let phase = 0;
  let sent = 0;
  const started = performance.now();
  const timer = setInterval(() => {
    const due = Math.floor((performance.now() - started) / 10);
    sent = Math.max(sent, due - 50);
    for (; sent < due; sent++) {
      for (let i = 0; i < numberOfFrames; i++) {
        samples[i] = Math.round(Math.sin(phase) * amplitude);
        phase += step;
      }
      phase %= 2 * Math.PI;
      source.onData({ samples, sampleRate, bitsPerSample: 16, channelCount: 1, numberOfFrames });
    }
  }, 10);
  let stopped = false;
  return {
    track,
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      track.stop();
    },
  };
}

export interface VideoTrackOptions {
  /** Default 320. */
  width?: number;
  /** Default 240. */
  height?: number;
  /** Frames per second. Default 15. */
  fps?: number;
}

/** A moving diagonal gradient (I420), so that the encoder sends real deltas, not one still frame. */
export function createVideoTrack(options: VideoTrackOptions = {}): SyntheticTrack {
  const { width = 320, height = 240, fps = 15 } = options;
  if (width % 2 || height % 2) throw new TypeError('width and height must be even (I420)');
  const source = new RTCVideoSource();
  const track = source.createTrack();
  const lumaSize = width * height;
  const data = new Uint8Array(lumaSize * 1.5);
  data.fill(128, lumaSize);
  let frame = 0;
  const timer = setInterval(() => {
    const shift = frame * 4;
    for (let y = 0; y < height; y++) {
      const row = y * width;
      for (let x = 0; x < width; x++) data[row + x] = (x + y + shift) & 0xff;
    }
    frame++;
    source.onFrame({ width, height, data });
  }, 1000 / fps);
  let stopped = false;
  return {
    track,
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      track.stop();
    },
  };
}

export interface VideoFrameCounter extends Stoppable {
  /** Frames received so far. */
  readonly frames: number;
  /** Size of the last frame (0 before the first). */
  readonly width: number;
  readonly height: number;
}

/** Counts the frames decoded on a (remote) video track. */
export function countVideoFrames(track: MediaStreamTrack): VideoFrameCounter {
  const sink = new RTCVideoSink(track);
  const counter = { frames: 0, width: 0, height: 0, stop: () => sink.stop() };
  (sink as unknown as { onframe: (event: { frame: { width: number; height: number } }) => void }).onframe = ({
    frame,
  }) => {
    counter.frames++;
    counter.width = frame.width;
    counter.height = frame.height;
  };
  return counter;
}

export interface AudioSampleCounter extends Stoppable {
  /** Samples (per channel) received so far. */
  readonly samples: number;
  /** Of those, samples louder than 1 % of full scale: 0 while the sender is muted. */
  readonly audibleSamples: number;
}

/** Counts the audio samples played out of a (remote) audio track. */
export function countAudioSamples(track: MediaStreamTrack): AudioSampleCounter {
  const sink = new RTCAudioSink(track);
  const counter = { samples: 0, audibleSamples: 0, stop: () => sink.stop() };
  (sink as unknown as { ondata: (data: { samples: Int16Array; channelCount?: number }) => void }).ondata = ({
    samples,
    channelCount = 1,
  }) => {
    counter.samples += samples.length / channelCount;
    for (let i = 0; i < samples.length; i += channelCount) {
      if (Math.abs(samples[i] as number) > 327) counter.audibleSamples++;
    }
  };
  return counter;
}

/** A SessionClient in Node, with helpers whose tracks and sinks its `close()` stops. */
export interface NodeSession {
  readonly client: SessionClient;
  /** A synthetic tone track, stopped by `close()`. */
  audioTrack(options?: AudioTrackOptions): MediaStreamTrack;
  /** A synthetic moving-picture track, stopped by `close()`. */
  videoTrack(options?: VideoTrackOptions): MediaStreamTrack;
  /** Counts frames on a remote video track, stopped by `close()`. */
  countVideoFrames(track: MediaStreamTrack): VideoFrameCounter;
  /** Counts samples on a remote audio track, stopped by `close()`. */
  countAudioSamples(track: MediaStreamTrack): AudioSampleCounter;
  /** Leaves (closing the client's peer connections), then stops every track and sink made here. Idempotent. */
  close(): Promise<void>;
}

/**
 * A SessionClient for Node (wrtc globals installed, `Chrome111` handler), not yet connected.
 *
 * @param options - more SessionClient options (e.g. `reconnect`, `requestTimeoutMs`).
 */
export function createNodeSessionClient(
  url: string,
  token: SessionClientOptions['token'],
  options: Partial<Omit<SessionClientOptions, 'url' | 'token'>> = {},
): NodeSession {
  installWrtcGlobals();
  const client = new SessionClient({ mediasoupHandlerName: 'Chrome111', ...options, url, token });
  const owned: Stoppable[] = [];
  const keep = <T extends Stoppable>(thing: T): T => {
    owned.push(thing);
    return thing;
  };
  let closing: Promise<void> | undefined;
  return {
    client,
    audioTrack: (trackOptions) => keep(createAudioTrack(trackOptions)).track,
    videoTrack: (trackOptions) => keep(createVideoTrack(trackOptions)).track,
    countVideoFrames: (track) => keep(countVideoFrames(track)),
    countAudioSamples: (track) => keep(countAudioSamples(track)),
    close() {
      closing ??= (async () => {
        await client.leave().catch(() => {});
        for (const thing of owned.splice(0)) {
          try {
            thing.stop();
          } catch {}
        }
      })();
      return closing;
    },
  };
}

/** A TCP proxy in front of the server's HTTP port, to cut signaling connections on demand. */
export interface SignalingProxy {
  /** `http://127.0.0.1:<proxy port>`: give it to a client instead of the server's URL. */
  readonly url: string;
  /**
   * Cuts every open connection through the proxy, as a network drop would (media, which goes
   * straight to the media worker's ports, is not touched). New connections still get through.
   */
  drop(): void;
  /** While `on`, new connections are cut at once (the server looks unreachable). */
  refuse(on: boolean): void;
  /** Cuts everything and stops listening. Idempotent. */
  close(): Promise<void>;
}

/** Starts a {@link SignalingProxy} to `targetUrl` (an `http://host:port` URL). */
export async function startSignalingProxy(targetUrl: string): Promise<SignalingProxy> {
  const target = new URL(targetUrl);
  const sockets = new Set<NetSocket>();
  let refusing = false;
  const track = (socket: NetSocket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
  };
  const server = createServer((client) => {
    track(client);
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = netConnect(Number(target.port), target.hostname);
    track(upstream);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('proxy has no port');
  let closed: Promise<void> | undefined;
  const drop = () => {
    for (const socket of sockets) socket.destroy();
  };
  return {
    url: `http://127.0.0.1:${address.port}`,
    drop,
    refuse(on) {
      refusing = on;
    },
    close() {
      closed ??= new Promise<void>((resolve) => {
        refusing = true;
        drop();
        server.close(() => resolve());
      });
      return closed;
    },
  };
}

/** What a listener receives from one publisher: frames and audible samples, across reconnections. */
export interface Reception {
  frames(): number;
  audible(): number;
}

/** Counts what `listener` receives from `publisherId`, whatever track objects come and go. */
export function receiveFrom(listener: NodeSession, publisherId: string): Reception {
  const counters = { video: [] as { frames: number }[], audio: [] as { audibleSamples: number }[] };
  const count = (track: RemoteTrack) => {
    if (track.participantId !== publisherId) return;
    // A wrtc sink made inside the SDK's event (itself inside a native callback) deadlocks: defer it.
    setImmediate(() => {
      if (track.kind === 'video') counters.video.push(listener.countVideoFrames(track.track));
      else counters.audio.push(listener.countAudioSamples(track.track));
    });
  };
  for (const participant of listener.client.participants.values())
    for (const t of participant.tracks.values()) count(t);
  listener.client.on('trackSubscribed', count);
  return {
    frames: () => counters.video.reduce((n, c) => n + c.frames, 0),
    audible: () => counters.audio.reduce((n, c) => n + c.audibleSamples, 0),
  };
}
