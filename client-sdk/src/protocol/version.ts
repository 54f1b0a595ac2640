/** Haven's protocol version and where its socket.io endpoint is. */

/** Version of this protocol; the server refuses clients of another major version. */
export const protocolVersion = 1;

/** socket.io path the server listens on. */
export const socketPath = '/socket.io';
