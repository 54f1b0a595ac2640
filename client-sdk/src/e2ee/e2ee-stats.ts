/** What the frame worker counted since the client joined (`client.e2ee.getStats()`). */
export interface E2eeStats {
  /** Frames this client encrypted and sent. */
  framesEncrypted: number;
  /** Frames received and decrypted. */
  framesDecrypted: number;
  /** Frames received that did not decrypt (no key for their epoch, tampered, or not encrypted): dropped. */
  framesFailed: number;
  /** Time spent encrypting, in ms. */
  encryptMs: number;
  /** Time spent decrypting, in ms. */
  decryptMs: number;
}
