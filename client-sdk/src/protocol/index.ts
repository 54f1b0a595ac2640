/**
 * Haven's wire protocol: socket.io event names, payload types, error codes and limits. The one
 * contract between the SDK and the server (the server imports it and validates every payload
 * against schemas typed by it). Depends on nothing outside this folder.
 */
export * from './breakouts.ts';
export * from './errors.ts';
export * from './limits.ts';
export * from './model.ts';
export * from './notifications.ts';
export * from './requests.ts';
export * from './typed-emitter.ts';
export * from './version.ts';
