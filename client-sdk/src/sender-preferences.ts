/**
 * What a preset asks of a producer's RTCRtpSender beyond its encodings: the degradation
 * preference (a screen share keeps its resolution and drops frames on a weak uplink). Browsers
 * differ in what they let a sender set, so this is best effort and never throws.
 */
import type { PublishPreset } from './publish-presets.ts';

/** The part of a mediasoup-client Producer this needs (its sender; none in some handlers). */
export interface SenderHolder {
  readonly rtpSender?: RTCRtpSender | undefined;
}

/**
 * Sets `preset.degradationPreference` on the producer's sender, if it has one. Resolves whether
 * the browser took it or not; answers whether the sender now has it.
 */
export async function applySenderPreferences(producer: SenderHolder, preset: PublishPreset): Promise<boolean> {
  const wanted = preset.degradationPreference;
  const sender = producer.rtpSender;
  if (!wanted || !sender) return false;
  try {
    const parameters = sender.getParameters();
    if (parameters.degradationPreference === wanted) return true;
    await sender.setParameters({ ...parameters, degradationPreference: wanted });
    return true;
  } catch {
    // Not supported here (e.g. the browser refuses the field): the browser's default applies.
    return false;
  }
}
