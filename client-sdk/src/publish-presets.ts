/**
 * How each source is captured and encoded: getUserMedia/getDisplayMedia constraints, simulcast
 * encodings and codec options. Tuned for talking heads in group therapy: the server picks each
 * receiver's layer from `setPreferredSize`, so a 12-tile grid pulls the 320×180 layer.
 */
import type { MediaKind, TrackSource } from './protocol/index.ts';

/** One RTP encoding (a subset of `RTCRtpEncodingParameters`). */
export interface EncodingPreset {
  scaleResolutionDownBy?: number;
  maxBitrate?: number;
  maxFramerate?: number;
}

/** Codec options passed to mediasoup-client's `produce` (its `ProducerCodecOptions`). */
export interface CodecOptionsPreset {
  opusStereo?: boolean;
  opusDtx?: boolean;
  opusFec?: boolean;
  opusNack?: boolean;
  videoGoogleStartBitrate?: number;
}

export interface PublishPreset {
  kind: MediaKind;
  /** Encodings; absent: one encoding chosen by the browser. */
  encodings?: EncodingPreset[];
  codecOptions?: CodecOptionsPreset;
  /**
   * What the browser gives up first when the uplink is short (`RTCRtpSendParameters`): absent,
   * its default (balanced).
   */
  degradationPreference?: 'maintain-resolution' | 'maintain-framerate' | 'balanced';
}

/** Camera simulcast: 3 layers, a quarter, half and full resolution (320×180, 640×360, 1280×720 for a 720p camera). */
export const cameraEncodings: readonly EncodingPreset[] = Object.freeze([
  { scaleResolutionDownBy: 4, maxBitrate: 150_000 },
  { scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
]);

export const publishPresets: Readonly<Record<TrackSource, PublishPreset>> = Object.freeze({
  // DTX: a silent microphone costs ~1 kbit/s; FEC and NACK: a lost voice packet is rebuilt or sent again.
  microphone: { kind: 'audio', codecOptions: { opusStereo: false, opusDtx: true, opusFec: true, opusNack: true } },
  camera: { kind: 'video', encodings: [...cameraEncodings], codecOptions: { videoGoogleStartBitrate: 1000 } },
  // Worksheets and slides: one sharp layer, few frames; on a weak uplink frames go, not sharpness.
  screen: {
    kind: 'video',
    encodings: [{ maxBitrate: 1_500_000, maxFramerate: 15 }],
    degradationPreference: 'maintain-resolution',
  },
});

/** Constraints the SDK captures with when `publishMicrophone()`/`publishCamera()` get no track. */
export const captureConstraints = Object.freeze({
  microphone: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
  camera: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30, max: 30 } },
  screen: { frameRate: { ideal: 15, max: 30 } },
} satisfies Record<TrackSource, MediaTrackConstraints>);

/** Captures a track for `source` with the browser's media APIs (asks the user for permission). */
export async function captureTrack(source: TrackSource): Promise<MediaStreamTrack> {
  const devices = typeof navigator === 'object' ? navigator.mediaDevices : undefined;
  let stream: MediaStream;
  if (source === 'screen') {
    if (!devices?.getDisplayMedia) throw new TypeError('screen capture is not available here: pass a track');
    stream = await devices.getDisplayMedia({ video: captureConstraints.screen, audio: false });
  } else {
    if (!devices?.getUserMedia) throw new TypeError('media capture is not available here: pass a track');
    stream =
      source === 'microphone'
        ? await devices.getUserMedia({ audio: captureConstraints.microphone })
        : await devices.getUserMedia({ video: captureConstraints.camera });
  }
  const [track] = stream.getTracks();
  if (!track) throw new TypeError(`no ${source} track was captured`);
  if (source === 'screen' && 'contentHint' in track) track.contentHint = 'detail';
  return track;
}
